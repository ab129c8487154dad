"""Product usage of one week: active users (breadth), vanity and key events (depth).

Called by the weekly loop (:mod:`simulator.dynamics`) for the live accounts. Only the
counts are drawn here; :mod:`simulator.emit` turns them into event rows after the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.logistic import sigmoid

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

# Weekly active probability of an activated user: sigmoid(ACT0 + ACT1 * health).
ACT0, ACT1 = 0.2, 1.0
# Vanity events per active user and week (login, dashboard view, page view).
VANITY_RATES = np.array([0.25, 0.11, 0.08])
WATERMELON_VANITY = 2.0
# Key events per active user and week at health 0, times exp(DEPTH * health).
KEY_RATE = 0.09
DEPTH = 0.7
WATERMELON_DEPTH = 0.3
KEY_WEIGHTS_4 = np.array([0.35, 0.2, 0.3, 0.15])
# The champion's share of key events, and the champion's own vanity events per week.
CHAMPION_SHARE = 0.4
CHAMPION_VANITY = np.array([2.5, 1.2, 0.6])


@dataclass(frozen=True)
class WeekUsage:
    """One week's usage of some accounts (rows), event kinds vanity first, then key.

    ``active`` is the number of regular (non-champion) users active in the week;
    ``regular`` and ``champion`` are the events (accounts x event kinds) of the regular
    users and of the champion.
    """

    active: I64
    regular: I32
    champion: I32


def draw_usage(
    rng: np.random.Generator,
    h: F64,
    champion_present: I64,
    n_regular: I64,
    watermelon: npt.NDArray[np.bool_],
    vanity_events: bool,
    n_vanity: int,
    n_key: int,
) -> WeekUsage:
    """Draw a week's active users and event counts of accounts with health ``h``.

    ``champion_present`` is 1 where the account's champion is there, ``n_regular`` the
    activated users besides the champion. Draws one binomial and two Poisson arrays.
    """
    key_w = KEY_WEIGHTS_4 if n_key == 4 else np.full(n_key, 1.0 / n_key)
    n_ev = n_vanity + n_key
    pres = champion_present
    p_act = sigmoid(ACT0 + ACT1 * h)
    wr = rng.binomial(n_regular, p_act)
    depth = np.exp(DEPTH * h) * np.where(watermelon, WATERMELON_DEPTH, 1.0)
    van_mult = np.where(watermelon, WATERMELON_VANITY, 1.0) * float(vanity_events)
    lam_reg = np.empty((h.size, n_ev))
    lam_reg[:, :n_vanity] = (wr * van_mult)[:, None] * VANITY_RATES
    lam_reg[:, n_vanity:] = (wr * KEY_RATE * depth)[:, None] * key_w
    lam_ch = np.empty((h.size, n_ev))
    lam_ch[:, :n_vanity] = (pres * van_mult)[:, None] * CHAMPION_VANITY
    # The champion does CHAMPION_SHARE of the key work the account would expect.
    expected_team = np.maximum(n_regular * p_act, 1.0) * KEY_RATE * depth
    ch_key = pres * expected_team * CHAMPION_SHARE / (1.0 - CHAMPION_SHARE)
    lam_ch[:, n_vanity:] = ch_key[:, None] * key_w
    reg_w = rng.poisson(lam_reg).astype(np.int32)
    ch_w = rng.poisson(lam_ch).astype(np.int32)
    return WeekUsage(active=wr, regular=reg_w, champion=ch_w)
