"""gunicorn settings, read automatically from the working directory by `gunicorn wsgi:app`.

Settings are validated here, in the master, before any worker forks: invalid files stop start-up
with every problem listed and exit status 2, instead of a crash loop of workers.
"""
import os

from settings import load_settings_or_exit

load_settings_or_exit()

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_THREADS", "8"))
# Publishing gives up within 2 s; a request still running after this is a bug, not a slow broker.
timeout = 30
graceful_timeout = 20
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
