"""Fixed-shape statements for the hot path (a board move), written once per process.

The ORM builds and compiles a query's SQL afresh on every call: about a third of a move's
Python time went there, for statements whose shape never changes (lock one row by id,
update a few named columns, append one row). `Rows` writes such SQL once from the model's
own metadata (table, columns) and turns a fetched row into a model instance as the ORM
does (the backend's and the fields' converters, then `Model.from_db`); values written go
through each field's `get_db_prep_save`, as the ORM's own writes do. Same SQL on
PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, models


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


class Rows:
    """One model's columns for hand-written SQL, and its rows read back as instances."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.names = [f.attname for f in self.fields]
        self.table = quote(model._meta.db_table)
        self._converters: list[tuple[int, list[Callable[..., Any]], Any]] | None = None

    def __len__(self) -> int:
        return len(self.fields)

    def columns(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{quote(f.column)}" for f in self.fields)

    def instance(self, values: Sequence[Any]) -> models.Model:
        """A model instance from its `columns()` values, as a queryset would build it."""
        if self._converters is None:
            self._converters = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.model._meta.db_table)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    self._converters.append((i, found, col))
        if self._converters:
            values = list(values)
            for i, converters, col in self._converters:
                value = values[i]
                for convert in converters:
                    value = convert(value, col, connection)
                values[i] = value
        return self.model.from_db(connection.alias, self.names, values)

    def values(self, obj: models.Model, names: Sequence[str]) -> list[Any]:
        """`obj`'s values of the fields `names` (attnames), ready to be written."""
        by_name = {f.attname: f for f in self.fields}
        return [by_name[name].get_db_prep_save(getattr(obj, name), connection) for name in names]


def run(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Execute `sql` on the default connection; its first row (None if none)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None
