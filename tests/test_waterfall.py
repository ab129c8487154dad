"""The SHAP waterfall's picture: every text inside it, and no margin wider than the gap.

``models.waterfall`` places the axes from one measure of its texts instead of
``tight_layout``. A text cut at the edge of the picture leaves dark pixels on its border;
a margin sized for nothing leaves a wide white band. Both are read from the PNG itself.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from features.catalog import Feature
from models.waterfall import waterfall_png

#: tight_layout's gap between the outermost text and the edge: 1.08 times the font size
#: (10 points at 90 dots per inch, 72 points per inch), in pixels.
GAP = 1.08 * 10 * 90 / 72
#: Grey levels from here up are the white background (the palette may store it as 254).
BLANK = 250


def picture(contrib: list[float], labels: dict[str, str] | None = None, top: int = 8) -> np.ndarray:
    names = [f"f{i}" for i in range(len(contrib) - 1)]
    features = [
        Feature(n, "frequency", (labels or {}).get(n, n), "events", 30, "higher", "a test feature")
        for n in names
    ]
    png = waterfall_png(
        pd.Series(contrib, index=["bias", *names]),
        features,
        pd.Series(np.arange(len(names), dtype=float) * 1234.5, index=names),
        "A-00042: why this score",
        top=top,
    )
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def border(pixels: np.ndarray) -> np.ndarray:
    """The grey levels of a picture's outer two pixels, all four sides."""
    return np.concatenate([pixels[:2].ravel(), pixels[-2:].ravel(),
                           pixels[:, :2].ravel(), pixels[:, -2:].ravel()])  # fmt: skip


CASES = {
    "mixed": [-1.2, 0.8, -0.5, 0.3, 0.25, -0.2, 0.1, -0.05, 0.04, 0.02, -0.01],
    # The drivers' values sit beyond the bars' ends, at both sides of the axis.
    "one huge driver each way": [0.0, 9.0, -14.0, 0.01],
    "log-odds no model reaches": [0.0, 123.45, -456.78, 0.01],
    "drivers near nothing": [0.0, 0.001, -0.002, 0.0],
    "all raise the risk": [-3.0, *np.full(12, 0.4)],
    "a long label": [0.5, -0.9, 0.7, 0.2],
}
LABELS = {
    "a long label": {"f0": "Share of seats active in the last 30 days, against the plan's seats"}
}


@pytest.mark.parametrize("case", CASES)
def test_every_text_is_inside_the_picture(case: str) -> None:
    assert border(picture(CASES[case], LABELS.get(case))).min() >= BLANK, (
        "a text reaches the edge of the picture"
    )


@pytest.mark.parametrize("case", CASES)
def test_the_margins_are_the_gap_and_no_wider(case: str) -> None:
    pixels = picture(CASES[case], LABELS.get(case))
    drawn = np.argwhere(pixels < BLANK)  # anti-aliased text is grey at its edges
    top, left = drawn.min(axis=0)
    bottom = pixels.shape[0] - 1 - drawn[:, 0].max()
    # The labels' column, the title above and the axis label below end one gap (and less
    # than two pixels of a glyph's own blank edge) from the border.
    for side, gap in {"left": left, "top": top, "bottom": bottom}.items():
        assert GAP - 1 <= gap <= GAP + 3, f"{side} margin {gap} px, the gap is {GAP:.1f} px"


@pytest.mark.parametrize(
    "style",
    [
        {"font.size": 14, "axes.titlepad": 30.0},
        {"xtick.major.size": 9.0, "xtick.major.pad": 9.0, "ytick.major.pad": 12.0},
        {"axes.labelpad": 30.0, "xtick.labelsize": 13},
    ],
    ids=["larger font", "longer ticks", "wider axis label gap"],
)
def test_a_notebooks_own_style_keeps_every_text_inside(style: Any) -> None:
    """A notebook may change matplotlib's settings; the margins follow them."""
    with matplotlib.rc_context(style):
        pixels = picture(CASES["mixed"])
    assert border(pixels).min() >= BLANK, f"a text reaches the edge under {style}"


def test_the_picture_has_a_palette_and_the_report_keeps_it_as_drawn() -> None:
    """Drawn with a 256-colour palette, as the report would re-encode it: the report embeds
    the bytes unchanged, and no pixel is far from the true-colour drawing."""
    from pipelines.report import compact_png

    contrib = pd.Series(CASES["mixed"], index=["bias", *(f"f{i}" for i in range(10))])
    values = pd.Series(np.arange(10.0), index=contrib.index[1:])
    png = waterfall_png(contrib, [], values, "A-00042: why this score")
    assert compact_png(png) == png
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "quantize", lambda image, *args, **kwargs: image)
        true_colour = waterfall_png(contrib, [], values, "A-00042: why this score")
    with Image.open(io.BytesIO(png)) as a, Image.open(io.BytesIO(true_colour)) as b:
        assert (a.mode, b.mode) == ("P", "RGB")
        drawn = np.asarray(a.convert("RGB"), dtype=int)
        exact = np.asarray(b, dtype=int)
    assert drawn.shape == exact.shape
    assert np.abs(drawn - exact).max() <= 32, "a palette of 256 colours: no visible change"
    assert len(png) < len(true_colour) / 2
