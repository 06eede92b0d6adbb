"""Container health checks, as docker-compose.yml (and `make prod-local`) run them.

    python -m pipeline_crm.healthcheck web    # GET /readyz on this host's web server
    python -m pipeline_crm.healthcheck beat   # beat's heartbeat file is fresh

Exit status 0 means healthy; otherwise one line on stderr says why. The worker's check is
`celery inspect ping` itself (see docker-compose.yml).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

# Beat ticks at least every CELERY_BEAT_MAX_LOOP_INTERVAL (30 s): three missed ticks is a
# hung or dead loop, not a slow one.
BEAT_MISSED_TICKS = 3


def check_web() -> str | None:
    """Readiness as a load balancer sees it, asking as the first allowed host (Django
    answers 400 to others) on the port gunicorn binds ($PORT, as gunicorn reads it)."""
    hosts = [h.strip().lstrip(".") for h in os.environ.get("ALLOWED_HOSTS", "").split(",")]
    host = next((h for h in hosts if h and "*" not in h), "localhost")
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=8) as response:
            response.read()
    except urllib.error.HTTPError as error:
        return f"/readyz answered {error.code}: {error.read(500).decode(errors='replace')}"
    except OSError as error:
        return f"/readyz unreachable: {error}"
    return None


def check_beat() -> str | None:
    import django
    from django.conf import settings

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")
    django.setup()
    limit = BEAT_MISSED_TICKS * settings.CELERY_BEAT_MAX_LOOP_INTERVAL
    try:
        age = time.time() - os.stat(settings.BEAT_HEARTBEAT_FILE).st_mtime
    except FileNotFoundError:
        return f"no heartbeat yet at {settings.BEAT_HEARTBEAT_FILE}"
    if age > limit:
        return f"last heartbeat {age:.0f} s ago (limit {limit} s)"
    return None


CHECKS = {"web": check_web, "beat": check_beat}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: python -m pipeline_crm.healthcheck {{{','.join(CHECKS)}}}", file=sys.stderr)
        return 2
    problem = CHECKS[argv[0]]()
    if problem:
        print(f"{argv[0]} unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
