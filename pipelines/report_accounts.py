"""The report's accounts: one JSON document the page's script draws the table from.

Rendering 10,000 accounts as HTML rows and detail blocks made a 23 MB page; as JSON with
shared strings it is 2.4 MB (:func:`accounts_payload`). :func:`script_json` escapes it so
that no value can close its ``<script>`` block.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import pandas as pd
from markupsafe import Markup

from pipelines.report_format import text as _text
from pipelines.report_summary import PortfolioSummary, driver_texts, overdue_rows

# --------------------------------------------------------------------------- accounts

#: Columns of the accounts table: key (the script's name for the column), header, sort type,
#: CSS class and share of the table's width (fixed layout, so the table fits its window).
COLUMNS = (
    ("account", "Account", "text", "", 6.5),
    ("name", "Name", "text", "", 9),
    ("segment", "Segment", "text", "", 7),
    ("csm", "CSM", "text", "", 7),
    ("band", "Band", "number", "", 5.5),
    ("health", "Health", "number", "num", 4.5),
    ("probability", "Churn probability", "number", "num", 7),
    ("arr", "ARR", "number", "num", 6),
    ("priority", "Priority", "number", "num", 6),
    ("renewal", "Renewal", "number", "nowrap", 7.5),
    ("drivers", "Top drivers", "text", "", 17),
    ("play", "Play", "text", "", 8.5),
    ("change", "Change", "text", "", 8.5),
)
#: Positions of an account's values in the page's JSON rows (``accounts_payload``).
FIELDS = (
    "id",
    "name",
    "segment",
    "csm",
    "band",
    "health",
    "probability",
    "arr",
    "priority",
    "renewal",
    "overdue",
    "drivers",
    "protective",
    "play",
    "change",
)
#: Fields whose values repeat across accounts: stored once in the JSON's ``text`` list.
LOOKUP = ("segment", "csm", "band", "drivers", "protective", "play", "change")
#: How ``pipelines.scoring`` marks the protective factor among an account's drivers.
PROTECTIVE = "Protective: "
#: Rows per page the reader can choose; the first page shows ``PAGE_SIZE``.
PAGE_SIZES = (25, 50, 100, 200)
PAGE_SIZE = 50


def _number(x: Any, digits: int) -> float | int | None:
    """``x`` rounded to ``digits`` decimals, an int when whole (shorter JSON); None when missing."""
    if x is None or pd.isna(x):
        return None
    value = round(float(x), digits)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value


def _renewal_days(scores: pd.DataFrame, as_of: date) -> list[int | None]:
    """Days from ``as_of`` to each renewal date (its calendar day); None when there is none."""
    out: list[int | None] = []
    for value in scores["renewal_date"]:
        out.append(None if pd.isna(value) else (pd.Timestamp(value).date() - as_of).days)
    return out


def accounts_payload(scores: pd.DataFrame, as_of: date) -> dict[str, Any]:
    """The accounts as the page's script reads them: one JSON document, rows in ``scores``' order.

    ``fields`` names the positions in each row (:data:`FIELDS`). Text that repeats across
    accounts (:data:`LOOKUP`: segment, CSM, band, drivers, play, change) is stored once, in
    ``text``, and a row holds its index there; ids and names are unique, so a row holds them
    itself. Numbers are rounded to what the page shows or sorts by: probability to four
    decimals, ARR to cents, priority to units (the page's order by priority is the row
    order, so rounding cannot reorder the book). ``renewal`` is days from ``asOf``,
    ``overdue`` is 1 or 0, ``drivers`` are the risk drivers, most important first, and
    ``protective`` is the protective factor (the driver that ``pipelines.scoring`` starts
    with "Protective: ", without those words). Missing values are null.

    Size: 10,000 accounts as HTML rows and detail blocks took 20.2 MB; as this document,
    1.7 MB (benchmarks/bench_report.py's book; the ids, names and driver sentences that
    differ from account to account are most of it).
    """
    text: dict[str, int] = {}

    def ref(value: Any) -> int | None:
        s = _text(value)
        return text.setdefault(s, len(text)) if s else None

    overdue = overdue_rows(scores).tolist()
    rows = []
    for row, days, late in zip(
        scores.to_dict("records"), _renewal_days(scores, as_of), overdue, strict=True
    ):
        drivers = driver_texts(row)
        risks = [d for d in drivers if not d.startswith(PROTECTIVE)]
        protective = next((d[len(PROTECTIVE) :] for d in drivers if d.startswith(PROTECTIVE)), None)
        values = {
            "id": _text(row["account_id"]),
            "name": _text(row.get("name")) or None,
            "segment": ref(row.get("segment")),
            "csm": ref(row.get("csm")),
            "band": ref(row["band"]),
            "health": int(row["health_score"]),
            "probability": _number(row["churn_probability"], 4),
            "arr": _number(row["arr"], 2),
            "priority": _number(row["priority"], 0),
            "renewal": days,
            "overdue": int(late),
            "drivers": [ref(d) for d in risks],
            "protective": ref(protective),
            "play": ref(row.get("play")),
            "change": ref(row.get("change")),
        }
        rows.append([values[f] for f in FIELDS])
    return {
        "asOf": f"{as_of:%Y-%m-%d}",
        "fields": list(FIELDS),
        "lookup": list(LOOKUP),
        "text": list(text),
        "rows": rows,
    }


def _options(
    values: Sequence[str], missing: str, label: Callable[[str], str] = str
) -> list[dict[str, Any]]:
    """A filter's choices: each distinct value with its count, sorted, the missing one last."""
    counts = pd.Series(values, dtype="object").value_counts(sort=False)
    present = sorted((v for v in counts.index if v), key=lambda v: (str(v).casefold(), v))
    out = [{"value": v, "label": label(v), "count": int(counts[v])} for v in present]
    if "" in counts.index:
        out.append({"value": "", "label": missing, "count": int(counts[""])})
    return out


def filters_view(scores: pd.DataFrame, as_of: date, summary: PortfolioSummary) -> dict[str, Any]:
    """The choices of the filters above the table, from the whole book."""

    def column(name: str) -> list[str]:
        return [_text(v) for v in scores[name]] if name in scores else [""] * len(scores)

    months = [
        "" if d is None else f"{pd.Timestamp(as_of) + pd.Timedelta(days=d):%Y-%m}"
        for d in _renewal_days(scores, as_of)
    ]
    segments, csms = column("segment"), column("csm")
    return {
        "bands": [(str(b), int(n)) for b, n in summary.by_band["accounts"].items()],
        # A filter that could only say "all" is left out.
        "segment": _options(segments, "(no segment)") if any(segments) else [],
        "csm": _options(csms, "(no CSM)") if any(csms) else [],
        "renewal": _options(
            months, "(no renewal date)", lambda m: f"{pd.Timestamp(m + '-01'):%b %Y}"
        ),
        "overdue": summary.overdue,
        "page_sizes": PAGE_SIZES,
        "page_size": PAGE_SIZE,
    }


def script_json(value: Any) -> Markup:
    """``value`` as compact JSON that is safe inside a ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` can only occur inside JSON strings, where ``\\u003c``, ``\\u003e``
    and ``\\u0026`` mean the same characters to ``JSON.parse``: with them replaced, no value
    can end the script element (``</script>``) or open a comment (``<!--``). U+2028 and
    U+2029 are escaped too, for any reader that treats the block as JavaScript.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return Markup(text)  # escaped above, for this one context
