"""Pipeline CRM settings: one module, driven by environment variables.

Defaults give a zero-setup local run (SQLite, tasks in-process, DEBUG on).
Production sets DEBUG=0 and must then provide a real SECRET_KEY.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from pipeline_crm.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
INSECURE_DEV_KEY = "django-insecure-local-development-only-key"
SECRET_KEY = env_str("SECRET_KEY", INSECURE_DEV_KEY if DEBUG else "")
if not DEBUG and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured(
        "DEBUG is off: set SECRET_KEY to a long random value (50+ characters)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "common",
    "accounts",
    "contacts",
    "stages",
    "deals",
    "imports",
    "reports",
    "webhooks",
    "automations",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "common.middleware.DatabaseUnavailableMiddleware",
    "common.refusals.RefusalMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it answers locked-out logins itself.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pipeline_crm.urls"
WSGI_APPLICATION = "pipeline_crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pipeline_crm.context_processors.navigation",
                "accounts.context_processors.policy",
                "deals.context_processors.notifications",
            ],
        },
    }
]

# Options in the URL's query (`?sslmode=require&connect_timeout=3`) reach OPTIONS and win
# over the defaults below.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        **DATABASES["default"].get("OPTIONS", {}),
    }
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # A file, not shared-cache memory, for the test database: the browser tests' live
    # server thread and the test thread then wait on each other's locks instead of failing.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"] |= {
        "CONN_MAX_AGE": env_int("CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "connect_timeout": 5,
            # JIT compilation costs more than it saves on the dashboard's short queries.
            "options": "-c jit=off",
            **DATABASES["default"].get("OPTIONS", {}),
        },
    }
    # Under ASGI each request's synchronous code runs in a thread of its own, so a kept
    # connection (CONN_MAX_AGE) is left behind instead of reused: web processes on ASGI
    # share a psycopg pool per process instead (DB_POOL_SIZE > 0; Django requires
    # CONN_MAX_AGE 0 with a pool, and the pool checks connections on checkout).
    if (pool_size := env_int("DB_POOL_SIZE", 0)) > 0:
        from psycopg_pool import ConnectionPool

        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": pool_size,
            "timeout": 10,
            "check": ConnectionPool.check_connection,
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "board"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Behind reverse proxies (e.g. the TLS proxy in front of the compose stack) the client's
# address is read from X-Forwarded-For, this many entries from the right: set it to the
# number of proxies that append to the header. 0: no proxy, REMOTE_ADDR is the client.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Login brute-force protection (django-axes, stored in the database: works without Redis).
# Failed logins within the cool-off are counted per key, each with its own limit (0 turns
# a key off): a user from one address (mistyping, or one attacker on one account), one
# address across usernames (password spraying), one username from every address
# (distributed guessing; high, since reaching it locks that user out everywhere).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
LOGIN_FAILURE_LIMITS = {
    ("username", "ip_address"): AXES_FAILURE_LIMIT,
    ("ip_address",): env_int("LOGIN_FAILURES_PER_ADDRESS", 20),
    ("username",): env_int("LOGIN_FAILURES_PER_USER", 50),
}
AXES_HANDLER = "accounts.lockout.LoginLockoutHandler"
AXES_LOCKOUT_PARAMETERS = "accounts.lockout.lockout_parameters"
AXES_CLIENT_IP_CALLABLE = "common.client_address.client_address"
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# What the app writes: import uploads and their summaries (web and worker must share
# IMPORT_ROOT: a volume in docker-compose.yml), Celery beat's schedule and heartbeat.
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
IMPORT_ROOT = Path(env_str("IMPORT_ROOT", str(VAR_DIR / "imports")))
# Uploaded import files one user may keep waiting to be imported (a finished import
# releases its file): bounds the disk one manager can fill.
IMPORT_QUOTA_BYTES = env_int("IMPORT_QUOTA_MB", 300) * 1024 * 1024

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Content-Security-Policy: no inline scripts or styles, no eval. htmx is
# configured (base.html meta) not to need either.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # `make prod-local` runs production settings over plain HTTP on this machine, where
    # no TLS proxy exists. docker-compose.yml never sets it; other hosts are refused.
    LOCAL_PLAIN_HTTP = env_bool("LOCAL_PLAIN_HTTP", False)
    if LOCAL_PLAIN_HTTP and not set(ALLOWED_HOSTS) <= {"127.0.0.1", "localhost", "[::1]"}:
        raise ImproperlyConfigured(
            "LOCAL_PLAIN_HTTP is for loopback only: ALLOWED_HOSTS may name only "
            "127.0.0.1, localhost and [::1]."
        )
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True) and not LOCAL_PLAIN_HTTP
    # Probes ask over plain HTTP from inside the network; a redirect would count as healthy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = not LOCAL_PLAIN_HTTP
    CSRF_COOKIE_SECURE = not LOCAL_PLAIN_HTTP
    SECURE_HSTS_SECONDS = (
        0 if LOCAL_PLAIN_HTTP else env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

REDIS_URL = env_str("REDIS_URL", "")

# Cache (rate limits): Redis when configured, so limits hold across web processes. Short
# timeouts: while Redis is away the rate limiter counts in the process instead
# (common/ratelimit.py), and a request must not wait long to find out.
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
RATE_LIMITS = {
    "move": (env_int("RATE_LIMIT_MOVES_PER_MINUTE", 240), 60),
    "search": (env_int("RATE_LIMIT_SEARCHES_PER_MINUTE", 120), 60),
    "api": (env_int("RATE_LIMIT_API_PER_MINUTE", 600), 60),
}

# Background work: with REDIS_URL a real Celery broker; without it, tasks run
# in-process so a fresh checkout needs nothing but Python.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Imports take seconds to minutes. With a broker a worker runs them; without one ("thread")
# a background thread of the web process does, so the confirm answers at once and the
# status page shows progress. "inline" runs them within the request (tests, scripts).
IMPORT_RUNNER = env_str("IMPORT_RUNNER", "celery" if REDIS_URL else "thread")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A task of a worker that died is redelivered after this long (kombu's default: 1 h).
    # Bounded by the longest task (CELERY_TASK_TIME_LIMIT; imports work in slices of
    # IMPORT_SLICE_SECONDS and resume), so a dead worker's task is redelivered soon.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300),
    "socket_connect_timeout": 1,
    "socket_timeout": 2,
    "max_retries": 0,
}
CELERY_TASK_PUBLISH_RETRY = False
# No task may outlive the visibility timeout (it would be delivered twice while running).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 200)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 240)
IMPORT_SLICE_SECONDS = env_int("IMPORT_SLICE_SECONDS", 60)
CELERY_TIMEZONE = TIME_ZONE
# Beat touches its heartbeat file after every tick, at least every max loop interval;
# its health check (pipeline_crm/healthcheck.py) reads the file's age.
CELERY_BEAT_SCHEDULER = "pipeline_crm.celery:HeartbeatScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_MAX_LOOP_INTERVAL = 30
BEAT_HEARTBEAT_FILE = VAR_DIR / "beat-heartbeat"
# Static schedule (no database scheduler): what runs when, in TIME_ZONE.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "drain-outbox": {"task": "deals.drain_outbox", "schedule": 60.0},
    "check-stalled": {"task": "deals.check_stalled", "schedule": 5 * 60.0},
    "check-stalled-nightly": {
        "task": "deals.check_stalled",
        "schedule": crontab(hour=1, minute=30),
    },
    "send-digests": {"task": "deals.send_digests", "schedule": crontab(hour=7, minute=0)},
    # Hourly, so whoever starts work gets the day's reminder; once a day per user.
    "remind-activities": {"task": "deals.remind_activities", "schedule": crontab(minute=5)},
    "recompute-forecasts": {
        "task": "reports.recompute_forecasts",
        "schedule": crontab(minute=7),
        "kwargs": {"learn": False},
    },
    "recompute-forecasts-nightly": {
        "task": "reports.recompute_forecasts",
        "schedule": crontab(hour=2, minute=15),
    },
    # Completed stays for the dashboard's history panels (exact either way; this keeps
    # them fast: only stays newer than the last run are computed per request).
    "refresh-stage-stays": {"task": "reports.refresh_stage_stays", "schedule": 60.0},
    "webhooks-retry-due": {"task": "webhooks.retry_due", "schedule": 60.0},
    # Time-based automations (days before/after a date, overdue activities): set-based,
    # each (deal, rule, due date) once, so running often costs little and misses nothing.
    "automations-scan": {"task": "automations.scan", "schedule": 5 * 60.0},
    # Run log entries past AUTOMATION_RUN_RETENTION_DAYS (each rule's latest failures kept).
    "automations-prune-runs": {
        "task": "automations.prune_runs",
        "schedule": crontab(hour=3, minute=40),
    },
    "snapshot-forecasts": {
        "task": "reports.snapshot_forecasts",
        "schedule": crontab(hour=3, minute=0, day_of_week="mon"),
    },
}

# Product settings.
BOARD_PAGE_SIZE = env_int("BOARD_PAGE_SIZE", 25)
UNDO_SECONDS = env_int("UNDO_SECONDS", 10)
STALLED_NO_ACTIVITY_DAYS = env_int("STALLED_NO_ACTIVITY_DAYS", 14)
# Automation run log: finished runs older than this are deleted nightly, except each
# rule's latest AUTOMATION_FAILED_RUNS_KEPT failed runs (never below the scan's 8 days).
AUTOMATION_RUN_RETENTION_DAYS = env_int("AUTOMATION_RUN_RETENTION_DAYS", 90)
AUTOMATION_FAILED_RUNS_KEPT = env_int("AUTOMATION_FAILED_RUNS_KEPT", 20)
STALLED_SLIPPING_PUSHES = env_int("STALLED_SLIPPING_PUSHES", 3)
# One run announcing more new flags than this to one person sends one notice ("312 deals
# newly stalled", opening their stalled deals on the board) instead of one per deal.
STALLED_NOTICES_GROUPED_ABOVE = env_int("STALLED_NOTICES_GROUPED_ABOVE", 10)
# Learned win rates: closes of the last FORECAST_HISTORY_DAYS, shrunk toward the
# configured probability as if FORECAST_SHRINKAGE_K deals had closed at exactly it.
FORECAST_HISTORY_DAYS = env_int("FORECAST_HISTORY_DAYS", 365)
FORECAST_SHRINKAGE_K = env_int("FORECAST_SHRINKAGE_K", 10)
# Absolute links in e-mails (the digest) point here.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
DEFAULT_CURRENCY = env_str("DEFAULT_CURRENCY", "USD")
MAX_TEXT_LENGTH = 5000

# E-mail through Django 6.1's MAILERS (the EMAIL_* settings are deprecated). Locally the
# console backend prints digests; production defaults to SMTP on EMAIL_HOST.
EMAIL_BACKEND_PATH = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS: dict[str, dict[str, object]] = {"default": {"BACKEND": EMAIL_BACKEND_PATH}}
if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER", ""),
        "password": env_str("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": env_int("EMAIL_TIMEOUT", 10),
    }
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Pipeline CRM <crm@localhost>")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

UNDO_WINDOW = timedelta(seconds=UNDO_SECONDS)

# The public API (api/): Django REST framework for parsing, auth classes, throttling and
# cursor pagination; drf-spectacular for the OpenAPI 3.1 schema. Errors are RFC 9457
# problem+json from one handler (api.problems).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.TokenScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.PerTokenThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pipeline CRM API",
    "DESCRIPTION": "The same rules as the web app: what you may see, change and move.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "StageKindEnum": "stages.models.StageKind",
        "CriterionKindEnum": "stages.models.CriterionKind",
        "ActivityTypeEnum": "stages.models.ActivityType",
        "ForecastCategoryEnum": "stages.models.ForecastCategory",
    },
}
API_TOKEN_PREFIX = "pcrm_"
IDEMPOTENCY_WINDOW = timedelta(hours=24)

# Webhooks: outbound deliveries refuse private, loopback and link-local addresses.
# Only tests turn this on, to reach a receiver on 127.0.0.1.
WEBHOOKS_ALLOW_LOOPBACK = env_bool("WEBHOOKS_ALLOW_LOOPBACK", False)
WEBHOOKS_TIMEOUT_SECONDS = env_int("WEBHOOKS_TIMEOUT_SECONDS", 10)
WEBHOOKS_DISABLE_AFTER_FAILURES = env_int("WEBHOOKS_DISABLE_AFTER_FAILURES", 20)
WEBHOOKS_DISABLE_AFTER_HOURS = env_int("WEBHOOKS_DISABLE_AFTER_HOURS", 72)
