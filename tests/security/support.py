"""Helpers shared by the security tests: module-wide data, database snapshots, responses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps
from django.db import connection, transaction

# Every table the app writes business data or history to. Sessions and django-axes'
# attempt log are left out: they change on every login by design.
SNAPSHOT_APPS = ("accounts", "contacts", "stages", "deals", "reports")


def data_for_module[T](django_db_blocker: Any, build: Callable[[], T]) -> Iterator[T]:
    """Rows `build` creates, kept for a whole test module, then all rolled back.

    Use as `yield from data_for_module(django_db_blocker, build)` in a module-scoped
    fixture. The tests must use the `db` fixture: each then runs in a savepoint inside
    this transaction (as with Django's TestCase.setUpTestData), so whatever a test writes
    is undone before the next one, and the data is built once, not once per test.
    """
    with django_db_blocker.unblock():
        block = transaction.atomic()
        block.__enter__()
        data = build()
    try:
        yield data
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            block.__exit__(None, None, None)


def _tables() -> list[tuple[str, str, str]]:
    """(label, table, primary key column) of every table the app's models own."""
    found = []
    for app_label in SNAPSHOT_APPS:
        for model in apps.get_app_config(app_label).get_models():
            if model._meta.managed and not model._meta.proxy:
                found.append((model._meta.label, model._meta.db_table, model._meta.pk.column))
    return found


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every app table, ordered by primary key: equal snapshots, equal data.

    Plain SQL rather than the ORM: it runs twice per test, hundreds of times per module.
    """
    state: dict[str, list[tuple[Any, ...]]] = {}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for label, table, pk in _tables():
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {quote(pk)}")
            state[label] = cursor.fetchall()
    return state


def changed_tables(before: dict[str, list], after: dict[str, list]) -> list[str]:
    return sorted(label for label in before if before[label] != after.get(label))


def htmx(**extra: str) -> dict[str, str]:
    """Headers of an htmx request (the board's and the deal page's writes are htmx)."""
    return {"HX-Request": "true", **extra}


def is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].startswith(
        ("/accounts/login/", "/admin/login/")
    )


def body(response: Any) -> str:
    """The response text, streamed or not."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()
