# Pipeline CRM developer tasks. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
CELERY := $(VENV)/bin/celery -A pipeline_crm
# Re-installs happen only when requirements-dev.lock is newer than this stamp.
# requirements.lock is production's (the image); requirements-dev.lock adds the
# test and lint tools. Both are generated from pyproject.toml by `make lock`.
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

PYTEST_ARGS ?=

UV_COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --python-version 3.12 --generate-hashes -q

.PHONY: lock help venv run test browser lint fmt worker beat jobs check-deploy prod-local bench \
	bench-quick clean require-redis screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN { FS = ":.*## " } { printf "  make %-13s %s\n", $$1, $$2 }'

venv: $(STAMP) ## Create .venv and install requirements-dev.lock (hash-checked)

$(STAMP): requirements-dev.lock
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
		python="$$(scripts/find-python)"; \
		echo "Creating $(VENV) with $$python"; \
		rm -rf $(VENV); \
		"$$python" -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@touch $@

run: venv ## Migrate, load demo data and serve on 127.0.0.1:$PORT (default 8000)
	@mkdir -p var
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo
	$(MANAGE) runserver 127.0.0.1:$${PORT:-8000}

test: venv browser ## Run the whole suite, browser tests included (PYTEST_ARGS=... to narrow)
	@mkdir -p var
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Playwright's own browser download is not reachable from here, so the browser
# tests launch the distribution's Chromium at $(CHROMIUM).
browser: ## Make sure /usr/bin/chromium exists (apt-get install chromium as root)
	@if [ -x $(CHROMIUM) ]; then \
		echo "Chromium present: $$($(CHROMIUM) --version 2>/dev/null || echo $(CHROMIUM))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q; \
		apt-get install -y -q --no-install-recommends chromium fonts-liberation; \
	else \
		echo "Browser tests need Chromium at $(CHROMIUM)." >&2; \
		echo "Install it as root, e.g.: sudo apt-get install chromium" >&2; \
		exit 1; \
	fi

lock: venv ## Regenerate requirements.lock (production) and requirements-dev.lock from pyproject.toml
	$(UV_COMPILE) -o requirements.lock
	$(UV_COMPILE) --extra dev -o requirements-dev.lock

screenshots: venv browser ## Regenerate docs/screenshots/ (board, deal page, dashboard; desktop and phone)
	$(PY) scripts/screenshots.py

lint: venv ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Without REDIS_URL the app runs tasks in-process, so a worker would wait on a
# broker nobody publishes to.
require-redis:
	@if [ -z "$${REDIS_URL:-}" ]; then \
		echo "REDIS_URL is not set: tasks run in-process and no worker is needed." >&2; \
		echo "Set it to use Celery, e.g. export REDIS_URL=redis://127.0.0.1:6379/0" >&2; \
		exit 1; \
	fi

worker: venv require-redis ## Celery worker (needs REDIS_URL)
	$(CELERY) worker -l info

beat: venv require-redis ## Celery beat scheduler (needs REDIS_URL)
	@mkdir -p var
	$(CELERY) beat -l info -s var/celerybeat-schedule

jobs: venv require-redis ## Worker with embedded beat, for local use only
	@mkdir -p var
	$(CELERY) worker -B -l info -s var/celerybeat-schedule

# Production-like settings; the database is the default SQLite file because
# the deploy checks do not connect to it.
check-deploy: venv ## manage.py check --deploy with production-like settings
	@mkdir -p var
	env -u DATABASE_URL \
		DEBUG=0 \
		SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
		ALLOWED_HOSTS=crm.example.com \
		CSRF_TRUSTED_ORIGINS=https://crm.example.com \
		$(MANAGE) check --deploy --fail-level WARNING

# docker-compose.yml's migrate, web, worker and beat as local processes (no container
# engine here): scripts/prod_local.py says what differs. PROD_LOCAL_ARGS=--help lists
# its options (database, Redis, port).
prod-local: venv ## Production settings on the local PostgreSQL + Redis, as compose runs them
	$(PY) scripts/prod_local.py --demo $(PROD_LOCAL_ARGS)

bench: venv ## Benchmarks at 10k, 100k and 1M deals
	$(PY) -m bench --sizes 10000,100000,1000000

bench-quick: venv ## Short benchmark run for CI
	$(PY) -m bench --quick

clean: ## Remove caches, collected static files and .venv (keeps var/ and its database)
	rm -rf $(VENV) staticfiles test-results .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './.git/*' -prune -exec rm -rf {} +
