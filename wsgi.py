"""gunicorn wsgi:app"""
import sys

from gateway import create_app


def _app():
    """The gateway. Settings missing or invalid: create_app said which and how to fix them. gunicorn.conf.py
    checks them in the master first, but a gunicorn that did not read it (started elsewhere, or with
    --chdir) only meets them here, in each worker: exit as a worker that failed to boot, so the master
    stops instead of starting worker after worker."""
    try:
        return create_app()
    except SystemExit:
        if "gunicorn.arbiter" in sys.modules:
            from gunicorn.arbiter import Arbiter

            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None
        raise


app = _app()
