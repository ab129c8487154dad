"""Cast a table's contract columns to their contract types, and report what does not fit.

A value that cannot be cast is a problem (:class:`~features.errors.Problem`) with its count
and examples, never silently a missing value. Numeric text is read in its style
(:mod:`features.number_styles`).
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis
import ibis.expr.types as ir

from features.contract import IBIS_TYPES, TableSpec
from features.errors import Problem
from features.number_styles import Style, number_text

EXAMPLES = 3


def _cast(col: ir.Value, kind: str, style: Style = "plain") -> ir.Value:
    """``col`` as the contract ``kind``; ``style``: how a numeric column's text is written."""
    target = ibis.dtype(IBIS_TYPES[kind])
    if col.type() == target:
        return col
    if kind in ("float", "integer") and style != "plain" and isinstance(col, ir.StringValue):
        col = number_text(col, style)
    if kind == "integer" and col.type().is_string():
        # "12.0" from a spreadsheet export is a whole number; "12.5" is not and stays NULL.
        number = col.try_cast("float64")
        return (number == number.floor()).ifelse(number, ibis.null()).try_cast("int64")
    if kind == "date" and col.type().is_string():
        # A date column may arrive as timestamps in text; keep the UTC calendar day.
        return col.try_cast(IBIS_TYPES["timestamp"]).date()
    return col.try_cast(target)


def cannot_fail(source: ibis.DataType, kind: str) -> bool:
    """Whether casting ``source`` to the contract ``kind`` can never turn a value into NULL.

    Spark's timestamps have no zone in Ibis' eyes, so a Parquet timestamp is "cast" to
    timestamp('UTC') there; that cannot fail, and counting failures would cost one job.
    """
    target = ibis.dtype(IBIS_TYPES[kind])
    return source == target or (source.is_timestamp() and target.is_timestamp())


def conform(
    raw: ir.Table, spec: TableSpec, styles: Mapping[str, Style] | None = None
) -> tuple[ir.Table, list[Problem]]:
    """Cast the contract columns of ``raw`` to their types; report what does not fit.

    Missing required columns and values that do not parse are hard problems. Missing
    optional columns are added as empty, so later stages see one shape. ``styles``: how
    numeric columns held as text are written (:func:`number_styles`); a number that reads
    two ways is reported, not guessed.
    """
    styles = styles or {}
    problems: list[Problem] = []
    present = set(raw.columns)
    for col in spec.columns:
        if col.required and col.name not in present:
            problems.append(
                Problem(
                    spec.name,
                    col.name,
                    "required column",
                    "hard",
                    0,
                    (),
                    "required column is missing",
                    f"add the column {col.name} ({col.kind}); columns found: "
                    + ", ".join(raw.columns),
                )
            )
    if problems:
        return raw, problems

    cast = {
        c.name: (
            _cast(raw[c.name], c.kind, styles.get(c.name, "plain"))
            if c.name in present
            else ibis.null().cast(IBIS_TYPES[c.kind])
        ).name(c.name)
        for c in spec.columns
    }
    extras = [raw[c] for c in raw.columns if c not in cast]
    typed = raw.select(*cast.values(), *extras)

    failed = {
        c.name: (raw[c.name].notnull() & cast[c.name].isnull()).sum()
        for c in spec.columns
        if c.name in present and not cannot_fail(raw[c.name].type(), c.kind)
    }
    if failed:
        counts = raw.aggregate(**{k: v.fill_null(0) for k, v in failed.items()}).to_pyarrow()
        for name, n in ((k, counts[k][0].as_py()) for k in failed):
            if not n:
                continue
            bad = raw.filter(raw[name].notnull() & cast[name].isnull())
            examples = [
                str(v)
                for v in bad.select(name)
                .distinct()
                .order_by(name)
                .limit(EXAMPLES)
                .to_pyarrow()[name]
                .to_pylist()
            ]
            kind = spec.column(name).kind
            two_ways = styles.get(name) == "ambiguous"
            problems.append(
                Problem(
                    spec.name,
                    name,
                    f"parses as {kind}",
                    "hard",
                    int(n),
                    tuple(repr(v) for v in examples),
                    "reads two ways, with '.' or ',' as the decimal point"
                    if two_ways
                    else f"cannot be read as a {kind}",
                    _PARSE_FIX["float" if two_ways else kind],
                )
            )
    return typed, problems


_PARSE_FIX = {
    "timestamp": "write timestamps as ISO-8601 text (2024-03-01, 2024-03-01T09:30:00 or "
    "2024-03-01T09:30:00+02:00; no zone means UTC) or as Parquet timestamps",
    "date": "write dates as ISO-8601 text (2024-03-01) or as Parquet dates",
    "float": "write numbers with a dot as decimal separator and no thousands separator",
    "integer": "write whole numbers without a decimal part or thousands separator",
    "string": "write the value as text",
}
