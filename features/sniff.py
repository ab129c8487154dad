"""Tell how a CSV export is written: its encoding, delimiter and header, before the engine reads it.

Spreadsheets and exports write CSV in several dialects: a UTF-8 byte-order mark (Excel's
"CSV UTF-8"), a semicolon where the decimal separator is a comma (Excel in most of Europe),
a tab ("Unicode text", UTF-16), a Windows code page (cp1252, a superset of latin-1 for
printable text). :func:`sniff` detects what can be detected safely and says what it
assumed; settings (``data.delimiter``, ``data.encoding``) win over detection. What cannot
be told is a :class:`~features.errors.ContractError` naming the file and the setting.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from features.errors import ContractError

#: Delimiters tried, in the order a tie is reported.
DELIMITERS = (",", ";", "\t", "|")
#: Bytes read to tell the dialect: enough for a header and the first rows of any export.
SAMPLE_BYTES = 64 * 1024
#: Data rows of the sample that must split like the header.
SAMPLE_ROWS = 50
#: Tried, in order, when no encoding is set and the file has no byte-order mark.
FALLBACK = "cp1252"
CHUNK = 1 << 20

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SET = "set data.delimiter and data.encoding in churn.yaml"


@dataclass(frozen=True)
class Dialect:
    """How one CSV file is written.

    ``encoding``: a Python codec name; ``utf-8-sig`` is UTF-8 behind a byte-order mark,
    which both engines skip. ``header``: the column names as the engine will see them.
    ``empty``: the file holds a header and no row. ``notes``: what was detected rather than
    given, for the validation report (empty when the file is plain UTF-8 with commas).
    """

    delimiter: str
    encoding: str
    header: tuple[str, ...]
    empty: bool
    notes: tuple[str, ...] = ()

    @property
    def utf8(self) -> bool:
        """Whether the engines can read the file as it is (UTF-8, with or without a BOM)."""
        return self.encoding in ("utf-8", "utf-8-sig")


def shown(delimiter: str) -> str:
    """A delimiter as a person reads it."""
    return "tab" if delimiter == "\t" else repr(delimiter)


def sniff(
    path: Path,
    columns: tuple[str, ...] = (),
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Dialect:
    """Tell the encoding, delimiter and header of the CSV file ``path``.

    ``columns``: the contract's column names of the table; a delimiter that splits them out
    of the header is preferred. ``delimiter`` and ``encoding``: the settings, when given.

    The encoding is the setting's, else the one a byte-order mark names, else UTF-8 if the
    whole file decodes as UTF-8, else cp1252 if it decodes as that. The delimiter is the
    setting's, else the one of ``,`` ``;`` tab ``|`` that splits the header and the first
    rows into the same number of fields, naming the most contract columns, then giving the
    most fields.

    Raises
    ------
    ContractError
        The file is empty, does not decode with the set encoding (or with any detected one),
        or its delimiter cannot be told.
    """
    name = path.name
    size = not_empty(path)
    with path.open("rb") as f:
        head = f.read(SAMPLE_BYTES)
    notes: list[str] = []

    if encoding is not None:
        encoding = _codec(encoding)
        if encoding == "utf-8" and head.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"  # a BOM is not part of the first column's name
        failure = first_failure(path, encoding)
        if failure:
            raise ContractError(
                f"{name}: does not decode as {encoding} (data.encoding) {failure}; "
                "set data.encoding in churn.yaml to the file's encoding (e.g. utf-8, "
                "cp1252, latin-1), or leave it out to detect it"
            )
    else:
        encoding = next((enc for bom, enc in _BOMS if head.startswith(bom)), "")
        if encoding == "utf-8-sig":
            notes.append("UTF-8 with a byte-order mark")
        elif encoding:
            notes.append(f"{encoding.upper()} (byte-order mark)")
        if encoding and (failure := first_failure(path, encoding)):
            raise ContractError(
                f"{name}: starts with a {encoding} byte-order mark but does not decode as "
                f"{encoding} {failure}; set data.encoding in churn.yaml to the file's encoding"
            )
        if not encoding:
            failure = first_failure(path, "utf-8")
            encoding = "utf-8"
            if failure:
                if first_failure(path, FALLBACK):
                    raise ContractError(
                        f"{name}: is neither UTF-8 ({failure}) nor {FALLBACK}; set "
                        "data.encoding in churn.yaml to the file's encoding (e.g. latin-1, "
                        "cp1250, utf-16)"
                    )
                encoding = FALLBACK
                notes.append(f"read as {FALLBACK} (not valid UTF-8: {failure})")

    whole = size <= SAMPLE_BYTES
    text = codecs.getincrementaldecoder(encoding)().decode(head, final=whole)
    if whole and not text.strip():
        raise ContractError(
            f"{name}: the file holds only blank lines; a CSV table needs a header line and "
            "its rows. Export the table again, or remove the file if the table is optional"
        )
    if delimiter is None:
        delimiter = _delimiter(name, text, whole, columns)
        if delimiter != ",":
            notes.append(f"delimiter {shown(delimiter)} detected")
    else:
        _check_set_delimiter(name, text, whole, delimiter)
    rows = _records(text, delimiter, whole)
    header = tuple(rows[0]) if rows else ()
    return Dialect(delimiter, encoding, header, whole and len(rows) <= 1, tuple(notes))


def not_empty(path: Path) -> int:
    """The size of the file ``path``; a file of 0 bytes is a :class:`ContractError`."""
    size = path.stat().st_size
    if size == 0:
        raise ContractError(
            f"{path.name}: the file is empty (0 bytes); a table needs its columns and rows. "
            "Export the table again, or remove the file if the table is optional"
        )
    return size


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ContractError(
            f"data.encoding: {encoding!r} is not an encoding Python knows; use e.g. utf-8, "
            "cp1252, latin-1 or utf-16"
        ) from None


def first_failure(path: Path, encoding: str) -> str:
    """Where ``path`` first fails to decode as ``encoding`` ("at line 3, byte 0xe9"), or ""."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    with path.open("rb") as f:
        while True:
            chunk = f.read(CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                # The error's offset counts from what the decoder held plus this chunk.
                held = len(err.object) - len(chunk)
                at = max(err.start - held, 0)
                line = lines + chunk.count(b"\n", 0, at)
                return f"at line {line}, byte 0x{err.object[err.start]:02x}"
            if not chunk:
                return ""
            lines += chunk.count(b"\n")


def transcode(path: Path, encoding: str, out: Path) -> Path:
    """Write ``path`` decoded from ``encoding`` to ``out`` as UTF-8, chunk by chunk."""
    with (
        path.open(encoding=encoding, newline="") as src,
        out.open("w", encoding="utf-8", newline="") as dst,
    ):
        for chunk in iter(lambda: src.read(CHUNK), ""):
            dst.write(chunk)
    return out


def _records(text: str, delimiter: str, whole: bool) -> list[list[str]]:
    """The header and up to :data:`SAMPLE_ROWS` rows of ``text``; blank lines skipped.

    A sample cut mid-file ends in a partial row, which is dropped.
    """
    reader: Iterator[list[str]] = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if row:
                rows.append(row)
            if len(rows) > SAMPLE_ROWS + 1:
                break
    except csv.Error:
        pass  # a quote left open by the cut; the rows before it still count
    else:
        if not whole and len(rows) <= SAMPLE_ROWS + 1:
            rows = rows[:-1]
    return rows[: SAMPLE_ROWS + 1]


def _delimiter(name: str, text: str, whole: bool, columns: tuple[str, ...]) -> str:
    """The delimiter that splits the sample into a constant number of fields (see sniff)."""
    scores: dict[str, tuple[int, int]] = {}
    for d in DELIMITERS:
        rows = _records(text, d, whole)
        if not rows or len(rows[0]) < 2 or any(len(r) != len(rows[0]) for r in rows[1:]):
            continue
        scores[d] = (sum(c in columns for c in rows[0]), len(rows[0]))
    first = text.splitlines()[0][:120] if text else ""
    if not scores:
        raise ContractError(
            f"{name}: cannot tell the delimiter: none of ',', ';', tab, '|' splits the header "
            f"and the first rows into the same number of fields (first line: {first!r}); {_SET}"
        )
    best = max(scores.values())
    tied = [d for d, s in scores.items() if s == best]
    if len(tied) > 1:
        raise ContractError(
            f"{name}: cannot tell the delimiter: {' and '.join(shown(d) for d in tied)} both "
            f"split the header and the first rows evenly (first line: {first!r}); {_SET}"
        )
    return tied[0]


def _check_set_delimiter(name: str, text: str, whole: bool, delimiter: str) -> None:
    """A set delimiter that leaves the header in one piece where another splits it."""
    rows = _records(text, delimiter, whole)
    if not rows or len(rows[0]) > 1:
        return
    others = [d for d in DELIMITERS if d != delimiter and len(_records(text, d, whole)[0]) > 1]
    if others:
        raise ContractError(
            f"{name}: data.delimiter is {shown(delimiter)}, which leaves the header in one "
            f"piece ({rows[0][0][:120]!r}); the file seems to use {shown(others[0])}. Set "
            "data.delimiter in churn.yaml to the files' delimiter, or leave it out to detect "
            "it per file"
        )
