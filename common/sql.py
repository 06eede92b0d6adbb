"""Set-based writes the ORM has no verb for: INSERT ... SELECT, and job-wide locks.

Background jobs (stalled flags, forecasts) rewrite sets of rows in one statement each.
The SELECT half is built with the ORM, so lookups, joins and date functions compile
for SQLite and PostgreSQL alike; this module only wraps it in an INSERT.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection, models
from django.db.models import DateTimeField, Func
from django.db.models.constants import OnConflict


class DaysBefore(Func):
    """`moment` minus `days` whole days, where `days` is an integer expression (a column).

    Django's duration arithmetic cannot multiply a column by a timedelta on SQLite, so
    each backend gets its own spelling.
    """

    output_field = DateTimeField()

    def __init__(self, moment: Any, days: Any) -> None:
        super().__init__(moment, days)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        # Django's own SQLite function for datetime arithmetic, with microsecond precision.
        return self.as_sql(
            compiler,
            connection,
            template="django_format_dtdelta('-', %(expressions)s * 86400000000)",
            **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return self.as_sql(
            compiler,
            connection,
            template="(%(expressions)s))",
            arg_joiner=" - make_interval(days => ",
            **extra,
        )


def insert_select(
    model: type[models.Model],
    source: models.QuerySet[Any],
    values: Mapping[str, Any],
    *,
    aggregates: Mapping[str, Any] | None = None,
    ignore_conflicts: bool = False,
) -> int:
    """INSERT INTO `model` one row per row of `source`; one statement, returns rows inserted.

    `values` maps a field of `model` to an expression over `source` (grouping keys when
    `aggregates` are given); `aggregates` maps fields to aggregate expressions. With
    `ignore_conflicts`, rows that would break a unique constraint are skipped, so two
    concurrent runs cannot fail each other.
    """
    aggregates = aggregates or {}
    # Aliases of our own, so they cannot clash with the source model's field names.
    rows = source.order_by().values(**{f"v_{name}": expr for name, expr in values.items()})
    if aggregates:
        rows = rows.annotate(**{f"v_{name}": expr for name, expr in aggregates.items()})
    select_sql, params = rows.query.sql_with_params()
    names = [*values, *aggregates]
    qn = connection.ops.quote_name
    picked = ", ".join(f"src.{qn('v_' + name)}" for name in names)
    return insert_from(
        model,
        names,
        f"SELECT {picked} FROM ({select_sql}) src",
        params,
        ignore_conflicts=ignore_conflicts,
    )


def insert_from(
    model: type[models.Model],
    fields: Sequence[str],
    select_sql: str,
    params: Sequence[Any],
    *,
    ignore_conflicts: bool = False,
) -> int:
    """INSERT INTO `model` (`fields`) the rows of `select_sql`; returns rows inserted.

    For SELECTs the ORM cannot build (see `insert_select` for those it can). With
    `ignore_conflicts`, rows that would break a unique constraint are skipped.
    """
    qn = connection.ops.quote_name
    columns = ", ".join(qn(model._meta.get_field(name).column) for name in fields)
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    statement = (
        f"{connection.ops.insert_statement(on_conflict=on_conflict)} "
        f"{qn(model._meta.db_table)} ({columns}) "
        # WHERE 1 = 1 keeps SQLite from reading a trailing ON CONFLICT as a join clause.
        f"SELECT * FROM ({select_sql}) batch WHERE 1 = 1 "
        f"{connection.ops.on_conflict_suffix_sql([], on_conflict, [], [])}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return max(cursor.rowcount, 0)


def hold_job_lock(name: str) -> None:
    """Serialize writers of one job's rows until the current transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite needs none: its writers are
    already serialized (settings open every transaction with BEGIN IMMEDIATE).
    """
    if connection.vendor != "postgresql":
        return
    key = zlib.crc32(name.encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


@contextmanager
def scratch_table(
    model: type[models.Model], *, like: type[models.Model], key: Sequence[str]
) -> Iterator[None]:
    """A temporary table for `model` (an unmanaged model), with the columns of `like`.

    Use inside a transaction: the table lives in this connection only and is dropped on
    the way out (on an error the transaction's rollback removes it). Column types are
    copied, so values written to it are rounded exactly as in the real table. An index
    on `key` keeps lookups by key cheap: temporary tables get no planner statistics.
    """
    qn = connection.ops.quote_name
    name = model._meta.db_table
    schema = "pg_temp" if connection.vendor == "postgresql" else "temp"
    table = f"{schema}.{qn(name)}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {qn(name)} AS "
            f"SELECT * FROM {qn(like._meta.db_table)} WHERE 1 = 0"
        )
        columns = ", ".join(qn(model._meta.get_field(field).column) for field in key)
        cursor.execute(f"CREATE INDEX {qn(name + '_key')} ON {qn(name)} ({columns})")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {table}")
