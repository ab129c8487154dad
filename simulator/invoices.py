"""Invoices: billing a term as it starts, late and unpaid payments, badly overdue ones.

Called by the weekly loop (:mod:`simulator.dynamics`) when a term starts. With late
invoices on, unhealthy accounts pay late more often; an invoice still unpaid
``OVERDUE_DAYS`` after its due date is badly overdue, and the day that becomes known is
remembered in a few slots per account for the churn formula's ``overdue_invoices`` driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.accounts import DAY_US
from simulator.logistic import sigmoid
from simulator.outcome import OVERDUE_DAYS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Invoices: due PAYMENT_DAYS after issue; late with probability sigmoid(LATE0 - LATE1 * health).
PAYMENT_DAYS = 30
LATE0, LATE1 = -1.9, 1.1
UNPAID0, UNPAID1 = -1.2, 1.0
ON_ISSUE = 0.2
# Accounts this large are billed every 91 days within terms longer than a quarter.
QUARTERLY_MIN_SEATS = 50
BILLING_DAYS = 91
# Slots per account remembering when its badly overdue invoices became known; more than
# the invoices a driver lookback can hold (4 a year billed quarterly, 7 in six months
# billed monthly).
BAD_INVOICE_SLOTS = 16
_NEVER = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Bills:
    """The invoices of the terms that start now, and which of them go badly overdue.

    ``acc`` ... ``amount`` are the invoice rows (times in microseconds, ``paid_us`` -1 for
    never paid); ``bad_acc`` and ``bad_known_day`` are the account and the day on which
    each badly overdue invoice becomes known, in invoice order.
    """

    acc: I64
    issued_us: I64
    due_us: I64
    paid_us: I64
    amount: F64
    bad_acc: I64
    bad_known_day: I64


def no_bad_invoices(n: int) -> I64:
    """Empty slots for :func:`remember_bad` of ``n`` accounts (no bad invoice known)."""
    return np.full((n, BAD_INVOICE_SLOTS), _NEVER, np.int64)


def bill_terms(
    rng: np.random.Generator,
    idx: I64,
    term_start: I64,
    seats: I64,
    arr: F64,
    health: F64,
    months: int,
    late_invoices: bool,
) -> Bills:
    """Bill the terms of accounts ``idx`` that start now (arrays indexed by account).

    One invoice per term, or one every 91 days for large accounts on terms longer
    than a quarter. ``arr`` is annual: a term is billed ``months / 12`` of it.
    """
    quarterly = seats[idx] >= QUARTERLY_MIN_SEATS
    n_inv = np.where(quarterly, max(1, months // 3), 1)
    rows = np.repeat(idx, n_inv)
    k = np.arange(rows.shape[0]) - np.repeat(np.cumsum(n_inv) - n_inv, n_inv)
    issued_day = term_start[rows] + BILLING_DAYS * k
    issued = issued_day * DAY_US + 8 * 3600 * 1_000_000
    due = issued + PAYMENT_DAYS * DAY_US
    amount = np.round(arr[rows] * (months / 12.0) / np.repeat(n_inv, n_inv), 2)
    m = rows.shape[0]
    h = health[rows]
    on_time = issued + (rng.random(m) * 30 * DAY_US).astype(np.int64)
    on_time = np.where(rng.random(m) < ON_ISSUE, issued + 3600 * 1_000_000, on_time)
    late = np.zeros(m, np.bool_)
    unpaid = np.zeros(m, np.bool_)
    paid = on_time
    if late_invoices:
        late = rng.random(m) < sigmoid(LATE0 - LATE1 * h)
        unpaid = late & (rng.random(m) < sigmoid(UNPAID0 - UNPAID1 * h))
        late_by = np.exp(rng.normal(np.log(20.0), 0.8, m)) * DAY_US
        paid = np.where(late, due + late_by.astype(np.int64), on_time)
    paid = np.where(unpaid, -1, paid)
    bad = unpaid | (late & (paid - due > OVERDUE_DAYS * DAY_US))
    # A bad invoice is known once it is still unpaid OVERDUE_DAYS after its due date.
    return Bills(
        acc=rows,
        issued_us=issued,
        due_us=due,
        paid_us=paid,
        amount=amount,
        bad_acc=rows[bad],
        bad_known_day=issued_day[bad] + PAYMENT_DAYS + OVERDUE_DAYS,
    )


def remember_bad(bills: Bills, known_day: I64, count: I64) -> None:
    """Write the days ``bills``' bad invoices become known into the accounts' slots.

    ``known_day`` (accounts x :data:`BAD_INVOICE_SLOTS`) and ``count`` (bad invoices so
    far per account) are updated in place; the slots are a ring, the oldest overwritten.
    """
    b_rows = bills.bad_acc
    if b_rows.size:
        pos = np.arange(b_rows.size)
        first = np.maximum.accumulate(np.where(np.r_[True, b_rows[1:] != b_rows[:-1]], pos, 0))
        slot = (count[b_rows] + pos - first) % BAD_INVOICE_SLOTS
        known_day[b_rows, slot] = bills.bad_known_day
        np.add.at(count, b_rows, 1)


def bad_invoices_between(known_day: I64, since: I64, until: I64) -> F64:
    """Bad invoices per row known on a day in ``[since, until)`` (``known_day``: the rows'
    slots, as :func:`remember_bad` fills them)."""
    out: F64 = ((known_day >= since[:, None]) & (known_day < until[:, None])).sum(
        axis=1, dtype=np.float64
    )
    return out
