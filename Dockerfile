# One image for the gateway and the workers; the command picks the role:
#   gateway (default): gunicorn wsgi:app         (reads gunicorn.conf.py)
#   worker:            celery -A tasks worker -Q hash -n hash@%h
#   flower:            celery -A tasks flower --port=5555
#   scheduler:         celery -A gateway.schedules.beat beat --loglevel INFO
# Settings come from mounted /app/config.json and /app/.secrets.json and GATEWAY__SECTION__KEY variables.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_CONFIG=/app/config.json \
    GATEWAY_SECRETS=/app/.secrets.json \
    GATEWAY_BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gateway-metrics

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

# Production code only: tests/, devsupport/ (dev OpenBao harness, demo helpers) and bench/ stay out (.dockerignore).
COPY gateway/ gateway/
COPY tasks/ tasks/
COPY jobs/ jobs/
COPY settings/ settings/
COPY deploy/ deploy/
COPY celeryconfig.py wsgi.py gunicorn.conf.py config.example.json ./

# /app/nginx: where the proxy-config service writes nginx.conf; a new named volume mounted there takes
# this folder's owner, so the non-root user can write it (docker-compose.yml).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/logs /tmp/gateway-metrics /app/nginx \
    && chown -R gateway:gateway /app/logs /tmp/gateway-metrics /app/nginx
USER gateway

EXPOSE 8000
# /ping answers without touching Redis or Vault: the container is alive; /health is for readiness.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=2).status == 200 else 1)"

CMD ["gunicorn", "wsgi:app"]
