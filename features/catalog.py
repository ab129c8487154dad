"""The feature families: what a family declares, the registry, and the catalogue built from it.

A feature family is one module of :mod:`features.families`. It declares, once, its features
(name, window, unit, plain-language description, healthy direction), the words drivers use
for it, its default play, the contract table it reads and the query that computes it from
that table. Everything else reads the registry: the catalogue of features, the zero-filled
counts of :mod:`features.build`, explanations (``models.explain``), plays (``models.plays``)
and the feature dictionary. Importing :mod:`features.families` registers the built-in
families, in the order of the catalogue's columns; another family registers with
:func:`register` (one line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import ibis.expr.types as ir

#: A family's name (``frequency``, ``support``, ...): the key of the registry.
Family = str
#: The direction in which a feature is healthy: more is better, less is better, or neither.
Healthy = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class Feature:
    """One model input, as a CSM would read it."""

    name: str
    family: Family
    label: str
    unit: str
    window_days: int | None
    healthy: Healthy
    description: str
    categorical: bool = False
    #: The table it needs; absent tables yield no such features.
    source: str = "events"

    @property
    def monotone(self) -> int:
        """LightGBM's monotone constraint sign for churn risk (-1: more of it, less risk)."""
        return {"higher": -1, "lower": 1, "none": 0}[self.healthy]


@dataclass(frozen=True)
class Context:
    """What a family's declaration may depend on: the feature settings and the data."""

    windows: tuple[int, ...]
    #: The most common events, which get a column each.
    top_events: tuple[str, ...]
    #: The ``accounts`` columns read as static attributes.
    static_columns: tuple[str, ...]
    #: The look-back in which the champion (most active user) is found.
    champion_days: int


#: A row of :func:`rows`: name, label, unit, window in days, healthy direction, description.
Row = tuple[str, str, str, int | None, Healthy, str]
#: A family's query: its contract table and the snapshots -> one row per ``snapshot_id``.
Query = Callable[["ir.Table", "ir.Table"], "ir.Table"]


@dataclass(frozen=True)
class FeatureFamily:
    """One feature family, declared once.

    ``query`` reads ``table`` and returns one row per snapshot with a column per declared
    feature; families without one (the event families, lifecycle, account attributes) are
    computed together by :func:`features.build.feature_table`. ``zero_when_absent``: the
    prefixes of its counts, which are 0 (not missing) for a snapshot without source rows.
    """

    name: str
    #: How explanations name it: "support pain raised risk".
    words: str
    #: The play for an account whose top risk driver is this family.
    play: str
    declare: Callable[[Context], Iterable[Feature]]
    table: str | None = None
    query: Query | None = None
    zero_when_absent: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("name", "words", "play"):
            if not getattr(self, field).strip():
                raise ValueError(
                    f"feature family {self.name!r}: '{field}' is empty; every family needs "
                    "words for its drivers and a play, so that an account it drives gets an "
                    "action a CSM can read"
                )
        if (self.query is None) != (self.table is None):
            raise ValueError(
                f"feature family {self.name!r}: a query needs the table it reads and a table "
                f"its query (table={self.table!r}, query={self.query!r})"
            )


_REGISTRY: dict[str, FeatureFamily] = {}


def _builtins() -> None:
    # Deferred: the family modules import this one. Registers them once, in catalogue order.
    import features.families  # noqa: F401


def register(family: FeatureFamily) -> FeatureFamily:
    """Add ``family`` to the registry (after the built-in ones); returns it."""
    _builtins()
    if family.name in _REGISTRY:
        raise ValueError(f"feature family {family.name!r} is registered already")
    _REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family registered with :func:`register` (a test's own family)."""
    del _REGISTRY[name]


def families() -> tuple[FeatureFamily, ...]:
    """Every registered family, in the order of the catalogue's columns."""
    _builtins()
    return tuple(_REGISTRY.values())


class FamilyField(Mapping[str, str]):
    """A live view of one text field of every registered family, by family name
    (``FamilyField("play")``: each family's default play)."""

    def __init__(self, field: Literal["words", "play"]) -> None:
        self._field = field

    def __getitem__(self, name: str) -> str:
        families()
        text: str = getattr(_REGISTRY[name], self._field)
        return text

    def __iter__(self) -> Iterator[str]:
        return iter([f.name for f in families()])

    def __len__(self) -> int:
        return len(families())


def rows(family: Family, source: str, declared: Iterable[Row]) -> list[Feature]:
    """Features of ``family`` read from ``source``, one per row of ``declared``."""
    return [
        Feature(name, family, label, unit, window, healthy, description, source=source)
        for name, label, unit, window, healthy, description in declared
    ]


def windowed(
    stem: str,
    family: Family,
    label: str,
    unit: str,
    healthy: Healthy,
    description: str,
    windows: Iterable[int],
    source: str = "events",
) -> list[Feature]:
    """One feature ``<stem>_<w>d`` per window ``w``; ``{w}`` in the texts is the window."""
    return [
        Feature(
            f"{stem}_{w}d",
            family,
            f"{label} ({w} d)",
            unit,
            w,
            healthy,
            description.format(w=w),
            source=source,
        )
        for w in windows
    ]


def catalog(
    windows: Sequence[int] = (7, 30, 90),
    top_events: Sequence[str] = (),
    static_columns: Sequence[str] = (),
    sources: Iterable[str] = (
        "events",
        "contracts",
        "tickets",
        "surveys",
        "sentiment",
        "invoices",
        "activities",
    ),
    champion_days: int = 365,
) -> tuple[Feature, ...]:
    """Every feature built for these windows, common events, account attributes and tables."""
    ctx = Context(tuple(windows), tuple(top_events), tuple(static_columns), champion_days)
    present = {*sources, "accounts", "events"}
    return tuple(x for fam in families() for x in fam.declare(ctx) if x.source in present)


def zero_when_absent() -> tuple[str, ...]:
    """The prefixes of every registered count that is 0, not missing, without source rows."""
    return tuple(p for fam in families() for p in fam.zero_when_absent)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def event_slugs(events: Sequence[str]) -> list[str]:
    """A column-name part per event, one each: names that differ only in case or punctuation
    (``Login`` and ``login``) are different events, and each but the first gets ``_2``,
    ``_3``, ... in the order given (the most common first)."""
    out: list[str] = []
    for e in events:
        slug = base = _slug(e) or "event"
        n = 2
        while slug in out:
            slug, n = f"{base}_{n}", n + 1
        out.append(slug)
    return out


def dictionary(features: Sequence[Feature]) -> list[dict[str, object]]:
    """The feature dictionary: one record per feature, as written to CSV or JSON."""
    return [asdict(x) | {"monotone": x.monotone} for x in features]
