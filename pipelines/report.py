"""``report.html`` for CS ops, and CSV cells a spreadsheet cannot run as formulas.

The page is assembled here; its sections' values come from :mod:`pipelines.report_summary`
(summary, quality, drift), :mod:`pipelines.report_sections` (expected outcome, plays) and
:mod:`pipelines.report_accounts` (the accounts as JSON).

:func:`render_report` is pure: frames and figures in, one self-contained HTML string out.
:func:`write_report` is the only function here that touches the disk. The markup, CSS and
script are package files under ``pipelines/templates/`` (a Jinja2 template with
autoescaping on); this module prepares what they show.

The page is built for a real book (10,000 accounts and more). The summary, quality and
drift sections are rendered here, as HTML. The accounts are not: they travel as one JSON
document in a ``<script type="application/json">`` block, and the page's script renders
the table from it, a page of rows at a time, with search, filters by band, segment, CSM and
renewal month, sorting, and each account's details opened on demand. The view (search,
filters, sort, page, open account) lives in the address's ``#`` part, so a CSM can
bookmark "my accounts". Rendering 10,000 accounts as HTML rows and detail blocks made a
23 MB page; with the accounts as JSON it is 2.4 MB (see the decision above
:func:`compact_png`).

Safety. Every text from the data (account ids, names, segments, CSMs, drivers, plays,
changes, feature labels) is either HTML-escaped by the template or JSON-encoded with ``<``,
``>`` and ``&`` written as ``\\u003c``, ``\\u003e`` and ``\\u0026`` (:func:`script_json`),
so no value can close the data block; the script inserts values with ``textContent`` and
``setAttribute`` only. The page's Content-Security-Policy forbids every network request and
allows the one script and the one style sheet by their hashes (no ``'unsafe-inline'``), and
requires Trusted Types, so that a string assigned to ``innerHTML`` throws instead of being
parsed as markup.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup
from PIL import Image

from models.palette import palette_png
from models.plays import MeasuredPlay
from pipelines.files import write_atomically
from pipelines.report_accounts import (
    COLUMNS,
    PROTECTIVE,
    accounts_payload,
    filters_view,
    script_json,
)
from pipelines.report_format import count as _count
from pipelines.report_format import money as _money
from pipelines.report_format import pct as _pct
from pipelines.report_format import text as _text
from pipelines.report_sections import outlook_view, plays_view
from pipelines.report_summary import (
    BACKTEST_FIGURES,
    BAND_LABEL,
    BANDS,
    drift_view,
    portfolio_summary,
    quality_view,
    summary_view,
)

#: The report's public names, some defined in its section modules.
__all__ = [
    "BACKTEST_FIGURES",
    "PROTECTIVE",
    "compact_png",
    "neutralise_csv",
    "neutralise_csv_cell",
    "portfolio_summary",
    "render_report",
    "script_json",
    "write_report",
]

REQUIRED = (
    "account_id",
    "churn_probability",
    "health_score",
    "band",
    "renewal_date",
    "arr",
    "drivers",
    "play",
    "priority",
)
#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# --------------------------------------------------------------------------- CSV safety


def neutralise_csv_cell(value: Any) -> Any:
    """Prefix ``'`` to a text cell a spreadsheet would run as a formula; leave the rest alone.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is affected;
    numbers (``-0.5`` stays a float), dates and missing values are returned unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are neutralised; numeric columns are untouched."""
    text_cols = [
        c
        for c in frame.columns
        if not pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_datetime64_any_dtype(frame[c])
    ]
    return frame.assign(**{str(c): frame[c].map(neutralise_csv_cell) for c in text_cols})


# --------------------------------------------------------------------------- waterfalls

# Decision (the report's size). At 10,000 accounts the page rendered as HTML was 22.6 MB
# (benchmarks/bench_report.py's book, with 50 waterfalls): 20.2 MB of HTML repeated per
# account (130,000 table cells and 10,000 detail blocks) and 2.4 MB of pictures (50
# matplotlib PNGs of about 35 KB, base64). So the rows became JSON (accounts_payload:
# 1.7 MB), and the pictures stay PNGs for the accounts the caller drew them for: ``churn
# score`` draws them for the ``scoring.waterfalls`` accounts of highest priority (50 by
# default), the ones that need attention first; every other account's details say how to
# get one (``churn explain``). Drawing every account's waterfall client-side as SVG would
# need each account's SHAP contributions in the scores frame (about 25 numbers each, a
# change to pipelines.scoring), so it is not done here. Each PNG is re-encoded with a
# 256-colour palette: a waterfall is a few flat colours plus anti-aliasing, so nothing
# visible changes, and it is three times smaller (2.4 MB -> 0.7 MB; 15 ms a picture).
# models.waterfall now draws its pictures with that palette, so they pass unchanged. The
# pictures sit in their own JSON block, which the script reads when a detail first opens.
# The page is 2.4 MB at 10,000 accounts and 1.0 MB at 1,000.


def compact_png(png: bytes) -> bytes:
    """``png`` re-encoded with a 256-colour palette, or unchanged when that is not smaller.

    A picture with transparency is returned unchanged (the palette would drop its alpha),
    and so is one that has a palette already (``models.waterfall`` draws them so).
    """
    with Image.open(io.BytesIO(png)) as image:
        if image.mode == "P":
            return png
        alpha = image.getchannel("A").getextrema() if "A" in image.getbands() else (255, 255)
        transparent = "transparency" in image.info or alpha[0] != 255
        if transparent:
            return png
        small = palette_png(image)
    return small if len(small) < len(png) else png


# --------------------------------------------------------------------------- page


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment of the report's templates (built on first use, then kept)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipelines", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, pct=_pct, count=_count)
    return env


def _asset(name: str) -> str:
    """The text of a package file beside the templates (the script), as it is."""
    env = _environment()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return source


def _inline(text: str, tag: str) -> Markup:
    """``text`` for an inline ``<tag>`` element, refused if it could end that element."""
    if f"</{tag}" in text.lower() or "<!--" in text:
        raise ValueError(f"templates: the inline {tag} contains '</{tag}' or '<!--'.")
    return Markup(text)  # our own package file, checked above


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _check_inputs(
    scores: pd.DataFrame, thresholds: Mapping[str, float], waterfalls: Mapping[str, bytes]
) -> None:
    missing = [c for c in REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(
            f"scores: missing columns {missing}. render_report expects the scores columns of "
            "DATA_CONTRACT.md plus priority (ARR x probability); pass the frame churn score built."
        )
    bad = scores.loc[~scores["band"].isin(BANDS), "account_id"]
    if len(bad):
        raise ValueError(
            f"scores.band: {len(bad)} rows are not green, yellow or red (account_id "
            f"{', '.join(map(str, bad[:3]))}). Bands come from the thresholds; check the column."
        )
    if (
        not {"red", "yellow"} <= set(thresholds)
        or not 0 <= thresholds["yellow"] <= thresholds["red"] <= 1
    ):
        raise ValueError(
            f"thresholds: expected {{'red': p, 'yellow': q}} with 0 <= q <= p <= 1, got "
            f"{dict(thresholds)}."
        )
    not_png = [a for a, png in waterfalls.items() if not png.startswith(b"\x89PNG\r\n\x1a\n")]
    if not_png:
        raise ValueError(
            f"waterfalls: {len(not_png)} images are not PNG bytes (account_id "
            f"{', '.join(not_png[:3])}). Save the figure with format='png'."
        )


def render_report(
    scores: pd.DataFrame,
    *,
    as_of: date,
    model_version: str,
    thresholds: dict[str, float],
    band_quality: list[dict[str, Any]],
    backtest: dict[str, dict[str, Any]],
    evaluation: dict[str, Any],
    drift: pd.DataFrame,
    waterfalls: dict[str, bytes],
    outlook: Mapping[str, Any] | None = None,
    plays: Sequence[MeasuredPlay] = (),
) -> str:
    """The self-contained ``report.html`` page for CS ops, as a string.

    Parameters
    ----------
    scores
        One row per scored account: the scores columns of DATA_CONTRACT.md (name, segment
        and csm may be absent or empty; arr may be NaN, renewal_date NaT) plus ``priority``
        (ARR x probability), ``change`` (text, may be empty) and ``driver_list`` (the
        reasons of ``drivers``, one per item). Rows are shown by priority, highest first.
        ``overdue`` (optional, boolean) marks an account whose renewal date passed with no
        outcome recorded: an "Overdue" badge on its row and details, a filter, and a count
        in the summary.
    as_of
        The scoring date; renewals are shown as days from it.
    model_version
        The registered model version that produced the scores.
    thresholds
        ``{"red": p_red, "yellow": p_yellow}``: churn probability at or above which a band starts.
    band_quality
        One mapping per band (``band``, ``threshold``, ``share_of_accounts``, ``precision``,
        ``recall`` and their ``_low``/``_high`` bounds), from ``scoring.json``.
    backtest
        Backtest figures of the model in use, each ``{value, low, high}``; the keys of
        :data:`BACKTEST_FIGURES` are shown with their plain-language label (others are not
        shown).
    evaluation
        What the figures rest on (``kind``, ``kind_text``, ``statement``, ``skipped``,
        ``ece_by_fold``, ``interval_level``, ``band_lead_days``), from ``scoring.json``.
    drift
        Columns feature, label, psi, status (``ok``, ``watch`` or ``drift``).
    waterfalls
        account_id -> PNG bytes of its SHAP waterfall; accounts without one get no figure.
        Each PNG is embedded (re-encoded with a palette, about 16 KB each as base64), so
        pass only the accounts worth showing; pictures of accounts not in ``scores`` are
        left out.
    outlook
        Today's expected outcome and earlier runs against theirs
        (:func:`pipelines.outlook.outlook`); no section when None or empty.
    plays
        The plays measured at training (:class:`models.plays.MeasuredPlay`); no section
        when empty.

    The page needs no network: CSS and JS are inline, images are data URIs, and its
    Content-Security-Policy blocks every request. The accounts table is drawn by the page's
    script from the embedded JSON (:func:`accounts_payload`); its view is kept in the
    address's ``#`` part (``#csm=Dana+Ortiz&band=red``). Opening the page at ``#selftest``
    clicks the table headers and writes ``ok`` or the problems found to
    ``<html data-selftest>``; script errors are recorded in ``<html data-errors>``, and
    ``<html data-ready>`` is set once the table is drawn.
    """
    _check_inputs(scores, thresholds, waterfalls)
    ordered = scores.sort_values("priority", ascending=False, na_position="last", kind="stable")
    sections = _sections(
        ordered, as_of=as_of, model_version=model_version, thresholds=thresholds,
        band_quality=band_quality, backtest=backtest, evaluation=evaluation, drift=drift,
        waterfalls=waterfalls, outlook=outlook, plays=plays,
    )  # fmt: skip
    return _page(sections)


def _sections(
    ordered: pd.DataFrame,
    *,
    as_of: date,
    model_version: str,
    thresholds: dict[str, float],
    band_quality: list[dict[str, Any]],
    backtest: dict[str, dict[str, Any]],
    evaluation: dict[str, Any],
    drift: pd.DataFrame,
    waterfalls: dict[str, bytes],
    outlook: Mapping[str, Any] | None,
    plays: Sequence[MeasuredPlay],
) -> dict[str, Any]:
    """What the template shows, by name: the scores ``ordered`` by priority, and the
    arguments of :func:`render_report` prepared by the section modules."""
    summary = portfolio_summary(ordered)
    ids = [_text(a) for a in ordered["account_id"]]
    pictures = {
        a: base64.b64encode(compact_png(waterfalls[a])).decode("ascii")
        for a in dict.fromkeys(ids)
        if a in waterfalls
    }
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "model_version": model_version,
        "accounts": len(ordered),
        "moved": int(drift["status"].isin(["watch", "drift"]).sum()),
        "summary": summary_view(summary, thresholds),
        "band_label": BAND_LABEL,
        "columns": COLUMNS,
        "filters": filters_view(ordered, as_of, summary),
        "pictures": len(pictures),
        "quality": quality_view(backtest, evaluation, thresholds, band_quality, model_version),
        "drift": drift_view(drift),
        "outlook": outlook_view(outlook or {}),
        "plays": plays_view(plays),
        "data": script_json(accounts_payload(ordered, as_of)),
        "waterfalls": script_json(pictures),
    }


def _page(sections: Mapping[str, Any]) -> str:
    """``report.html`` rendered with ``sections``, its CSS and script inline, and a
    Content-Security-Policy that allows those two by their hashes and nothing else."""
    css = _environment().get_template("report.css").render(columns=COLUMNS)
    script = _asset("report.js")
    csp = (
        f"default-src 'none'; img-src data:; style-src '{_sha256(css)}'; "
        f"script-src '{_sha256(script)}'; base-uri 'none'; form-action 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )
    page = (
        _environment()
        .get_template("report.html")
        .render(
            csp=Markup(csp),  # our own words and base64 hashes: no quote, '<' or '&' to escape
            css=_inline(css, "style"),
            script=_inline(script, "script"),
            **sections,
        )
    )
    return page


def write_report(html_text: str, path: Path) -> None:
    """Write the page to ``path`` atomically (through a temporary sibling, then rename)."""
    write_atomically(lambda p: p.write_text(html_text, encoding="utf-8"), path)
