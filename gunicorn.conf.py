"""gunicorn settings, read automatically from the working directory by `gunicorn wsgi:app`.

Settings are validated here, in the master, before any worker forks: invalid files stop start-up
with every problem listed and exit status 2, instead of a crash loop of workers.

Worker class: gthread, 2 processes per core x 4 threads by default. Each request spends part of its
time waiting on Redis or Vault, so threads overlap those waits; processes spread the Python work over
the cores (one GIL each). Measured on 2 cores (bench/, docs/performance.md): 4 x 4 served 30-65 %
more requests per second than 2 x 8 at the same CPU per request. Override with GATEWAY_WORKERS /
GATEWAY_THREADS.
"""
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from settings import load_settings_or_exit

_settings = load_settings_or_exit()

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GATEWAY_WORKERS", 2 * (os.cpu_count() or 1)))
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_THREADS", "4"))
# Publishing gives up within 2 s and Vault within its timeout; a request still running after this is a bug.
timeout = 30
# SIGTERM: first drain (see `when_ready` below) for ops.drain_serve seconds; then stop accepting, let
# in-flight requests finish for up to this long, and exit.
graceful_timeout = 20
keepalive = 5
# Request line and header limits (the body limit is limits.max_body_bytes, enforced by Flask).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Behind a proxy: which addresses may set X-Forwarded-Proto/For (comma list, or * inside a private network).
forwarded_allow_ips = os.environ.get("GATEWAY_FORWARDED_ALLOW_IPS", "127.0.0.1")
# The gateway writes one line per request itself (method, path, status, duration, request and client
# id) through loguru; gunicorn's own access log would repeat it, so it stays off.
accesslog = None
# gunicorn's runtime control socket sits at one path per user (~/.gunicorn/gunicorn.ctl), so two
# gateways on one host (or a test session's several) would fight over it; nothing here uses it.
control_socket_disable = True

# prometheus_client multiprocess mode: every worker writes its metrics to files here, and a scrape of
# any worker sums them all. Set before workers import the app; emptied at each start.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                     os.path.join(tempfile.gettempdir(), f"gateway-metrics-{os.getpid()}"))


# Drain mode (gateway/health/drain.py): this gateway's drain state, one file per master, shared by its
# workers. A file rather than a Redis key: it works with Redis down, and dies with the gateway.
_drain_file = Path(tempfile.gettempdir()) / f"gateway-drain-{os.getpid()}.json"


def on_starting(server):
    from settings.logs import setup_logging

    setup_logging(_settings, process="gunicorn")  # the master's own lines go through loguru too
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    _drain_file.unlink(missing_ok=True)


def when_ready(server):
    """The first SIGTERM drains instead of stopping: /readyz 503 at once, submits 503 after
    ops.drain_grace, and gunicorn's own graceful stop (stop accepting, finish in-flight requests within
    graceful_timeout) ops.drain_serve seconds later. A second SIGTERM stops at once, gracefully;
    SIGINT and SIGQUIT stop at once as always."""
    from gateway.health.drain import DrainState, write_state

    stop = server.handle_term  # raises StopIteration: the arbiter's main loop then halts
    ops = _settings.config["ops"]
    signalled = threading.Event()

    def handle_term():
        if signalled.is_set():
            stop()
        signalled.set()
        now = time.time()
        write_state(_drain_file, DrainState(now, now + ops["drain_grace"]))
        server.log.info("SIGTERM: draining; gunicorn stops in %ss", ops["drain_serve"])
        timer = threading.Timer(ops["drain_serve"], os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()

    server.handle_term = handle_term


def post_worker_init(worker):
    """Each worker reads and writes this gateway's drain state in the master's file."""
    from gateway.health.drain import drain_of

    drain_of(worker.wsgi).share(_drain_file)


def worker_exit(server, worker):
    """In the exiting worker: export the spans it still holds (settings/tracing.py; nothing when tracing is off)."""
    from settings import tracing

    tracing.shutdown()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    _drain_file.unlink(missing_ok=True)
    if _metrics_dir.startswith(tempfile.gettempdir()):
        shutil.rmtree(_metrics_dir, ignore_errors=True)
