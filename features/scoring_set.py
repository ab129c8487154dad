"""Scoring sets: the feature rows of every account eligible at an as-of day, with no label.

``score``, ``features`` and ``explain`` call :func:`build_scoring_set`; the Spark path runs
:func:`scoring_query` on the cluster instead. Only the events of the scored accounts, in
the look-back of the first as-of, are read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import ibis
import ibis.expr.types as ir

from features.config import FeatureConfig, LabelConfig
from features.errors import ContractError
from features.feature_query import FeatureQuery, FeatureRows, feature_query, query_frame
from features.progress import Progress
from features.snapshots import day_number, epoch_day, inactivity_snapshots, open_term_snapshots
from features.training import NO_CONTRACTS
from features.usage import common_events, lookback_days, rollups


@dataclass(frozen=True)
class ScoringSet(FeatureRows):
    """One row per eligible account (or open term) and as-of day: ids, cohorts and the
    declared features, in the columns and order of a training set; its label columns are
    empty (nothing is known yet)."""


def build_scoring_set(
    tables: Mapping[str, ir.Table],
    as_of: date | Sequence[date],
    labels: LabelConfig,
    features: FeatureConfig,
    top_events: Sequence[str] | None = None,
    progress: Progress = None,
    accounts: Sequence[str] | None = None,
) -> ScoringSet:
    """Feature rows of every account eligible at ``as_of`` (no label).

    Renewal mode: an open term ending within ``labels.within_days``. Inactivity mode: an
    event in the ``labels.active_days`` before ``as_of``. ``top_events`` must be the model's
    own list so that the columns match; by default they are the most common events before
    the (last) as-of.

    Several ``as_of`` days give one row per eligible account and day, built in one query.
    ``accounts`` restricts every table to those accounts first (one account's explanation);
    the rows are the ones a whole-book build gives for them. Only the events of the accounts
    scored and of :func:`features.usage.lookback_days` before the first as-of are read.
    """
    days = [as_of] if isinstance(as_of, date) else sorted(set(as_of))
    if top_events is None:  # the book's, before any restriction to some accounts
        top_events = common_events(
            rollups(tables["events"], features)[1], features.top_events, day_number(days[-1])
        )
    if accounts is not None:
        tables = only_accounts(tables, accounts)
    snaps = scoring_snapshots(tables, days, labels)
    # One query, nothing materialised: a scoring set reads a year of the scored accounts'
    # events, and compiling and running the parts one by one cost more than they save
    # (demo world, 178 renewals: 1.25 s against 1.5 s; a 10,000-account book, 1,914
    # renewals: 4.7 s against 6.1 s; one account's seven months: 1.4 s against 3.0 s).
    # Several days (churn explain) are a table, so only the first day of events read
    # changes from one day's query to the next: rounded, it is shared (scored_events). One
    # day's query holds the day itself; rounding would only read more.
    step = START_STEP if len(days) > 1 else 1
    query = feature_query(
        scored_events(tables, snaps, days[0], features, step), snaps, features, top_events
    )
    frame = query_frame(query.expr, query.features)
    if progress:
        progress("features built", 1.0)
    return ScoringSet(frame, query.features, query.top_events)


def only_accounts(tables: Mapping[str, ir.Table], accounts: Sequence[str]) -> dict[str, ir.Table]:
    """Every table restricted to the rows of ``accounts`` (all contract tables carry
    ``account_id``).

    The ids are a table, not literals in the query, so that every account's query has the
    same shape and is compiled once (:mod:`features.compiled`)."""
    ids = ibis.memtable({"account_id": [str(a) for a in accounts]}, schema={"account_id": "string"})
    return {
        name: t.filter(t.account_id.cast("string").isin(ids.account_id))
        for name, t in tables.items()
    }


#: The first day of events a scoring set of several days reads is a multiple of this many
#: days (:func:`scored_events`): one account's explanations of a month share one query.
START_STEP = 32


def scored_events(
    tables: Mapping[str, ir.Table],
    snaps: ir.Table,
    first: date,
    features: FeatureConfig,
    step: int = 1,
) -> dict[str, ir.Table]:
    """``tables`` with the events that can move a scoring feature: those of the snapshots'
    accounts, in the look-back of the first as-of. Scoring then costs what it scores, not
    the whole history (the point-in-time property test checks the rows are unchanged).

    ``step``: the first day read is rounded down to a multiple of it. Older events move no
    feature, so reading up to ``step - 1`` more days changes no row, and the queries of
    days within one step are the same query, compiled once (:mod:`features.compiled`).
    """
    ev = tables["events"]
    start = (day_number(first) - lookback_days(features)) // step * step
    recent = ev.filter(epoch_day(ev.ts) >= start, ev.account_id.isin(snaps.account_id))
    return {**tables, "events": recent}


def scoring_query(
    tables: Mapping[str, ir.Table],
    as_of: date,
    labels: LabelConfig,
    features: FeatureConfig,
    top_events: Sequence[str] | None = None,
    hold: Callable[[ir.Table], ir.Table] | None = None,
) -> FeatureQuery:
    """:func:`build_scoring_set` without running it: the expression stays on the engine.

    For engines whose results are too large to collect (Spark): run ``query.expr`` there
    and turn each batch of its rows into model rows with :func:`frame_from_raw`. ``hold``
    (:func:`features.spark.held_on_spark`) materialises the snapshots, the roll-ups and
    each part of the features on the way, so that the final expression reads them by name.
    """
    snaps = scoring_snapshots(tables, as_of, labels)
    if hold is not None:
        snaps = hold(snaps)
    if top_events is None:
        events = rollups(tables["events"], features)[1]
        top_events = common_events(events, features.top_events, day_number(as_of))
    scored = scored_events(tables, snaps, as_of, features)
    return feature_query(scored, snaps, features, top_events, hold=hold)


def scoring_snapshots(
    tables: Mapping[str, ir.Table], as_of: date | Sequence[date], labels: LabelConfig
) -> ir.Table:
    """The snapshots :func:`build_scoring_set` builds features for (one per eligible
    account at ``as_of``, or at each of several days), as an expression: counted before
    building to refuse an empty run."""
    days = [day_number(d) for d in ([as_of] if isinstance(as_of, date) else as_of)]
    if labels.label == "renewal":
        if "contracts" not in tables:
            raise ContractError(NO_CONTRACTS.format(what="renewal scoring"))
        return open_term_snapshots(
            tables["contracts"], days, labels.within_days, labels.return_grace_days
        )
    return inactivity_snapshots(
        tables["events"], tables.get("contracts"), labels, days, labelled=False
    )
