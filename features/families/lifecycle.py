"""Lifecycle: tenure, and the current term of ``contracts`` (renewal, seats, ARR).

Computed by :func:`features.build.feature_table` from the account's ``created_at`` and the
snapshot's term; without ``contracts`` only tenure.
"""

from __future__ import annotations

from features.catalog import Context, Feature, FeatureFamily, register, rows


def declare(ctx: Context) -> list[Feature]:
    return [
        *rows("lifecycle", "accounts", (
            ("tenure_days", "Tenure", "days", None, "higher",
             "days since the account became a customer"),
        )),
        *rows("lifecycle", "contracts", (
            ("days_to_renewal", "Days to renewal", "days", None, "none",
             "days from the snapshot to the end of the current term"),
            ("term_number", "Term number", "terms", None, "higher",
             "1 for the first subscription term, 2 after the first renewal, ..."),
            ("seats", "Licensed seats", "seats", None, "none", "seats of the current term"),
            ("arr", "ARR", "currency", None, "none",
             "annual recurring revenue of the current term"),
            ("arr_change_last_renewal", "ARR change at last renewal", "ratio", None, "higher",
             "ARR of the current term / ARR of the previous term - 1 (first term: empty)"),
        )),
    ]  # fmt: skip


FAMILY = register(
    FeatureFamily(
        name="lifecycle",
        words="contract and tenure",
        play="Start the renewal conversation early and confirm the decision makers",
        declare=declare,
    )
)
