# Production image: gunicorn with uvicorn workers serving pipeline_crm.asgi,
# static files collected at build time and served by WhiteNoise.
# docker-compose.yml runs the same image as migrate, web, worker and beat.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

RUN useradd --create-home --uid 10001 app

# The lock carries hashes for every package, so a tampered or substituted
# wheel fails the build. Copied alone so code changes reuse this layer.
COPY requirements.lock .
RUN pip install --require-hashes -r requirements.lock

COPY . .

# Settings refuse to run without a real SECRET_KEY when DEBUG is off; this
# throwaway one exists only for collectstatic and is not kept in the image.
RUN DEBUG=0 ALLOWED_HOSTS=localhost \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    python manage.py collectstatic --noinput

# The app writes only under var/ (import uploads, beat's schedule and heartbeat), so
# that directory is the app user's; the code stays root's and read-only to the app. A
# new named volume mounted on var/imports starts with this owner.
RUN mkdir -p var/imports && chown -R app:app var

USER app

EXPOSE 8000

# gunicorn binds 0.0.0.0:$PORT.
CMD ["gunicorn", "pipeline_crm.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker", "--access-logfile", "-"]
