"""The isolated stack of one bench run: its own redis-server (free port, password), a real OpenBao
(`bao server -dev`, devsupport/vault.py) configured by deploy/vault_bootstrap.py, the gateway under the
production gunicorn config, and on demand a Celery worker for `hash` and Flower, all against the same
broker. Everything lives in one temporary folder and every process is stopped by `close()`, which the
runner calls on success, failure and Ctrl-C.

The pieces are the ones the tests use (devsupport/): the same redis-server flags, the same Process
wrapper (own session, output in a file, SIGTERM then SIGKILL) and the same Vault set-up; the bench's
own small user table is below (it does not import from tests/).
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from celery import Celery
from redis import Redis

import celeryconfig
from bench import stock
from deploy import nginx
from devsupport import jwt as devjwt
from devsupport import procfs
from devsupport.processes import BIN, ROOT, Process, free_port, start_nginx, start_redis
from devsupport.vault import DevVault
from jobs import stats
from settings import Settings, load_settings

HASH_QUEUE = "hash"
WORKER_NODE = "bench-hash"
STOCK_NODE = "bench-stock"
# Knobs of gunicorn.conf.py that a bench may vary, and the tracing settings (GATEWAY__TRACING__*, to measure
# what traces cost: docs/performance.md "Traces' cost"); every other GATEWAY* variable of the caller is dropped.
PASSED_THROUGH = ("GATEWAY_WORKERS", "GATEWAY_THREADS")
TRACING_PREFIX = "GATEWAY__TRACING__"


# username -> (client_id, role). `guessed` is used only by the wrong-password row, so the per-username
# throttle it trips never touches the users the other rows log in with.
USERS = {
    "admin": ("client-admin", "admin"),
    "service": ("client-service", "service"),
    "copytrust": ("client-copytrust", "copytrust_site"),
    "guessed": ("client-guessed", "service"),
}


class StackError(RuntimeError):
    pass


@dataclass
class BenchVault:
    """The configured OpenBao and what the rows need from it: credentials, and the requests that
    reached it, counted from its audit device (the gateway's own counters are not trusted here)."""

    server: DevVault
    gateway_token: str
    passwords: dict[str, str]
    private_key: str

    @property
    def url(self) -> str:
        return self.server.url

    def basic(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]

    def logins(self) -> int:
        return self.server.logins()

    def calls(self) -> int:
        return self.server.calls()

    def entity_reads(self) -> int:
        return sum(1 for entry in self.server.audit_requests()
                   if entry["request"].get("path", "").startswith("identity/entity/id/"))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, watch: tuple[Process, ...] = (),
              interval: float = 0.02) -> Any:
    """Poll until `predicate` is truthy; fail at the deadline, or at once if a watched process died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for proc in watch:
            if not proc.alive():
                raise StackError(f"{proc.name} exited while waiting for {what}:\n{tail(proc)}")
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling; the last failure is reported
            last = exc
        time.sleep(interval)
    raise StackError(f"{what} not reached within {timeout}s (last error: {last!r})")


def tail(proc: Process, lines: int = 25) -> str:
    try:
        return "\n".join(proc.output().splitlines()[-lines:])
    except OSError:
        return "(no output)"


NO_RATE_LIMIT = "1000000/second"
NO_CAP = 10**9


def _unbinding_limits(config: dict[str, Any]) -> None:
    """Per-client rate limits and the unfinished-task cap stay switched on (their checks are part of
    every request's cost) but far above anything the bench sends: the rows measure throughput, not
    the limiter refusing it. Every role of the defaults and of the config gets the same values."""
    defaults = json.loads((ROOT / "settings" / "defaults.json").read_text()).get("limits", {})
    limits = config.setdefault("limits", {})
    roles = set(config.get("roles", {}))
    for kind, table in (defaults.get("rate") or {}).items():
        limits.setdefault("rate", {})[kind] = {
            "default": NO_RATE_LIMIT, "roles": dict.fromkeys(roles | set(table.get("roles") or {}), NO_RATE_LIMIT)}
    if isinstance(defaults.get("max_unfinished"), dict):
        table = defaults["max_unfinished"]
        limits["max_unfinished"] = {"default": NO_CAP,
                                    "roles": dict.fromkeys(roles | set(table.get("roles") or {}), NO_CAP)}


class Stack:
    """Start pieces with start_*(); `close()` stops whatever was started, newest first."""

    def __init__(self, workdir: Path, redis_persistence: str = "none") -> None:
        self.dir = workdir
        self.redis_persistence = redis_persistence  # devsupport.processes.start_redis: none, everysec, always
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._procs: dict[str, Process] = {}
        self._celery: Celery | None = None
        self._stock: Celery | None = None
        self.settings: Settings | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        for name in reversed(list(self._procs)):
            self.stop(name)
        for app in (self._celery, self._stock):
            if app is not None:
                app.close()

    def stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None:
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others regardless
                print(f"bench: could not stop {name}: {exc!r}", file=sys.stderr)

    def diagnostics(self) -> str:
        return "\n".join(f"--- {name} ({proc.log_path.name}) ---\n{tail(proc)}" for name, proc in self._procs.items())

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        proc = Process(name, argv, env, self.logs)
        self._procs[name] = proc
        return proc

    # --- redis, Vault, configuration ----------------------------------------------------------------

    def start_base(self) -> None:
        """redis-server, OpenBao, config files, the gateway: what every row needs."""
        self.start_redis()
        self.start_vault()
        self.write_config()
        self.start_gateway()

    def start_redis(self) -> None:
        self.redis_password = secrets.token_urlsafe(18)
        proc, self.redis_port = start_redis(self.dir, self.redis_password, persistence=self.redis_persistence)
        self._procs["redis"] = proc
        self.redis_pid = proc.proc.pid
        wait_for(lambda: Redis(port=self.redis_port, password=self.redis_password).ping(), 15,
                 "redis-server ready", (proc,))

    def start_replica(self) -> None:
        """A replica of the bench Redis (same password, no persistence), in sync before this returns: what
        `queue.wait_replicas` waits for (the `wait` rows)."""
        self.replica_port = free_port()
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.replica_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--requirepass", self.redis_password,
                "--masterauth", self.redis_password, "--replicaof", "127.0.0.1", str(self.redis_port),
                "--dir", str(self.dir)]
        proc = self._start("redis-replica", argv, dict(os.environ))
        replica = Redis(port=self.replica_port, password=self.redis_password, decode_responses=True)
        wait_for(lambda: replica.info("replication")["master_link_status"] == "up", 30, "replica in sync", (proc,))

    def start_vault(self) -> None:
        """`bao server -dev` on a free port in its own process (never sharing the driver's GIL),
        configured by deploy/vault_bootstrap.py with the users above and a fresh JWT key pair."""
        server = DevVault(self.dir)
        try:
            server.start()
        finally:
            if server.proc is not None:
                self._procs["vault"] = server.proc  # stopped by close() like every other process
        private_key, public_key = devjwt.new_key_pair()
        passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        users = {user: {"password": passwords[user], "client_id": client_id, "role": role}
                 for user, (client_id, role) in USERS.items()}
        token = server.configure(users, [public_key], token_id=secrets.token_urlsafe(24))
        self.vault = BenchVault(server, token, passwords, private_key)

    def write_config(self) -> None:
        """config.example.json pointed at this stack, logging as shipped (INFO) into this run's folder."""
        config = json.loads((ROOT / "config.example.json").read_text())
        config["queue"]["url"] = f"redis://127.0.0.1:{self.redis_port}/0"
        config["vault"]["url"] = self.vault.url
        config["logging"].update(level="INFO", log_file=str(self.logs / "gateway.log"))
        _unbinding_limits(config)
        self.config_path, self.secrets_path = self.dir / "config.json", self.dir / ".secrets.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.secrets_path.touch(mode=0o600)
        self.secrets_path.write_text(json.dumps({"redis": {"password": self.redis_password},
                                                 "vault": {"token": self.vault.gateway_token}}))
        self.settings = load_settings(self.config_path, self.secrets_path, environ={})
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GATEWAY") or k in PASSED_THROUGH or k.startswith(TRACING_PREFIX)}
        env.update(GATEWAY_CONFIG=str(self.config_path), GATEWAY_SECRETS=str(self.secrets_path),
                   PYTHONPATH=str(ROOT), PROMETHEUS_MULTIPROC_DIR=str(self.dir / "prometheus"))
        self.env = env

    def redis(self) -> Redis:
        return Redis.from_url(self.settings.broker_url, decode_responses=True)

    def celery(self) -> Celery:
        """A client app with the workers' configuration, for remote control (ping)."""
        if self._celery is None:
            self._celery = Celery("bench", config_source=celeryconfig.build(self.settings, role="worker"),
                                  set_as_current=False)
        return self._celery

    # --- the gateway ---------------------------------------------------------------------------------

    @property
    def gateway_workers(self) -> int:
        """How many worker processes gunicorn.conf.py starts: GATEWAY_WORKERS, else 2 per core."""
        return int(self.env.get("GATEWAY_WORKERS", 2 * (os.cpu_count() or 1)))

    def start_gateway(self) -> None:
        """`gunicorn wsgi:app` from the project root, so gunicorn.conf.py is the config; GATEWAY_BIND
        picks the port."""
        self.gateway_url, self.gunicorn_pid = self._gunicorn("gunicorn", {})

    def start_waiting_gateway(self, replicas: int, timeout_ms: int) -> None:
        """A second gateway, the same but for `queue.wait_replicas` (the `wait` rows)."""
        self.waiting_gateway_url, self.waiting_gunicorn_pid = self._gunicorn("gunicorn-wait", {
            "GATEWAY__QUEUE__WAIT_REPLICAS": str(replicas), "GATEWAY__QUEUE__WAIT_TIMEOUT_MS": str(timeout_ms),
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "prometheus-wait")})

    def _gunicorn(self, name: str, extra: dict[str, str]) -> tuple[str, int]:
        port = free_port()
        env = {**self.env, **extra, "GATEWAY_BIND": f"127.0.0.1:{port}"}
        proc = self._start(name, [str(BIN / "gunicorn"), "wsgi:app"], env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: len(procfs.children(proc.proc.pid)) == self.gateway_workers
                 and requests.get(url + "/health", timeout=1).status_code == 200,
                 60, f"{name} ready (/health 200, all workers booted)", (proc,))
        return url, proc.proc.pid

    def gunicorn_pids(self) -> list[int]:
        return procfs.tree(self.gunicorn_pid)

    # --- the production path: nginx in front of a gateway configured as compose configures it ---------

    def start_proxy(self) -> None:
        """A second gunicorn, set as compose sets the one behind nginx (`proxy.trusted_hops` 1, so it
        believes nginx's X-Forwarded-For and drains unread bodies), with as many workers as the direct
        one, and in front of it a real nginx with the configuration deploy/nginx.py renders for
        production (the same template, limits and keep-alive to the upstream); its access log and temp
        files in this run's folder. A gunicorn of its own, so the direct rows keep measuring the gateway
        as before; its metrics folder and log file are its own too (gunicorn empties the metrics folder
        at start)."""
        port = free_port()
        env = {**self.env, "GATEWAY_BIND": f"127.0.0.1:{port}", "GATEWAY__PROXY__TRUSTED_HOPS": "1",
               "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "prometheus-proxied"),
               "GATEWAY__LOGGING__LOG_FILE": str(self.logs / "gateway-proxied.log")}
        proc = self._start("gunicorn-proxied", [str(BIN / "gunicorn"), "wsgi:app"], env)
        self.proxied_gunicorn_pid = proc.proc.pid
        upstream = f"http://127.0.0.1:{port}"
        wait_for(lambda: len(procfs.children(self.proxied_gunicorn_pid)) == self.gateway_workers
                 and requests.get(upstream + "/health", timeout=1).status_code == 200,
                 60, "gateway behind nginx ready (/health 200, all workers booted)", (proc,))
        listen = free_port()
        home = self.dir / "nginx"
        (home / "temp").mkdir(parents=True, exist_ok=True)
        # As root nginx wants a `user` to switch to: this one, so it can write this run's folder.
        user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
        paths = nginx.Paths(pid=str(home / "nginx.pid"), error_log=str(self.logs / "nginx-error.log"),
                            access_log=str(self.logs / "nginx-access.log"), temp=str(home / "temp"), user=user)
        conf = home / "nginx.conf"
        conf.write_text(nginx.render(self.settings, f"127.0.0.1:{listen}", f"127.0.0.1:{port}", paths))
        server = start_nginx(conf, self.logs)
        self._procs["nginx"] = server
        self.nginx_pid = server.proc.pid
        self.proxy_url = f"http://127.0.0.1:{listen}"
        wait_for(lambda: requests.get(self.proxy_url + "/ping", timeout=1).status_code == 200, 30,
                 "gateway through nginx", (server, proc))

    def stop_proxy(self) -> None:
        self.stop("nginx")
        self.stop("gunicorn-proxied")

    def proxied_gunicorn_pids(self) -> list[int]:
        return procfs.tree(self.proxied_gunicorn_pid)

    def nginx_pids(self) -> list[int]:
        return procfs.tree(self.nginx_pid)

    def gunicorn_workers(self) -> list[int]:
        return procfs.children(self.gunicorn_pid)

    # --- Celery worker and Flower --------------------------------------------------------------------

    def start_worker(self, queues: str = HASH_QUEUE, noop: bool = True) -> None:
        """One worker as compose starts it (`celery -A tasks worker -Q hash -n <node>@%h`), plus the bench's
        no-op task (`-I bench.noop`) unless `noop` is false; `queues` as `-Q` takes them. Concurrency and
        prefetch come from config (workers.*)."""
        env = {**self.env, "GATEWAY__LOGGING__LOG_FILE": str(self.logs / "worker.log")}
        proc = self._start("worker", [str(BIN / "celery"), "-A", "tasks", "worker", "-Q", queues,
                                      "-n", f"{WORKER_NODE}@%h"] + (["-I", "bench.noop"] if noop else []), env)
        self.worker_pid = proc.proc.pid
        node = f"{WORKER_NODE}@{socket.gethostname()}"
        concurrency = self.settings.config["workers"]["concurrency"]
        wait_for(lambda: len(procfs.children(self.worker_pid)) >= concurrency
                 and self.celery().control.ping(destination=[node], timeout=0.5),
                 60, f"worker {node} ready", (proc,))

    def stop_worker(self) -> None:
        self.stop("worker")

    def stock_app(self) -> Celery:
        """The stock Celery app of bench/stock.py on this stack's Redis (broker and result backend): the
        stock worker's client, and the publisher of the bare send_task rows."""
        if self._stock is None:
            self._stock = stock.make_app(self.settings.broker_url)
        return self._stock

    def start_stock_worker(self, queues: tuple[str, ...] = stock.QUEUES[:1]) -> None:
        """A stock Celery worker, no project code: `celery -A bench.stock worker -Q <queues> -E`, with the
        pool size of the project's worker (`-c`, workers.concurrency) so both run as many processes."""
        concurrency = self.settings.config["workers"]["concurrency"]
        env = {**self.env, stock.BROKER_ENV: self.settings.broker_url}
        proc = self._start("stock-worker", [str(BIN / "celery"), "-A", "bench.stock", "worker", "-Q", ",".join(queues),
                                            "-E", "-c", str(concurrency), "-n", f"{STOCK_NODE}@%h"], env)
        self.stock_worker_pid = proc.proc.pid
        node = f"{STOCK_NODE}@{socket.gethostname()}"
        wait_for(lambda: len(procfs.children(self.stock_worker_pid)) >= concurrency
                 and self.stock_app().control.ping(destination=[node], timeout=0.5),
                 60, f"stock worker {node} ready", (proc,))

    def stop_stock_worker(self) -> None:
        self.stop("stock-worker")

    def worker_pids(self) -> list[int]:
        return procfs.tree(self.worker_pid) if "worker" in self._procs else []

    def start_flower(self) -> None:
        """`celery -A tasks flower` on the same broker (the app's own configuration points at it, so the
        URL with its password never appears on a command line); the REST API open without auth."""
        port = free_port()
        env = {**self.env, "FLOWER_UNAUTHENTICATED_API": "true",
               "GATEWAY__LOGGING__LOG_FILE": str(self.logs / "flower.log")}
        proc = self._start("flower", [str(BIN / "celery"), "-A", "tasks", "flower", f"--port={port}",
                                      "--address=127.0.0.1"], env)
        self.flower_url = f"http://127.0.0.1:{port}"
        self.flower_pid = proc.proc.pid
        wait_for(lambda: requests.get(self.flower_url + "/healthcheck", timeout=1).status_code == 200, 60,
                 "Flower ready", (proc,))

    def stop_flower(self) -> None:
        self.stop("flower")

    # --- redis state -----------------------------------------------------------------------------------

    def counter(self, field: str) -> int:
        """A lifetime count from the shared task counts (jobs/stats.py): `submitted|calc_hash`, ..."""
        return int(self.redis().hget(stats.TOTAL_KEY, field) or 0)

    def queue_depth(self) -> int:
        return int(self.redis().llen(HASH_QUEUE))

    def flush(self, keep: frozenset[str] = frozenset()) -> int:
        """Drop queued messages, task records and results between rows (never kombu's bindings, which
        publishers cache as declared); task ids in `keep` stay. Returns the number of keys removed."""
        client = self.redis()
        queues = {job["queue"] for job in self.settings.config["jobs"].values()} | set(stock.QUEUES)
        patterns = [f"{name}*" for name in queues] + ["gw:task:*", "celery-task-meta-*", "unacked*"]
        removed = 0
        for pattern in patterns:
            batch: list[str] = []
            for key in client.scan_iter(match=pattern, count=1000):
                if any(key.endswith(task_id) for task_id in keep):
                    continue
                batch.append(key)
                if len(batch) >= 1000:
                    removed += client.delete(*batch)
                    batch.clear()
            if batch:
                removed += client.delete(*batch)
        return removed
