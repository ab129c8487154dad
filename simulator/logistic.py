"""The logistic function every probability of the simulator goes through.

The churn formula, the plays' assignment, usage, tickets, invoices, surveys and the
planted training set all turn a log-odds into a probability with this one function, so
they compute the same floating-point expression, ``1 / (1 + exp(-x))``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def sigmoid(x: F64) -> F64:
    """``1 / (1 + exp(-x))``, elementwise: the probability of the log-odds ``x``.

    Kept as this exact expression (not ``scipy.special.expit``, which differs in the last
    bit for about 2 % of inputs) because the simulated worlds are pinned byte for byte.
    """
    out: F64 = 1.0 / (1.0 + np.exp(-x))
    return out
