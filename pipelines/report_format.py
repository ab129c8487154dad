"""Display text of the report's figures, shared by its sections."""

from __future__ import annotations

from typing import Any

import pandas as pd


def text(value: Any) -> str:
    """A cell as display text; missing (None, NaN, NA, NaT) is the empty string."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)


def money(x: float | None) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:,.0f}"


def pct(x: float | None, digits: int = 0) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{digits}%}"


def count(n: int) -> str:
    return f"{int(n):,}"
