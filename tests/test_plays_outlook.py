"""Issue 17's wiring: play routing, treatment windows, the expected outcome of a book and
of the backtest's folds, and their report sections (values computed by hand)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from test_report import five_accounts, render

from models.backtest import BacktestResult
from models.cbpe import expected_auc
from models.fold_estimates import estimate_summary, estimates_on_folds
from models.plays import DEFAULT_PLAYS, MeasuredPlay, PlayConfig, choose_play
from pipelines.outlook import earlier_against_outcomes, expected, renewal_outcomes
from pipelines.plays import activity_plays, treatments
from pipelines.report_sections import outlook_view, plays_view


def measured(key: str, effect: float, low: float, high: float, status: str = "ok") -> MeasuredPlay:
    return MeasuredPlay(key=key, text=key, status=status, effect=effect, low=low, high=high,
                        lines=(f"{key}: renewal odds {-effect:+.0f} points",))  # fmt: skip


# --------------------------------------------------------------------------- routing


def test_routing_prefers_the_measured_play_that_lowers_churn_for_the_driver() -> None:
    plays = PlayConfig(
        measured=(
            measured("exec_sponsor", -8.0, -13.0, -3.0),  # addresses sentiment: helps
            measured("checkin_email", -9.0, -20.0, 2.0),  # interval crosses 0: not proven
            measured("renewal_discount", 5.0, 1.0, 9.0),  # harmful
        )
    )
    assert choose_play("sentiment", "red", plays) == "Executive sponsor call"
    # Frequency is addressed by the check-in e-mail only, whose effect is not proven.
    assert choose_play("frequency", "red", plays) == DEFAULT_PLAYS["frequency"]
    # Lifecycle: the sponsor call helps, the discount harms; the sponsor call wins.
    assert choose_play("lifecycle", "yellow", plays) == "Executive sponsor call"
    assert choose_play("support", "red", plays) == DEFAULT_PLAYS["support"]
    assert choose_play("sentiment", "green", plays) == plays.healthy
    off = plays.model_copy(update={"prefer_measured": False})
    assert choose_play("sentiment", "red", off) == DEFAULT_PLAYS["sentiment"]


def test_the_largest_measured_effect_wins_and_a_family_play_counts_for_its_family() -> None:
    plays = PlayConfig(
        measured=(
            measured("exec_sponsor", -4.0, -7.0, -1.0),
            measured("sentiment", -9.0, -14.0, -4.0),
        )
    )
    assert choose_play("sentiment", "red", plays) == DEFAULT_PLAYS["sentiment"]
    assert choose_play("trend", "red", plays) == "Executive sponsor call"


def test_a_model_without_measured_plays_loads_with_the_defaults() -> None:
    """model.json of a model logged before issue 17 holds only by_family and healthy."""
    old = PlayConfig.model_validate({"by_family": {"support": "Call support"}, "healthy": "Ok"})
    assert old.measured == () and old.prefer_measured
    assert old.texts()["support"] == "Call support"
    assert old.texts()["exec_sponsor"] == "Executive sponsor call"


# --------------------------------------------------------------------------- treatments


def test_a_play_counts_from_the_snapshot_day_to_the_day_before_the_renewal() -> None:
    units = pd.DataFrame(
        {
            "account_id": ["A", "A", "B"],
            "as_of": pd.to_datetime(["2024-01-01", "2025-01-01", "2024-03-01"], utc=True),
            "renewal_date": pd.to_datetime(["2024-05-01", "2025-05-01", "2024-07-01"], utc=True),
        }
    )
    acts = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B", "B", "C"],
            "ts": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-05-01 10:00",
                    "2024-12-31 23:00",
                    "2024-06-30 17:00",
                    "2024-02-29 12:00",
                    "2024-03-05 08:00",
                ],
                utc=True,
            ),
            "play": [
                " EXEC_sponsor ",
                "support",
                "support",
                "Check-in email from the CSM",
                "support",
                "support",
            ],
        }
    )
    keyed = activity_plays(acts, PlayConfig().texts())
    assert keyed["key"].tolist() == ["exec_sponsor", "support", "support", "checkin_email",
                                     "support", "support"]  # fmt: skip
    marks = treatments(units, keyed)
    # A: the sponsor call on the snapshot day counts; the ticket escalation on the renewal
    # day and the one the day before the next snapshot do not. B: the e-mail the day before
    # its renewal counts, the escalation the day before its snapshot does not.
    assert marks["play__exec_sponsor"].tolist() == [1, 0, 0]
    assert marks["play__checkin_email"].tolist() == [0, 0, 1]
    assert "play__support" not in marks
    assert marks["any_play"].tolist() == [1, 0, 1]


def test_unknown_plays_are_left_out_of_the_measure() -> None:
    acts = pd.DataFrame(
        {"account_id": ["A", "A"], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
         "play": ["exec_sponsor", "a play nobody declared"]}
    )  # fmt: skip
    assert activity_plays(acts, PlayConfig().texts())["key"].tolist() == ["exec_sponsor"]


# --------------------------------------------------------------------------- outlook


def test_todays_expected_outcome_is_the_sum_of_the_probabilities() -> None:
    scores = five_accounts()
    out = expected(scores)
    p = scores["churn_probability"].to_numpy(float)
    assert out["churners"]["value"] == pytest.approx(p.sum(), abs=1e-12)
    arr = scores["arr"].to_numpy(float)
    # Unknown ARR (one of the five) counts as 0 and is reported.
    assert out["arr_missing"] == int(np.isnan(arr).sum()) == 1
    assert out["arr_lost"]["value"] == pytest.approx(float(p @ np.nan_to_num(arr)), rel=1e-12)
    assert out["auc"]["value"] == pytest.approx(expected_auc(p), abs=1e-12)
    red = scores["band"] == "red"
    assert out["red_precision"]["value"] == pytest.approx(p[red].mean(), abs=1e-12)
    assert out["churners"]["low"] <= out["churners"]["value"] <= out["churners"]["high"]


def history_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A", "B", "C", "D", "A", "B"],
            "as_of": pd.to_datetime(["2024-01-01"] * 4 + ["2024-02-01"] * 2, utc=True),
            "churn_probability": [0.8, 0.2, 0.6, 0.1, 0.7, 0.3],
            "band": ["red", "green", "red", "green", "red", "yellow"],
            "arr": [100.0, 200.0, 300.0, 400.0, 100.0, 200.0],
            "renewal_date": pd.to_datetime(
                [
                    "2024-03-01",
                    "2024-03-01",
                    "2024-04-01",
                    "2024-09-01",
                    "2024-03-01",
                    "2024-03-01",
                ],
                utc=True,
            ),
        }
    )


def contracts_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A", "B", "C", "D", "C"],
            "end_date": pd.to_datetime(
                ["2024-03-01", "2024-03-01", "2024-04-01", "2024-09-01", "2024-04-01"]
            ).date,
            "outcome": ["churned", "renewed", "renewed", "churned", "churned"],
        }
    )


def test_earlier_runs_are_set_against_the_renewals_resolved_before_this_run() -> None:
    outcomes = renewal_outcomes(contracts_rows())
    # C's two terms ending the same day, one churned: the account churned.
    assert outcomes.set_index("account_id").loc["C", "churned"] == 1
    runs = earlier_against_outcomes(history_rows(), outcomes, date(2024, 5, 1))
    assert [r["as_of"] for r in runs] == ["2024-02-01", "2024-01-01"]
    # 2024-01-01: A, B, C resolved by 2024-05-01 (A churned, B renewed, C churned); D's
    # renewal (2024-09-01) lies after this run's as-of, so its outcome is not read.
    first = runs[1]
    assert (first["accounts"], first["resolved"]) == (4, 3)
    checks = {c["metric"]: c for c in first["checks"]}
    assert checks["churners"]["estimated"] == pytest.approx(0.8 + 0.2 + 0.6)
    assert checks["churners"]["realized"] == 2.0
    assert checks["arr_lost"]["realized"] == 100.0 + 300.0
    # Realized AUC over A (0.8, churned), B (0.2, renewed), C (0.6, churned): 1.
    assert checks["auc"]["realized"] == 1.0
    assert checks["red_precision"]["realized"] == 1.0  # A and C red, both churned
    # Nothing resolved before the first run: nothing to compare.
    assert earlier_against_outcomes(history_rows(), outcomes, date(2024, 2, 1)) == []


def test_a_history_written_before_issue_17_has_nothing_to_compare() -> None:
    old = history_rows().drop(columns=["band", "arr", "renewal_date"])
    assert earlier_against_outcomes(old, renewal_outcomes(contracts_rows()), date(2025, 1, 1)) == []


def fold_scores(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for fold in ("2024-01-01", "2024-07-01"):
        for lead in (0, 90):
            p = rng.beta(1.2, 6.0, n)
            rows.append(
                pd.DataFrame(
                    {
                        "fold": fold,
                        "lead_days": lead,
                        "model": p,
                        "label": (rng.random(n) < p).astype(float),
                        "arr": rng.lognormal(10, 1, n),
                        "yellow_at": 0.15,
                        "red_at": 0.35,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def backtest_of(scores: pd.DataFrame) -> BacktestResult:
    """A backtest result holding only ``scores`` (all the estimator reads)."""
    return BacktestResult(scores, pd.DataFrame(), pd.DataFrame(), None, {})  # type: ignore[arg-type]


def test_the_estimator_replayed_on_folds_of_a_calibrated_score(seed: int) -> None:
    scores = fold_scores(seed)
    table = estimates_on_folds(backtest_of(scores))
    assert len(table) == 4 and set(table["accounts"]) == {400}
    first = scores[(scores.fold == "2024-01-01") & (scores.lead_days == 0)]
    row = table.iloc[0]
    assert row["churners"] == pytest.approx(first["model"].sum())
    assert row["churners_realized"] == first["label"].sum()
    summary = estimate_summary(table)
    # Labels drawn from the probabilities: the estimates are close (400 accounts a book).
    assert summary["auc_abs_error"] < 0.05
    assert summary["churners_abs_error_share"] < 0.25
    # An over-confident score (probabilities pushed towards 0 and 1) is caught: its
    # expected AUC is far above what happened.
    sharp = scores.assign(model=np.clip(scores["model"] * 3 - 0.2, 0.001, 0.999))
    sharp_table = estimates_on_folds(backtest_of(sharp))
    assert (sharp_table["auc"] - sharp_table["auc_realized"]).mean() > 0.05


# --------------------------------------------------------------------------- report


def test_the_report_shows_the_expected_outcome_and_the_plays_in_words() -> None:
    scores = five_accounts()
    outlook = {
        "as_of": "2025-06-01",
        "expected": expected(scores),
        "earlier": earlier_against_outcomes(
            history_rows(), renewal_outcomes(contracts_rows()), date(2024, 5, 1)
        ),
        "on_folds": {"books": 12.0, "churners_abs_error_share": 0.11, "churners_within": 0.83,
                     "auc_abs_error": 0.021, "auc_within": 0.92},
    }  # fmt: skip
    plays = (
        measured("checkin_email", 0.5, -4.0, 5.0),
        measured("exec_sponsor", -8.0, -13.0, -3.0),
        MeasuredPlay(key="support", text="Escalate", status="too few",
                     lines=("Escalate: no estimate (too few). 3 treated",)),
    )  # fmt: skip
    page = render(scores, outlook=outlook, plays=plays)
    churners = scores["churn_probability"].sum()
    assert f"{churners:,.1f}" in page  # 2.0 expected churners of the five accounts
    assert "off by 11% on average and inside its interval in 83% of the books" in page
    assert "off by 0.021 on average" in page
    assert "2 of 2" in page and "3 of 4" in page  # resolved renewals of each earlier run
    view = plays_view(plays)
    assert [p["key"] for p in view] == ["exec_sponsor", "checkin_email", "support"]
    assert view[0]["status"] == "helps"
    assert 'data-play="exec_sponsor" data-status="helps"' in page
    assert "exec_sponsor: renewal odds +8 points" in page
    assert outlook_view({}) is None
    bare = render(scores)
    assert 'id="outlook"' not in bare and 'id="plays"' not in bare


def test_plays_cannot_be_measured_without_activities_or_against_inactivity() -> None:
    """``churn plays`` exits 2 with these (tests/test_exit_codes.py runs the first)."""
    from features.errors import ContractError
    from pipelines.plays import check_measurable

    with pytest.raises(ContractError, match=r"^activities: the data directory has no activities"):
        check_measurable({"accounts": object()}, "renewal")
    with pytest.raises(ContractError, match=r"^labels.label: plays are measured against the next"):
        check_measurable({"activities": object()}, "inactivity")
    check_measurable({"activities": object()}, "renewal")  # nothing to refuse


def test_no_renewal_at_the_plays_lead_names_the_setting() -> None:
    """Monthly terms have no snapshot 120 days before a renewal: say which setting to change."""
    from features.errors import ContractError
    from pipelines.plays import PlayUnits, check_units

    empty = PlayUnits(pd.DataFrame(columns=["account_id"]), (), (), 0)
    training = pd.DataFrame({"lead_days": [0, 30, 60]})
    with pytest.raises(ContractError) as err:
        check_units(empty, training, PlayConfig())
    assert str(err.value).startswith(
        "plays.lead_days: no decided renewal has a training snapshot 120 days before it "
        "(found 3 snapshots at other leads)"
    )
    assert "e.g. 20 for monthly terms" in str(err.value)
