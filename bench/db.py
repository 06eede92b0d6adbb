"""The scratch database: created with psycopg, migrated by Django, reached by both.

The server comes from BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432);
the database name from --database (default "bench"). Only that database is touched.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"


def database_url(server: str, name: str) -> str:
    return urlsplit(server)._replace(path=f"/{name}").geturl()


def recreate_database(server: str, name: str) -> None:
    """Drop and create `name` on `server` (maintenance connection to `postgres`)."""
    admin_url = database_url(server, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def redis_reachable(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def forget_queued_tasks(url: str) -> int:
    """Drop the Celery queue the bench filled (no worker consumes it during a run)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    queued = client.llen("celery")
    client.delete("celery")
    return int(queued)


def configure_django(url: str, *, redis_url: str) -> None:
    """Point Django at the scratch database before it is set up (settings read the env)."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)

    import django

    django.setup()


def raw_connection(url: str) -> psycopg.Connection:
    """A plain psycopg connection (autocommit), for floors and SQL replays.

    It gets the session options Django's connection has (settings may turn JIT off, for
    instance), so a replayed statement is planned as the application's was.
    """
    from django.conf import settings

    options = settings.DATABASES["default"].get("OPTIONS", {}).get("options", "")
    return psycopg.connect(url, autocommit=True, options=options)


def drop_database(server: str, name: str) -> None:
    admin_url = database_url(server, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
