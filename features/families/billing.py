"""Billing: invoices overdue at the snapshot and late payments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.asof import SECONDS_PER_DAY, known, seconds, since
from features.catalog import Context, Feature, FeatureFamily, register, rows

if TYPE_CHECKING:
    import ibis.expr.types as ir


def declare(ctx: Context) -> list[Feature]:
    return rows("billing", "invoices", (
        ("invoices_overdue", "Invoices overdue", "invoices", None, "lower",
         "invoices past their due date and unpaid at the snapshot"),
        ("days_overdue_max", "Days overdue", "days", None, "lower",
         "days the most overdue unpaid invoice is past due"),
        ("late_payments_365d", "Late payments (365 d)", "invoices", 365, "lower",
         "invoices paid after their due date in the last year"),
    ))  # fmt: skip


def billing_features(invoices: ir.Table, snaps: ir.Table) -> ir.Table:
    """Invoices overdue at the snapshot and late payments in the last year."""
    j = since(invoices, "issued_at", snaps)
    now = j.as_of_sec
    due, paid = seconds(j.due_at), known(j.paid_at, now)
    overdue = (due < now) & paid.isnull()
    return j.group_by("snapshot_id").aggregate(
        invoices_overdue=j._sec.count(where=overdue),
        days_overdue_max=((now - due) / SECONDS_PER_DAY).max(where=overdue),
        late_payments_365d=j._sec.count(where=(paid >= now - 365 * SECONDS_PER_DAY) & (paid > due)),
    )


FAMILY = register(
    FeatureFamily(
        name="billing",
        words="billing",
        play="Involve finance: invoices are overdue",
        declare=declare,
        table="invoices",
        query=billing_features,
        zero_when_absent=("invoices_overdue", "days_overdue_max", "late_payments_"),
    )
)
