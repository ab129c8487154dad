"""CS plays with known true effects: who gets one, what it does, and its activity rows.

At every renewal decided inside the window a CSM decides, on the decision day ``d``
(``decision_lead_days`` before the renewal, or 7 days into a shorter term), whether to run
one play. The choice reads only what the tables show before ``d``: the CSM's latest
sentiment, the term's ARR and whether an urgent or high-priority ticket is open. A play
adds its effect to the term's churn probability (``docs/simulator.md``, "CS plays and
their true effects"). Everything here is vectorised over the decided terms and draws a
fixed number of values per term, so the draws do not depend on the effect sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simulator.accounts import DAY_US
from simulator.config import PLAY_KEYS, PlayEffects
from simulator.logistic import sigmoid
from simulator.outcome import per_term

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Arrays = dict[str, npt.NDArray[Any]]

PLAY_TEXTS: dict[str, str] = {
    "exec_sponsor": "Executive sponsor call",
    "support": "Escalate to the support lead: urgent tickets are open or answered slowly",
    "checkin_email": "Check-in email from the CSM",
    "renewal_discount": "Renewal discount offer",
}
"""The plays catalogue's text of each key (``activities.play`` holds one or the other)."""

CHANNELS: tuple[str, ...] = ("call", "email", "meeting")
# Channel probabilities (call, email, meeting) per play, in PLAY_KEYS order.
CHANNEL_PROBS = np.array(
    [[0.4, 0.0, 0.6], [0.5, 0.5, 0.0], [0.1, 0.9, 0.0], [0.3, 0.6, 0.1]], dtype=np.float64
)
# Two short notes per play, in PLAY_KEYS order; a third of the rows have no note.
NOTES: tuple[tuple[str, str], ...] = (
    ("Sponsor call booked with the VP", "Exec alignment on next year's goals"),
    ("Escalated the open tickets to the support lead", "Support lead joined the call"),
    ("Sent the quarterly check-in", "Checked in on adoption"),
    ("Offered 10 % off the renewal", "Discount offer sent with the renewal quote"),
)
NO_NOTE_SHARE = 1.0 / 3.0
TEXT_SHARE = 0.10  # rows that name the play by its catalogue text instead of its key
MAX_ROWS = 3  # activity rows per treated term: 1 to MAX_ROWS
SENTIMENT_NONE = -1  # no sentiment recorded before the decision day
P_MIN, P_MAX = 0.001, 0.999
# Business hours: local time normal around 13:00 (sd 2.4 h), weekends 5 % of rows, as in
# the other tables; a weekend day is kept with this probability relative to a weekday.
WEEKEND_KEEP = 0.025 / 0.19
DAY_TRIES = 8


def decision_day(start_day: I64, end_day: I64, plays: PlayEffects) -> I64:
    """The day a CSM decides on a term: ``decision_lead_days`` before its end, but no
    earlier than 7 days into the term (shorter terms)."""
    out: I64 = np.maximum(start_day + 7, end_day - plays.decision_lead_days)
    return out


def latest_sentiment(acc: I64, day: I64, sentiment: Arrays) -> npt.NDArray[np.int64]:
    """The latest sentiment code (0 green, 1 yellow, 2 red) recorded strictly before
    midnight UTC of ``day`` for each account ``acc``; ``SENTIMENT_NONE`` when none."""
    queries = pd.DataFrame(
        {"acc": acc.astype(np.int64), "t": day * DAY_US, "row": np.arange(acc.size)}
    )
    rows = pd.DataFrame(
        {
            "acc": sentiment["acc"].astype(np.int64),
            "t": sentiment["ts"].astype(np.int64),
            "code": sentiment["sentiment"].astype(np.int64),
        }
    )
    got = pd.merge_asof(
        queries.sort_values("t", kind="stable"),
        rows.sort_values("t", kind="stable"),
        on="t",
        by="acc",
        allow_exact_matches=False,
        direction="backward",
    ).sort_values("row")
    return got["code"].fillna(SENTIMENT_NONE).to_numpy(dtype=np.int64)


def ticket_open(acc: I64, day: I64, tickets: Arrays) -> npt.NDArray[np.bool_]:
    """Whether an urgent or high-priority ticket of ``acc`` is open at midnight UTC of
    ``day``: created before it and not resolved before it."""
    hot = tickets["priority"].astype(np.int64) >= 2
    t = pd.DataFrame(
        {
            "acc": tickets["acc"][hot].astype(np.int64),
            "created": tickets["created_us"][hot].astype(np.int64),
            "resolved": tickets["resolved_us"][hot].astype(np.int64),
        }
    )
    q = pd.DataFrame({"acc": acc.astype(np.int64), "t": day * DAY_US, "row": np.arange(acc.size)})
    pairs = q.merge(t, on="acc")
    is_open = (pairs["created"] < pairs["t"]) & (
        (pairs["resolved"] < 0) | (pairs["resolved"] >= pairs["t"])
    )
    out = np.zeros(acc.size, np.bool_)
    out[pairs.loc[is_open, "row"].to_numpy(dtype=np.int64)] = True
    return out


def propensity(sentiment: I64, arr: F64, ticket: npt.NDArray[np.bool_], plays: PlayEffects) -> F64:
    """Probability that the CSM runs any play on the term (:class:`PlayAssignment`)."""
    a = plays.assignment
    coef = np.select(
        [sentiment == 1, sentiment == 2, sentiment == SENTIMENT_NONE],
        [a.yellow, a.red, a.no_sentiment],
        0.0,
    )
    x_arr = np.log10(np.maximum(arr, 1.0) / a.arr_ref)
    return sigmoid(a.intercept + coef + a.log10_arr * x_arr + a.open_ticket * ticket)


def which_play(
    u: F64, arr: F64, ticket: npt.NDArray[np.bool_], plays: PlayEffects
) -> npt.NDArray[np.int64]:
    """The play (index into ``PLAY_KEYS``) a treated term gets, from one uniform ``u``.

    With an urgent or high ticket open, ``support`` with probability
    ``support_if_ticket``; otherwise (and for the rest of ``u``) a draw among
    ``exec_sponsor`` (weight rising with ARR), ``checkin_email`` and ``renewal_discount``.
    """
    a = plays.assignment
    s = np.where(ticket, a.support_if_ticket, 0.0)
    support = u < s
    v = np.where(support, 0.0, (u - s) / np.maximum(1.0 - s, 1e-12))
    w_exec = np.exp(a.exec_sponsor_log10_arr * np.log10(np.maximum(arr, 1.0) / a.arr_ref))
    total = w_exec + a.checkin_email_weight + a.renewal_discount_weight
    cut1 = w_exec / total
    cut2 = (w_exec + a.checkin_email_weight) / total
    others = np.where(
        v < cut1,
        PLAY_KEYS.index("exec_sponsor"),
        np.where(v < cut2, PLAY_KEYS.index("checkin_email"), PLAY_KEYS.index("renewal_discount")),
    )
    return np.where(support, PLAY_KEYS.index("support"), others).astype(np.int64)


def played_probability(p_annual: F64, delta: F64, term_months: int) -> F64:
    """The term's churn probability with an additive effect ``delta`` on the annual one.

    ``clip(p_annual + delta)`` to ``[0.001, 0.999]`` (a probability already outside that
    range is not moved past itself), converted to the term like the formula's
    probability; annual terms take ``clip(p_annual + delta)`` itself.
    """
    lo, hi = np.minimum(p_annual, P_MIN), np.maximum(p_annual, P_MAX)
    return per_term(np.clip(p_annual + delta, lo, hi), term_months)


@dataclass(frozen=True)
class Decisions:
    """The CSM's decision on each decided term and what the play does to its churn.

    Attributes (one element per term)
    ----------
    day
        The decision day (days since 1970-01-01).
    sentiment
        Latest sentiment before it (0 green, 1 yellow, 2 red, ``SENTIMENT_NONE``).
    ticket
        An urgent or high-priority ticket is open at it.
    propensity
        Probability of any play.
    play
        The play run (index into ``PLAY_KEYS``), -1 for none.
    effects
        Per play (columns in ``PLAY_KEYS`` order): the change in the term's churn
        probability had that play been run.
    p_churn
        The probability the outcome is drawn with: ``p_noisy`` plus the effect of the play
        run.
    rows
        Activity rows of the treated terms (see :func:`activity_rows`).
    """

    day: I64
    sentiment: I64
    ticket: npt.NDArray[np.bool_]
    propensity: F64
    play: I64
    effects: F64
    p_churn: F64
    rows: Arrays


def decide(
    terms: Arrays,
    sentiment: Arrays,
    tickets: Arrays,
    customer_from_day: I64,
    tz: F64,
    plays: PlayEffects,
    term_months: int,
    rng: np.random.Generator,
) -> Decisions:
    """Decide the plays of the decided terms ``terms`` (``acc``, ``start_day``,
    ``end_day``, ``arr``, ``p_noisy``, ``p_noisy_annual``).

    ``sentiment`` and ``tickets`` are the rows the tables hold for these accounts (at least
    everything before the decision days); ``customer_from_day`` is, per term, the first
    day its account's rows may be dated, and ``tz`` its region's UTC offset in hours.
    Draws a fixed number of values per term from ``rng``.
    """
    acc = terms["acc"].astype(np.int64)
    m = acc.size
    day = decision_day(terms["start_day"], terms["end_day"], plays)
    sent = latest_sentiment(acc, day, sentiment)
    ticket = ticket_open(acc, day, tickets)
    arr = terms["arr"].astype(np.float64)
    prop = propensity(sent, arr, ticket, plays)
    u_any, u_which = rng.random(m), rng.random(m)
    play = np.where(u_any < prop, which_play(u_which, arr, ticket, plays), -1)
    if not plays.enabled:
        play = np.full(m, -1, np.int64)

    p_annual = terms["p_noisy_annual"].astype(np.float64)
    p_noisy = terms["p_noisy"].astype(np.float64)
    effects = np.zeros((m, len(PLAY_KEYS)))
    with_play = np.empty((m, len(PLAY_KEYS)))
    for k, key in enumerate(PLAY_KEYS):
        delta = np.full(m, plays.effect(key))
        if key == "support":  # it addresses the open tickets, and nothing else
            delta = np.where(ticket, delta, 0.0)
        with_play[:, k] = np.where(
            delta == 0.0, p_noisy, played_probability(p_annual, delta, term_months)
        )
        effects[:, k] = with_play[:, k] - p_noisy
    treated = play >= 0
    p_churn = np.where(treated, with_play[np.arange(m), np.maximum(play, 0)], p_noisy)
    rows = activity_rows(
        acc, terms["end_day"].astype(np.int64), day, customer_from_day, tz, play, plays, rng
    )
    return Decisions(day, sent, ticket, prop, play, effects, p_churn, rows)


def activity_rows(
    acc: I64,
    end_day: I64,
    day: I64,
    customer_from_day: I64,
    tz: F64,
    play: I64,
    plays: PlayEffects,
    rng: np.random.Generator,
) -> Arrays:
    """1 to ``MAX_ROWS`` activity rows per treated term (``play >= 0``).

    ``renewal_discount`` is run in the last ``discount_last_days`` days before the
    renewal; the other plays from the decision day to ``others_stop_days`` before it. The
    rows are the same play repeated, on days drawn in that range (weekdays mostly), at
    business hours of the account's region (``tz``: its UTC offset in hours) folded into
    the UTC day. Returns ``acc``,
    ``term`` (index of the term in the input), ``ts`` (us), ``play`` (index), ``text``
    (true: the row names the play by its catalogue text), ``channel`` (index into
    ``CHANNELS``), ``note`` (index into ``NOTES[play]``, -1 none).
    """
    m = acc.size
    n_rows = 1 + rng.integers(0, MAX_ROWS, m)
    u_day = rng.random((m, MAX_ROWS, DAY_TRIES))
    u_keep = rng.random((m, MAX_ROWS, DAY_TRIES))
    hour = np.clip(rng.normal(13.0, 2.4, (m, MAX_ROWS)), 6.5, 21.5)
    text = rng.random((m, MAX_ROWS)) < TEXT_SHARE
    u_channel = rng.random((m, MAX_ROWS))
    u_note = rng.random((m, MAX_ROWS))

    lo = np.maximum(day, customer_from_day)
    discount = play == PLAY_KEYS.index("renewal_discount")
    first = np.where(discount, np.maximum(lo, end_day - plays.discount_last_days), lo)
    stop = np.where(discount, end_day, np.maximum(lo + 1, end_day - plays.others_stop_days))
    span = np.maximum(stop - first, 1)
    cand = first[:, None, None] + np.floor(u_day * span[:, None, None]).astype(np.int64)
    weekend = (cand + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    ok = ~weekend | (u_keep < WEEKEND_KEEP)
    ok[:, :, -1] = True  # after DAY_TRIES weekend draws, keep the last
    pick = np.take_along_axis(cand, ok.argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    days = np.sort(pick, axis=1)

    # Local business hours in UTC, kept inside the UTC day so the row stays in its range.
    seconds = np.clip(np.floor((hour - tz[:, None]) * 3600.0), 0, 86_399).astype(np.int64)
    ts = days * DAY_US + seconds * 1_000_000
    keep = (play >= 0)[:, None] & (np.arange(MAX_ROWS)[None, :] < n_rows[:, None])
    p = np.maximum(play, 0)
    cum = np.cumsum(CHANNEL_PROBS[p], axis=1)
    channel = np.minimum((u_channel[:, :, None] > cum[:, None, :]).sum(axis=2), len(CHANNELS) - 1)
    note = np.where(
        u_note < NO_NOTE_SHARE, -1, np.minimum(((u_note - NO_NOTE_SHARE) * 3).astype(np.int64), 1)
    )
    term = np.broadcast_to(np.arange(m)[:, None], (m, MAX_ROWS))
    return {
        "acc": np.broadcast_to(acc[:, None], (m, MAX_ROWS))[keep],
        "term": term[keep],
        "ts": ts[keep],
        "play": np.broadcast_to(p[:, None], (m, MAX_ROWS))[keep],
        "text": text[keep],
        "channel": channel[keep].astype(np.int64),
        "note": note[keep].astype(np.int64),
    }
