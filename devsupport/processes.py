"""Real processes on this machine: redis-server, Celery workers, gunicorn, nginx. Each is polled until ready
with a deadline; none is trusted to be ready after a sleep. Workers and gunicorn start with exactly
the command README and run-local.sh give (`celery -A tasks worker`, `gunicorn wsgi:app`), from the
project folder, and with no PYTHONPATH of their own: production has none (tests/conftest.py)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last failure
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s (last error: {last_error!r})")


class Process:
    """A child process with its output in a file, stopped gracefully (then killed) at the end."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def start_redis(log_dir: Path, password: str, port: int | None = None,
                persistence: str = "none") -> tuple[Process, int]:
    """redis-server on 127.0.0.1. `persistence`: "none" (tests: nothing on disk), or the AOF with
    `appendfsync` "everysec" or "always" (compose's choice; what a restart from disk keeps), its
    files in `log_dir`, so a server started again on the same port and folder reloads them."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = port or free_port()
    aof = ["--appendonly", "no"] if persistence == "none" else [
        "--appendonly", "yes", "--appendfsync", persistence, "--appendfilename", f"appendonly-{port}.aof",
        "--appenddirname", f"aof-{port}"]
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof,
            "--requirepass", password, "--dir", str(log_dir)]
    return Process(f"redis-{port}", argv, dict(os.environ), log_dir), port


def start_worker(name: str, queues: str, env: dict[str, str], log_dir: Path, extra: Sequence[str] = (),
                 concurrency: int | None = 2) -> Process:
    argv = [str(BIN / "celery"), "-A", "tasks", "worker", "-Q", queues, "-n", f"{name}@%h",
            *(["-c", str(concurrency)] if concurrency else []), "--without-mingle", "--without-gossip", *extra]
    return Process(f"worker-{name}", argv, env, log_dir)


SCHEDULER_COMMAND = ["celery", "-A", "gateway.schedules.beat", "beat", "--loglevel", "INFO"]


def start_scheduler(name: str, env: dict[str, str], log_dir: Path) -> Process:
    """The periodic jobs' scheduler, as run-local.sh and compose's `scheduler` start it."""
    return Process(f"scheduler-{name}", [str(BIN / "celery"), *SCHEDULER_COMMAND[1:]], env, log_dir)


def start_gunicorn(port: int, env: dict[str, str], log_dir: Path, workers: int = 2) -> Process:
    argv = [str(BIN / "gunicorn"), "wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    return Process(f"gunicorn-{port}", argv, env, log_dir)


def start_nginx(conf: Path, log_dir: Path) -> Process:
    """nginx in the foreground (`daemon off`) with this configuration, its prefix the configuration's
    folder. `-e` sends the error log nginx writes before it has read the configuration to log_dir too,
    never to /var/log."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    nginx = shutil.which("nginx", path=search)
    if nginx is None:
        raise RuntimeError("nginx is not installed (scripts/bootstrap.sh installs it: apt-get install nginx)")
    argv = [nginx, "-p", str(conf.parent), "-e", str(log_dir / f"{conf.parent.name}-error.log"),
            "-c", str(conf), "-g", "daemon off;"]
    return Process(conf.parent.name, argv, dict(os.environ), log_dir)
