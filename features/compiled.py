"""Compile each distinct query once: SQL remembered by the shape of its expression.

Ibis compiles an expression to SQL in pure Python, about 1 s for the feature query of
``churn explain`` or ``churn score`` (2,300 nodes) against 0.1-0.3 s to run it on a
demo-sized book, and 10-30 ms for each of the small queries of a validation. The same
expressions come back: every explanation of a day builds the same query for a different
account, a rebuilt training set the same parts over new files, a validation the same
counts. :func:`remember_compiled` makes a DuckDB connection compile each distinct
expression once, in the process and, with a folder, across processes.

An expression's key (:func:`shape`) is its whole graph, every argument of every node, with
one exception: the tables Ibis names at random (``ibis_read_parquet_<26 letters>``, a
memtable, a cached part) are numbered in the order they are met, so the same query over
new files has the same key, and their current names are put back into the remembered SQL
(quoted identifiers, which nothing else in the SQL can spell). A value the key cannot
spell exactly (an object of an unknown type) leaves the expression uncached: it is
compiled as usual.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.datatypes as dtypes
import ibis.expr.operations as ops
import ibis.expr.schema as sch
import sqlglot
from ibis.backends import BaseBackend

#: The names Ibis generates (``ibis.util.gen_name``): a prefix and 26 base32 letters.
RANDOM_NAME = re.compile(r"^ibis_\w+_[a-z2-7]{26}$")
_QUOTED_RANDOM = re.compile(r'"(ibis_\w+_[a-z2-7]{26})"')
#: Remembered queries per process; the oldest is forgotten first.
IN_MEMORY = 512
#: Remembered queries in a folder; the oldest files are removed beyond it.
ON_DISK = 256
#: ``CHURN_SQL_CACHE``: the folder of remembered SQL, or ``off``. Default: the user's cache.
ENV = "CHURN_SQL_CACHE"
_SCALARS = (str, int, float, bytes, dt.date, dt.time, dt.timedelta, decimal.Decimal, uuid.UUID)
#: What else the SQL depends on: the versions of the compiler, the dialect and the engine.
#: (Ibis' options also shape SQL; the pipeline never changes them.)
_VERSIONS = f"ibis {ibis.__version__}, sqlglot {sqlglot.__version__}, duckdb {duckdb.__version__}"


class _Unspellable(Exception):
    """A value the key cannot spell exactly: the expression is compiled, not remembered."""


def shape(node: ops.Node) -> tuple[str, list[str]]:
    """The key of an expression's graph, and its randomly named tables in key order.

    Two graphs have the same key exactly when they are equal once their random table names
    are numbered in the order of a walk of the graph (children before parents). Raises
    :class:`_Unspellable` for a value of a type it does not know.
    """
    index: dict[ops.Node, int] = {}
    tables: dict[str, int] = {}
    lines: list[str] = []

    def spell(v: Any) -> str:
        if isinstance(v, ops.Node):
            return f"@{index[v]}"
        if v is None or isinstance(v, bool):
            return repr(v)
        if isinstance(v, _SCALARS):
            return f"{type(v).__name__}:{v!r}"
        if isinstance(v, dtypes.DataType):
            return f"dtype:{v!s}"
        if isinstance(v, sch.Schema):
            return "schema(" + ",".join(f"{k!r}:{t!s}" for k, t in v.items()) + ")"
        if isinstance(v, enum.Enum):
            return f"{type(v).__module__}.{type(v).__qualname__}.{v.name}"
        if isinstance(v, tuple):
            return "(" + ",".join(map(spell, v)) + ")"
        if isinstance(v, Mapping):
            return "{" + ",".join(f"{k!r}:{spell(x)}" for k, x in v.items()) + "}"
        if isinstance(v, frozenset):
            return "{" + ",".join(sorted(map(spell, v))) + "}"
        raise _Unspellable(type(v).__name__)

    stack: list[tuple[ops.Node, bool]] = [(node, False)]
    while stack:
        op, ready = stack.pop()
        if op in index:
            continue
        if not ready:
            stack.append((op, True))
            stack.extend((c, False) for c in reversed(op.__children__) if c not in index)
            continue
        kind = f"{type(op).__module__}.{type(op).__qualname__}"
        if isinstance(op, (ops.DatabaseTable, ops.InMemoryTable)):
            # The table's data or connection is not part of the SQL; its name and columns are.
            name = op.name
            if RANDOM_NAME.match(name):
                name = f"#{tables.setdefault(name, len(tables))}"
            namespace = getattr(op, "namespace", None)
            where = (namespace.catalog, namespace.database) if namespace else None
            lines.append(f"{kind}[{name!r}|{spell(op.schema)}|{where!r}]")
        else:
            lines.append(f"{kind}[{'|'.join(map(spell, op.__args__))}]")
        index[op] = len(index)
    digest = hashlib.sha256("\n".join([_VERSIONS, *lines]).encode()).hexdigest()
    return digest, list(tables)


def default_folder() -> Path | None:
    """Where SQL is remembered across processes: ``CHURN_SQL_CACHE`` (``off``: nowhere),
    else ``churn-health/sql`` in the user's cache folder."""
    setting = os.environ.get(ENV)
    if setting is not None:
        return None if setting.strip().lower() in ("", "off") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "churn-health" / "sql"


class CompiledSql:
    """A connection's ``compile`` that remembers the SQL of each expression's shape."""

    def __init__(self, compile: Callable[..., str], folder: Path | None) -> None:
        self._compile = compile
        self._folder = folder
        self._memory: OrderedDict[str, tuple[str, list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self.compiled = 0
        self.remembered = 0

    def __call__(self, expr: Any, /, *, limit: Any = None, params: Any = None,
                 **kwargs: Any) -> str:  # fmt: skip
        if params:
            return self._compile(expr, limit=limit, params=params, **kwargs)
        try:
            key, names = shape(expr.op())
        except _Unspellable:
            return self._compile(expr, limit=limit, params=params, **kwargs)
        key = hashlib.sha256(f"{key} {limit!r} {sorted(kwargs.items())!r}".encode()).hexdigest()
        with self._lock:
            found = self._memory.get(key)
        found = found or self._read(key)
        if found is None:
            sql = self._compile(expr, limit=limit, params=params, **kwargs)
            self.compiled += 1
            self._keep(key, (sql, names))
            self._write(key, sql, names)
            return sql
        self.remembered += 1
        self._keep(key, found)
        sql, before = found
        if before == names:
            return sql
        # All at once: tables may have swapped places (a - b, then b - a).
        renamed = dict(zip(before, names, strict=True))
        return _QUOTED_RANDOM.sub(lambda m: f'"{renamed.get(m[1], m[1])}"', sql)

    def _keep(self, key: str, found: tuple[str, list[str]]) -> None:
        with self._lock:
            self._memory[key] = found
            self._memory.move_to_end(key)
            while len(self._memory) > IN_MEMORY:
                self._memory.popitem(last=False)

    def _write(self, key: str, sql: str, names: list[str]) -> None:
        if self._folder is None:
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            part = self._folder / f".{key}.{os.getpid()}.tmp"
            part.write_text(json.dumps({"sql": sql, "names": names}), encoding="utf-8")
            part.replace(self._folder / f"{key}.json")
            files = sorted(self._folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
            for old in files[:-ON_DISK]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a cache that cannot be written costs a compile next time, nothing more

    def _read(self, key: str) -> tuple[str, list[str]] | None:
        if self._folder is None:
            return None
        try:
            stored = json.loads((self._folder / f"{key}.json").read_text(encoding="utf-8"))
            sql, names = stored["sql"], stored["names"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or written by something else: compile it again
        if not isinstance(sql, str) or not isinstance(names, list):
            return None
        return sql, [str(n) for n in names]


def remember_compiled(con: BaseBackend, folder: Path | None = None) -> CompiledSql:
    """Make ``con`` (a DuckDB connection) compile each distinct expression once, remembering
    its SQL in the process and, with ``folder``, in that folder for other processes."""
    memo = CompiledSql(con.compile, folder)
    con.compile = memo
    return memo
