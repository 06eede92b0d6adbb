"""Settings for benchmark runs: the application's own, as production runs them.

DEBUG is off (no query logging, no debug pages) and the URLconf adds the bench-only
"hello" floor view. The per-user move rate limit is lifted (see below). Cookies are not
marked Secure because the load generator speaks plain HTTP on loopback, and static files
need no collectstatic manifest.
"""

from __future__ import annotations

import os
import warnings

# Before the app's settings read them. The key is fixed so the gunicorn workers and the
# bench process read each other's sessions; it only ever guards a scratch database.
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-only-key-for-a-scratch-database-" + "x" * 24)
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The load generator moves as a handful of reps, far faster than people do: the per-user
# move limit (240 a minute) would cap B3 at 4 moves/s per rep and answer 429s, measuring
# the limiter instead of the move.
os.environ.setdefault("RATE_LIMIT_MOVES_PER_MINUTE", "1000000")
# Likewise B6 calls the API faster than a token's limit allows.
os.environ.setdefault("RATE_LIMIT_API_PER_MINUTE", "1000000")

from pipeline_crm.settings import *  # noqa: F403
from pipeline_crm.settings import LOGGING, STORAGES

# WhiteNoise looks for collectstatic output, which the benchmark never serves.
warnings.filterwarnings("ignore", "No directory at", UserWarning)

ROOT_URLCONF = "bench.urls"
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# 409s and 422s are expected answers under load; only errors are worth a line.
LOGGING = {**LOGGING, "loggers": {"django.request": {"level": "ERROR"}}}
