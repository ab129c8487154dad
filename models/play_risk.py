"""The model's risk and drivers at a play's snapshot, without the renewal's own outcome.

Adjusting a play's effect for "the model's own point-in-time probability" with the
champion itself would leak: the champion was fitted on these very renewals, so its
probability for a renewal the play saved already leans towards "renews", and the
adjustment then takes part of the play's effect away (on the simulator the executive
sponsor call, -5.5 points on the treated, read -0.7 with the champion's own probability).
Here the champion's trees are refitted K times with its own parameters and rounds, each
time without one group of accounts, and each group's snapshots are read by the fit that
never saw that account: the probability and each driver family's contribution (TreeSHAP,
log-odds), as :meth:`models.scorer.HealthScorer.score` gives them. Cross-fitting by
account, as in double machine learning (Chernozhukov et al. 2018).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.columns import matrix
from models.explain import contributions, family_contributions
from models.scorer import HealthScorer
from models.train import train_booster

#: Loaded-model parameters that describe the old run, not the trees to grow.
NOT_REFITTED = ("num_iterations", "early_stopping_round", "num_threads", "verbosity",
                "categorical_feature")  # fmt: skip


def refit_params(scorer: HealthScorer, num_threads: int) -> dict[str, Any]:
    """The champion's LightGBM parameters, as its model file records them."""
    params = {k: v for k, v in scorer.booster_.params.items() if k not in NOT_REFITTED}
    return params | {"num_threads": num_threads, "verbosity": -1}


def cross_fitted_risk(
    training: pd.DataFrame,
    units: pd.DataFrame,
    scorer: HealthScorer,
    *,
    folds: int = 5,
    seed: int = 0,
    num_threads: int = 1,
) -> pd.DataFrame:
    """``risk`` (the trees' churn probability, uncalibrated) and one column per driver
    family for each row of ``units``, each from trees fitted on the labelled rows of
    ``training`` of the other accounts.

    ``training`` and ``units`` are training-set frames (the model's feature columns,
    ``account_id``, ``label``); accounts are split into ``folds`` groups at random
    (``seed``). The result is aligned with ``units``.
    """
    labelled = training.loc[training["label"].notna()]
    accounts = np.sort(units["account_id"].astype("str").unique())
    group = dict(zip(accounts, np.random.default_rng(seed).permutation(accounts.size) % folds,
                     strict=True))  # fmt: skip
    unit_group = units["account_id"].astype("str").map(group).to_numpy()
    train_group = labelled["account_id"].astype("str").map(group).to_numpy()
    params = refit_params(scorer, num_threads)
    X_units = matrix(units, scorer.features_, scorer.categories_)
    X_train = matrix(labelled, scorer.features_, scorer.categories_)
    y = labelled["label"].to_numpy(float)
    families = scorer.families
    risk = np.full(len(units), np.nan)
    drivers = pd.DataFrame(0.0, index=units.index, columns=families)
    for g in range(folds):
        rows = unit_group == g
        if not rows.any():
            continue
        keep = train_group != g  # NaN (an account without a unit) compares unequal: kept
        booster: lgb.Booster = train_booster(X_train[keep], y[keep], params, scorer.n_estimators_)
        X = X_units[rows]
        risk[rows] = booster.predict(X)
        fam = family_contributions(contributions(booster, X), scorer.features_)
        drivers.loc[rows, :] = fam.reindex(columns=families, fill_value=0.0).to_numpy()
    return drivers.assign(risk=risk)
