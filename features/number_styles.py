"""How numeric columns held as text are written, and their text as plain numbers.

Spreadsheet exports write "1,200.50" (thousands separators) or "1.200,50" (a decimal
comma, beside a ';' delimiter). :func:`number_styles` tells each numeric contract column's
style from its values, :func:`number_text` rewrites the text as plain numbers for the cast,
and :func:`style_notes` says what was assumed, for ``DataSet.notes``. A column whose
values read both ways is "ambiguous" and is reported, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import ibis
import ibis.expr.types as ir

from features.contract import TableSpec

#: How a numeric column is written as text: plain numbers, "1,200.50" (us), "1.200,50" (eu),
#: or values that read both ways (ambiguous).
Style = Literal["plain", "us", "eu", "ambiguous"]
_DIGITS = r"^[+-]?[0-9]+$"


def _grouped(thousands: str, decimal: str) -> str:
    """Numbers with ``thousands`` between groups of three digits (or none) and a ``decimal``."""
    t, d = re.escape(thousands), re.escape(decimal)
    return rf"^[+-]?([1-9][0-9]{{0,2}}({t}[0-9]{{3}})+|[0-9]+)({d}[0-9]+)?$"


_US, _EU = _grouped(",", "."), _grouped(".", ",")


def number_style(counts: Mapping[str, int], comma_file: bool) -> Style:
    """How a numeric column held as text is written, from counts of its non-empty values.

    ``counts``: ``n`` values; ``plain`` that cast as numbers; ``us`` that read as
    "1,200.50"; ``eu`` as "1.200,50"; ``dotted`` that hold a dot. A decimal comma is
    considered only where the delimiter is not a comma. "ambiguous": every value reads both
    ways ("1,200" or "12.000" in a ';' file), so none is guessed; "plain": read as numbers
    (conform() reports what does not parse).
    """
    n = counts["n"]
    eu_too = not comma_file and counts["eu"] == n
    if n == 0 or (counts["plain"] == n and not (eu_too and counts["dotted"])):
        return "plain"
    if counts["us"] == n:
        return "ambiguous" if eu_too else "us"
    return "eu" if eu_too else "plain"


def number_text(col: ir.StringValue, style: Style) -> ir.StringValue:
    """Numeric text of ``style`` rewritten as plain numbers; values read two ways as NULL."""
    col = col.strip()
    if style == "us":
        return col.replace(",", "")
    if style == "eu":
        return col.replace(".", "").replace(",", ".")
    return col.re_search(_DIGITS).ifelse(col, ibis.null(str))


def number_styles(
    raw: ir.Table, spec: TableSpec, delimiter: str | None = None, parse_all: bool = False
) -> dict[str, Style]:
    """The style of each numeric contract column held as text (:func:`number_style`).

    ``delimiter``: the CSV file's (a decimal comma is considered only without a comma
    delimiter). ``parse_all`` also counts the rows, which makes DuckDB parse every line
    of a CSV file: a ragged line fails here, inside the read, rather than in a later stage.
    A first pass counts the values that are plain numbers; only the columns where that does
    not settle it are matched against the patterns, in a second pass (the regular
    expressions cost more than the parse).
    """
    texts = [
        c.name
        for c in spec.columns
        if c.kind in ("float", "integer")
        and c.name in raw.columns
        and raw[c.name].type().is_string()
    ]
    comma_file = delimiter in (None, ",")
    aggs: dict[str, ir.Scalar] = {"rows": raw.count()} if parse_all else {}
    for i, name in enumerate(texts):
        s = raw[name]
        # As the plain cast reads them (unstripped); dots matter only beside a decimal comma.
        aggs |= {f"n{i}": s.count(), f"plain{i}": s.try_cast("float64").count()}
        if not comma_file:
            aggs[f"dotted{i}"] = s.count(where=s.contains("."))
    if not aggs:
        return {}
    got = {k: int(v or 0) for k, v in raw.aggregate(**aggs).to_pyarrow().to_pylist()[0].items()}
    got |= {f"dotted{i}": 0 for i in range(len(texts))} if comma_file else {}
    open_ = [
        i
        for i in range(len(texts))
        if got[f"plain{i}"] < got[f"n{i}"] or (not comma_file and got[f"dotted{i}"])
    ]
    got |= {f"{k}{i}": 0 for i in range(len(texts)) for k in ("us", "eu")}
    if open_:
        patterns: dict[str, ir.Scalar] = {}
        for i in open_:
            s = raw[texts[i]].strip()
            patterns[f"us{i}"] = s.count(where=s.re_search(_US))
            patterns[f"eu{i}"] = s.count(where=s.re_search(_EU))
        more = raw.aggregate(**patterns).to_pyarrow().to_pylist()[0]
        got |= {k: int(v or 0) for k, v in more.items()}
    keys = ("n", "plain", "us", "eu", "dotted")
    return {
        name: number_style({k: got[f"{k}{i}"] for k in keys}, comma_file)
        for i, name in enumerate(texts)
    }


_STYLE_NOTES = {
    "us": "read with ',' as thousands separator",
    "eu": "read with a decimal comma ('.' as thousands separator)",
}


def style_notes(styles: Mapping[str, Style]) -> list[str]:
    """What each styled column was read as, one note per column (``DataSet.notes``)."""
    return [f"{c} {_STYLE_NOTES[s]}" for c, s in styles.items() if s in _STYLE_NOTES]
