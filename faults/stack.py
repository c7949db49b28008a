"""One scenario's stack, all on 127.0.0.1 and free ports, in its own folder: redis-server with compose's
durability (AOF, `appendfsync always`), a real OpenBao configured by deploy/vault_bootstrap.py, the
gateway started as compose starts it (`gunicorn wsgi:app`, GATEWAY_BIND) and a `hash` worker started
with compose's command plus `-I faults.probe` (the suite's job type). No PYTHONPATH: production has none.
With `Knobs.http_workers`, also that many reference Node workers (examples/node-worker/) leasing job type
`calc_hash_http` of queue `http` over the HTTP worker API, which the load's hashing jobs then are; they
write the same ledger as the probes (faults/ledger.py).

The stack also plays the supervisor compose is (`restart: unless-stopped`): `supervise()` starts again a
worker (Celery or Node) that exited or was killed, and says how often it had to.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import requests
from celery import Celery
from redis import Redis

import celeryconfig
from devsupport import jwt as devjwt
from devsupport.deployment import compose_argv
from devsupport.processes import ROOT, Process, free_port, start_redis, wait_until
from devsupport.procfs import children
from devsupport.vault import DevVault
from settings import load_settings

PROBE_SCHEMA = ROOT / "faults" / "probe.json"
USERS = {"admin": ("client-admin", "admin"), "system": ("gateway-system", "system")}
WORKER = "hash"  # compose's service and node name
NODE_WORKER = ROOT / "examples" / "node-worker" / "worker.mjs"
HTTP_QUEUE, HTTP_TYPE = "http", "calc_hash_http"  # the Node workers' queue and job type (calc_hash's task)
HTTP_WORK_MS = 200  # the Node workers' WORK_DELAY_MS: busy for a while, as a probe is, when the fault strikes
HTTP_WAIT = 5  # their long polls (s): short, so that they stop soon at the end


@dataclass
class Knobs:
    """What a scenario may change in the shipped configuration (everything else is config.example.json
    and settings/defaults.json)."""

    visibility_timeout: int = 10  # workers.visibility_timeout; shipped 45 (the rerun bound is this + 5 s)
    gateway_workers: int = 2  # GATEWAY_WORKERS (4 threads each)
    worker_restarts: bool = True  # restart a worker that exits, as compose does
    queues: str = ""  # the worker's -Q instead of compose's (one queue); the probes' queue, hash, among them
    http_workers: int = 0  # reference Node workers on queue `http`; the load's hashing jobs go to them
    worker_nodes: int = 1  # Celery worker nodes on the probes' queue (hash@, hash-2@, ...), each as compose starts one


@dataclass
class Stack:
    dir: Path
    knobs: Knobs = field(default_factory=Knobs)
    procs: dict[str, Process] = field(default_factory=dict)
    worker_starts: int = 0
    worker_exits: list[int | None] = field(default_factory=list)
    http_worker_starts: int = 0
    http_worker_exits: list[int | None] = field(default_factory=list)
    _supervisor: threading.Lock = field(default_factory=threading.Lock)

    # --- start and stop ---------------------------------------------------------------------------------

    def start(self) -> Stack:
        self.logs = self.dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ledger = self.dir / "ledger.txt"
        self.redis_password = secrets.token_urlsafe(18)
        self.redis_port = free_port()
        self.start_redis()
        self.vault = DevVault(self.dir).start()
        self.jwt_key, public_key = devjwt.new_key_pair()
        self.passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        users = {user: {"password": self.passwords[user], "client_id": client_id, "role": role}
                 for user, (client_id, role) in USERS.items()}
        self.gateway_token = self.vault.configure(users, [public_key], token_id=secrets.token_urlsafe(24))
        self._write_config()
        self.start_gateway()
        for index in range(self.knobs.worker_nodes):
            self.start_worker(index)
        for index in range(self.knobs.http_workers):
            self.start_http_worker(index)
        return self

    def close(self) -> None:
        self.vault.stop()
        # The Node workers first, all at once: each ends its long poll (HTTP_WAIT) and its job, then exits.
        for name in self.http_workers():
            if self.procs[name].alive():
                os.kill(self.procs[name].proc.pid, signal.SIGTERM)
        for name in self.http_workers():
            try:
                self.procs[name].proc.wait(HTTP_WAIT + 10)
            except subprocess.TimeoutExpired:
                pass  # stopped below, killed if need be
        for name in reversed(list(self.procs)):
            resume(self.procs[name])
            self.procs[name].stop()
        if getattr(self, "_celery", None) is not None:
            self._celery.close()

    def _write_config(self) -> None:
        config = json.loads((ROOT / "config.example.json").read_text())
        redis_secrets = self._deployment(config)
        config["vault"]["url"] = self.vault.url
        config["logging"].update(level="INFO", log_file=str(self.logs / "gateway.log"))
        if "visibility_timeout" in json.loads((ROOT / "settings" / "defaults.json").read_text())["workers"]:
            config["workers"]["visibility_timeout"] = self.knobs.visibility_timeout  # (absent before issue 13)
        if "http_lease" in json.loads((ROOT / "settings" / "defaults.json").read_text())["workers"]:
            config["workers"]["http_lease"] = self.knobs.visibility_timeout  # HTTP workers' leases: the same bound
        config["jobs"]["probe"] = {**config["jobs"]["calc_hash"], "task": "faults.probe", "schema": str(PROBE_SCHEMA)}
        config["roles"]["admin"].append("probe")
        config["roles"]["service"].append("probe")
        if self.knobs.http_workers:
            config["jobs"][HTTP_TYPE] = {**config["jobs"]["calc_hash"], "queue": HTTP_QUEUE}
            config["roles"]["admin"].append(HTTP_TYPE)
            config["roles"]["service"].append(HTTP_TYPE)
        # The load is one client sending far more than a client should: rate limits off, as in bench/.
        config.setdefault("limits", {})["rate"] = {"submit": {"default": "1000000/second"},
                                                   "read": {"default": "1000000/second"}}
        config["limits"]["max_unfinished"] = {"default": None}
        self.config_path, self.secrets_path = self.dir / "config.json", self.dir / ".secrets.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.secrets_path.touch(mode=0o600)
        self.secrets_path.write_text(json.dumps({"redis": redis_secrets, "vault": {"token": self.gateway_token}}))
        self.settings = load_settings(self.config_path, self.secrets_path, environ={})
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GATEWAY", "VAULT_", "BAO_")) and k not in ("PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")}
        self.env = dict(env, GATEWAY_CONFIG=str(self.config_path), GATEWAY_SECRETS=str(self.secrets_path))

    # --- redis --------------------------------------------------------------------------------------------

    def _deployment(self, config: dict) -> dict[str, str]:
        """What this stack changes in `config` for its own deployment (its Redis); the `redis` part of the
        secrets."""
        config["queue"]["url"] = f"redis://127.0.0.1:{self.redis_port}/0"
        return {"password": self.redis_password}

    def start_redis(self) -> None:
        """redis-server on the same port and folder each time, so a restart reloads its AOF."""
        proc, _ = start_redis(self.dir, self.redis_password, port=self.redis_port, persistence="always")
        self.procs["redis"] = proc
        wait_until(lambda: proc.alive() and self.redis().ping(), 30, "redis-server ready")

    def redis(self) -> Redis:
        return Redis(port=self.redis_port, password=self.redis_password, decode_responses=True,
                     socket_timeout=5, socket_connect_timeout=2)

    def kill_redis(self) -> None:
        self.procs["redis"].stop(signal.SIGKILL)

    # --- gateway ------------------------------------------------------------------------------------------

    def start_gateway(self) -> None:
        port = free_port()
        env = dict(self.env, GATEWAY_BIND=f"127.0.0.1:{port}", GATEWAY_WORKERS=str(self.knobs.gateway_workers),
                   PROMETHEUS_MULTIPROC_DIR=str(self.dir / "prometheus"))
        proc = Process("gateway", compose_argv("gateway"), env, self.logs)
        self.procs["gateway"] = proc
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: proc.alive() and requests.get(self.url + "/health", timeout=2).status_code == 200,
                   60, "gateway ready")

    def gateway_children(self) -> list[int]:
        """The gunicorn master's worker processes, sorted by pid."""
        return children(self.procs["gateway"].proc.pid)

    # --- worker -------------------------------------------------------------------------------------------

    @staticmethod
    def worker_key(index: int) -> str:
        """The worker node's key in `procs`: `worker`, then `worker-2`, ..."""
        return "worker" if index == 0 else f"worker-{index + 1}"

    @staticmethod
    def node(index: int = 0) -> str:
        """Worker node `index`'s Celery name: `hash@<host>`, then `hash-2@<host>`, ..."""
        return f"{WORKER if index == 0 else f'{WORKER}-{index + 1}'}@{socket.gethostname()}"

    def start_worker(self, index: int = 0) -> None:
        """Worker node `index` with compose's command; a second node of the queue is compose's service
        again under another node name (`-n hash-2@%h`), as a second machine's would be."""
        name = WORKER if index == 0 else f"{WORKER}-{index + 1}"
        env = dict(self.env, WORKER_NAME=name, FAULTS_LEDGER=str(self.ledger),
                   GATEWAY__LOGGING__LOG_FILE=str(self.logs / f"{self.worker_key(index)}.log"))
        self.worker_starts += 1
        argv = compose_argv(f"worker-{WORKER}")
        if self.knobs.queues:
            argv[argv.index("-Q") + 1] = self.knobs.queues
        argv[argv.index("-n") + 1] = f"{name}@%h"
        proc = Process(f"{self.worker_key(index)}-{self.worker_starts}", [*argv, "-I", "faults.probe"], env, self.logs)
        self.procs[self.worker_key(index)] = proc
        node = self.node(index)
        wait_until(lambda: proc.alive() and self.celery().control.ping(destination=[node], timeout=0.5),
                   60, f"worker {node} ready")

    def kill_worker(self) -> None:
        """SIGKILL to the worker's whole process group: the main process and every pool process."""
        with self._supervisor:
            proc = self.procs["worker"]
            os.killpg(proc.proc.pid, signal.SIGKILL)
            proc.proc.wait(10)

    def supervise(self) -> None:
        """compose's `restart: unless-stopped`: a worker that is gone is started again."""
        with self._supervisor:
            for index in range(self.knobs.worker_nodes):
                proc = self.procs.get(self.worker_key(index))
                if proc is not None and not proc.alive() and self.knobs.worker_restarts:
                    self.worker_exits.append(proc.proc.returncode)
                    self.start_worker(index)
            for index, name in enumerate(self.http_workers()):
                if not self.procs[name].alive() and self.knobs.worker_restarts:
                    self.http_worker_exits.append(self.procs[name].proc.returncode)
                    self.start_http_worker(index)

    # --- HTTP workers ---------------------------------------------------------------------------------------

    @property
    def hash_type(self) -> str:
        """The job type of the load's hashing share: the Node workers' when there are any."""
        return HTTP_TYPE if self.knobs.http_workers else "calc_hash"

    def http_workers(self) -> list[str]:
        return [name for name in self.procs if name.startswith("http-")]

    def start_http_worker(self, index: int) -> None:
        """The reference Node worker `node-<index>`, as the system identity, writing the probes' ledger."""
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (scripts/bootstrap.sh installs it: apt-get install nodejs)")
        env = {k: v for k, v in self.env.items() if not k.startswith("GATEWAY")}
        env.update(GATEWAY_URL=self.url, WORKER_NAME=f"node-{index}", WORKER_USER="system",
                   WORKER_PASSWORD=self.passwords["system"], QUEUE=HTTP_QUEUE, JOB_TYPES=HTTP_TYPE,
                   WAIT=str(HTTP_WAIT), WORK_DELAY_MS=str(HTTP_WORK_MS), LEDGER_FILE=str(self.ledger))
        self.http_worker_starts += 1
        proc = Process(f"node-{index}-{self.http_worker_starts}", [node, str(NODE_WORKER)], env, self.logs)
        self.procs[f"http-{index}"] = proc
        wait_until(lambda: "started" in proc.output() or not proc.alive(), 30, f"node worker {index} started")

    def kill_http_worker(self, pid: int) -> None:
        """SIGKILL the Node worker whose process is `pid`."""
        with self._supervisor:
            for name in self.http_workers():
                if self.procs[name].proc.pid == pid:
                    os.killpg(pid, signal.SIGKILL)
                    self.procs[name].proc.wait(10)
                    return
        raise LookupError(f"no Node worker has pid {pid}")

    def celery(self) -> Celery:
        if getattr(self, "_celery", None) is None:
            self._celery = Celery("faults", config_source=celeryconfig.build(self.settings, role="worker"),
                                  set_as_current=False)
        return self._celery

    # --- credentials ----------------------------------------------------------------------------------------

    def admin(self) -> tuple[str, str]:
        return "admin", self.passwords["admin"]

    def fresh_jwt(self) -> str:
        """A token no gateway process has seen: its request needs a Vault login."""
        claims = devjwt.demo_claims(f"fault-{secrets.token_hex(6)}", "client-jwt", "service", ttl=600)
        return devjwt.mint(self.jwt_key, claims)



def pause(proc: Process) -> None:
    os.kill(proc.proc.pid, signal.SIGSTOP)


def resume(proc: Process) -> None:
    if proc.alive():
        os.kill(proc.proc.pid, signal.SIGCONT)

