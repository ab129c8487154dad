"""Activities: what the CS team did, and how its ``play`` values meet the plays catalogue.

An activity names the play it ran by the catalogue's key (``exec_sponsor``) or by its text,
as a CRM exports it: with any case and stray spaces. One normal form, :func:`normal_play`
in Python and :func:`normal_play_expr` in the engines, decides what matches; validation
(:func:`features.rules.play_rule`) and :func:`play_keys` both read it. The touch features
themselves are built with the other families, in :mod:`features.families.activities`.
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis.expr.types as ir
import pandas as pd

#: What Ibis's ``strip()`` trims on DuckDB and on Spark; Python trims the same, no more
#: (``str.strip()`` would also trim a no-break space, which the engines keep).
WHITESPACE = " \t\n\r\v\f"


def normal_play(value: str) -> str:
    """A play as it is matched: surrounding whitespace trimmed, lower case."""
    return value.strip(WHITESPACE).lower()


def normal_play_expr(col: ir.StringValue) -> ir.StringValue:
    """:func:`normal_play` as an engine expression (the same on DuckDB and Spark)."""
    return col.strip().lower()


def play_keys(values: pd.Series, catalogue: Mapping[str, str]) -> pd.Series:
    """The catalogue key of each raw ``play`` value; missing where none matches.

    ``catalogue`` maps play key -> play text. A value matches a key or a text after
    :func:`normal_play` on both sides. A key wins over a text that reads the same (the key
    is the identifier); a text that several keys share maps to the first of them in the
    catalogue's order. Returns a ``string`` series with the index and name of ``values``.
    """
    lookup: dict[str, str] = {}
    for key, text in catalogue.items():
        lookup.setdefault(normal_play(text), key)
    lookup |= {normal_play(key): key for key in catalogue}
    normal = values.astype("string").str.strip(WHITESPACE).str.lower()
    return normal.map(lookup).astype("string")
