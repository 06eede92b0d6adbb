"""Fixed-shape statements for the hot path (a board move), written once per process.

The ORM builds and compiles a query's SQL afresh on every call: about a third of a move's
Python time went there, for statements whose shape never changes (lock one row by id,
update a few named columns, append one row). `Rows` writes such SQL once from the model's
own metadata (table, columns) and turns a fetched row into a model instance as the ORM
does (the backend's and the fields' converters, then `Model.from_db`); values written go
through each field's `get_db_prep_save`, as the ORM's own writes do. Same SQL on
PostgreSQL and SQLite.

`Prepared` keeps a `values()` queryset's compiled SQL for statements whose shape comes
from rules (the access policy) rather than a fixed text: the ORM still writes the SQL,
once per distinct input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from threading import Lock
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, models

# Per column position: the backend's and the field's converters, and the expression they
# are given (what the ORM applies to each fetched value).
Converters = list[tuple[int, list[Callable[..., Any]], Any]]

# The largest id a database column holds: a larger one names no row. The ORM answers such
# a lookup with no rows; a hand-written statement must check it first (SQLite's driver
# raises on an integer past 64 bits).
MAX_ID = 2**63 - 1


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


class Rows:
    """One model's columns for hand-written SQL, and its rows read back as instances."""

    def __init__(self, model: type[models.Model], names: Sequence[str] = ()) -> None:
        """All the model's columns, or only the fields `names` (attnames)."""
        self.model = model
        fields = list(model._meta.concrete_fields)
        self.fields = [f for f in fields if f.attname in names] if names else fields
        self.names = [f.attname for f in self.fields]
        self.table = quote(model._meta.db_table)
        self._converters: Converters | None = None

    def __len__(self) -> int:
        return len(self.fields)

    def columns(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{quote(f.column)}" for f in self.fields)

    def instance(self, values: Sequence[Any]) -> models.Model:
        """A model instance from its `columns()` values, as a queryset would build it."""
        return self.model.from_db(connection.alias, self.names, self.converted(values))

    def converted(self, values: Sequence[Any]) -> Sequence[Any]:
        """`columns()` values as Python values (what the backend returns may differ)."""
        if self._converters is None:
            self._converters = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.model._meta.db_table)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    self._converters.append((i, found, col))
        if self._converters:
            values = _convert(list(values), self._converters)
        return values

    def values(self, obj: models.Model, names: Sequence[str]) -> list[Any]:
        """`obj`'s values of the fields `names` (attnames), ready to be written."""
        by_name = {f.attname: f for f in self.fields}
        return [by_name[name].get_db_prep_save(getattr(obj, name), connection) for name in names]


def run(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Execute `sql` on the default connection; its first row (None if none)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def run_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Execute `sql` on the default connection; all its rows."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class Prepared:
    """`values()` querysets compiled once per key and run again as compiled (LRU-bounded).

    The key must name every input the queryset is built from (the user facts the access
    policy reads, the filters, the ids), since the SQL and its parameters are reused as
    they are. What the database decides (a team's members, a deal's stage) stays in the
    SQL and is read afresh on every run.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[str, tuple[Any, ...], list[str], Any]] = (
            OrderedDict()
        )
        self._lock = Lock()

    def rows(self, key: Hashable, build: Callable[[], models.QuerySet]) -> list[dict[str, Any]]:
        """The rows of `build()` (a `values()` queryset) as dicts, as the queryset gives."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            entry = self._compile(build())
            with self._lock:
                self._entries[key] = entry
                if len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        sql, params, names, converters = entry
        if not sql:
            return []
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        return [dict(zip(names, _convert(list(row), converters), strict=True)) for row in found]

    @staticmethod
    def _compile(queryset: models.QuerySet) -> tuple[str, tuple[Any, ...], list[str], Any]:
        query = queryset.query
        compiler = query.get_compiler(queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:  # a condition no row can meet (an id past 64 bits)
            return "", (), [], []
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        selected = [s[0] for s in compiler.select[: compiler.col_count]]
        converters = [
            (pos, convs, expression)
            for pos, (convs, expression) in compiler.get_converters(selected).items()
        ]
        return sql, tuple(params), names, converters


def _convert(values: list[Any], converters: Converters) -> list[Any]:
    """`values` (one row) as Python values: at each position, the backend's and the
    field's converters in turn, as the ORM applies them."""
    for pos, convs, expression in converters:
        value = values[pos]
        for convert in convs:
            value = convert(value, expression, connection)
        values[pos] = value
    return values
