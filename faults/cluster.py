"""The failover scenarios' stack: several machines' worth of services on one, all on 127.0.0.1.

A Redis Sentinel group (devsupport/sentinel.py: master + one replica, or two, all with compose's AOF
`appendfsync always`, three sentinels), three gateway instances started as compose starts its `gateway`
service (`gunicorn wsgi:app`, GATEWAY_BIND, compose's proxy settings), one nginx in front of them with the
configuration compose's `proxy-config` renders (deploy/nginx.py, one `server` line per instance), two
Celery worker nodes on the probes' queue (`hash@`, `hash-2@`) and OpenBao. Every process is given the
sentinel:// address of the three sentinels (a dead one listed first, celery#5538) and
`queue.sentinel.master_name`, nothing else: none of them is told where the master is, so each must follow a
failover by itself.

The clients (faults/load.py) and the checker reach the gateway through nginx only (`url`).
"""
from __future__ import annotations

import os
import pwd
import secrets
import time
from dataclasses import dataclass, field
from typing import cast

import requests
from redis import Redis

from deploy.nginx import Paths, render
from devsupport.deployment import compose_argv
from devsupport.processes import Process, free_port, start_nginx, wait_until
from devsupport.procfs import tree
from devsupport.sentinel import Group, start_group
from faults.load import Load
from faults.stack import Stack

GATEWAYS = 3


@dataclass
class SentinelStack(Stack):
    """Stack's scenario interface (url, redis(), kill_redis(), workers, supervise()) over the group."""

    gateways: int = GATEWAYS
    wait_replicas: int = 0  # queue.wait_replicas: 1 = a 202 only once the replica has the job
    replicas: int = 1  # the group's replicas (docs/operations.md advises wait_replicas + 1)
    gateway_urls: list[str] = field(default_factory=list)

    # --- redis: the Sentinel group ------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.group: Group = start_group(self.dir / "redis", self.redis_password, secrets.token_urlsafe(18),
                                        persistence="always", replicas=self.replicas)

    def _deployment(self, config: dict) -> dict[str, str]:
        config["queue"].update(url=self.group.url(), sentinel={"master_name": self.group.master_name},
                               wait_replicas=self.wait_replicas)
        # Vault login attempts per username are counted across every gateway process (10/minute shipped),
        # and each of the 3 x 2 processes logs the load's one user in at its first request: on this shared
        # machine a slow OpenBao (over vault.timeout) made those logins fail and be tried again, and the
        # user was locked out (429) for a minute. Not this scenario's subject: room for retries here.
        config["limits"]["failed_auth"] = {**config["limits"].get("failed_auth", {}), "per_username": "60/minute"}
        return {"password": self.redis_password, "sentinel_password": self.group.sentinel_password}

    def master_port(self) -> int:
        """The master's port as the sentinels report it now (the first of them that answers)."""
        last: Exception | None = None
        for index in range(len(self.group.sentinel_ports)):
            try:
                return self.group.master_address(index)
            except Exception as exc:  # noqa: BLE001 - ask the next sentinel
                last = exc
        raise RuntimeError(f"no sentinel answered: {last!r}")

    def redis(self) -> Redis:
        """The master of now (the checker's record scan reads it after the failover)."""
        return Redis(port=self.master_port(), password=self.redis_password, decode_responses=True,
                     socket_timeout=5, socket_connect_timeout=2)

    def kill_redis(self) -> None:
        self.group.kill(self.group.name_of(self.master_port()))

    def restart_server(self, name: str) -> None:
        """Start redis-server `name` again with the command it first had (a supervisor's restart): an old
        master comes back believing it is a master, and the sentinels must make it a replica."""
        self.group.start_server(name)

    # --- gateways behind nginx ------------------------------------------------------------------------------

    def start_gateway(self) -> None:
        for index in range(self.gateways):
            self._start_instance(index)
        for url in self.gateway_urls:
            wait_until(lambda url=url: requests.get(url + "/health", timeout=2).status_code == 200, 60,
                       f"gateway {url} ready")
        self._start_nginx()

    def _start_instance(self, index: int) -> None:
        port = free_port()
        # compose's gateway-env: X-Forwarded-For believed from one proxy, nginx's.
        env = dict(self.env, GATEWAY_BIND=f"127.0.0.1:{port}", GATEWAY_WORKERS=str(self.knobs.gateway_workers),
                   GATEWAY_FORWARDED_ALLOW_IPS="*", GATEWAY__PROXY__TRUSTED_HOPS="1",
                   GATEWAY__LOGGING__LOG_FILE=str(self.logs / f"gateway-{index + 1}.log"),
                   PROMETHEUS_MULTIPROC_DIR=str(self.dir / f"prometheus-{index + 1}"))
        name = "gateway" if index == 0 else f"gateway-{index + 1}"
        self.procs[name] = Process(name, compose_argv("gateway"), env, self.logs)
        self.gateway_urls.append(f"http://127.0.0.1:{port}")

    def _start_nginx(self) -> None:
        port = free_port()
        home = self.dir / "nginx"
        (home / "temp").mkdir(parents=True)
        user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None  # else nginx ignores it, warning
        paths = Paths(pid=str(home / "nginx.pid"), error_log=str(self.logs / "nginx-error.log"),
                      access_log=str(self.logs / "nginx-access.log"), temp=str(home / "temp"), user=user)
        conf = home / "nginx.conf"
        upstream = ",".join(url.removeprefix("http://") for url in self.gateway_urls)
        conf.write_text(render(self.settings, f"127.0.0.1:{port}", upstream, paths))
        proc = start_nginx(conf, self.logs)
        self.procs["nginx"] = proc
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: proc.alive() and requests.get(self.url + "/health", timeout=2).status_code == 200,
                   30, "nginx in front of the gateways")

    # --- stop ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            super().close()
        finally:
            group = getattr(self, "group", None)
            if group is not None:
                group.stop()


def await_new_master(stack: SentinelStack, old_port: int, timeout: float) -> int:
    """Poll the sentinels until one reports a master other than `old_port`; its port."""
    def moved() -> int | None:
        port = stack.master_port()
        return port if port != old_port else None
    return cast(int, wait_until(moved, timeout, "a sentinel reporting a new master", interval=0.1))


def others(stack: SentinelStack, old: int, new: int) -> list[int]:
    """The data servers that were neither the killed master nor the promoted one: replicas the sentinels
    must re-point at the new master (`sentinel parallel-syncs` at a time)."""
    return [port for port in stack.group.servers.values() if port not in (old, new)]


def await_rejoined(stack: SentinelStack, port: int, master: int, timeout: float) -> None:
    wait_until(lambda: stack.group.is_replica_of(port, master), timeout,
               f"redis-server {port} replicating the new master {master}", interval=0.2)


def unfollowed(stack: SentinelStack, load: Load, since: float, timeout: float) -> list[str]:
    """Who has not followed the failover, each said in a sentence: every gateway instance must
    acknowledge a submit sent to it directly (behind nginx, one stuck instance would hide among the
    others' 202s), and every worker node must have started a probe after `since` (wall time, the
    ledger's clock; celery#6348: a worker whose broker connection dropped never reconnected)."""
    deadline = time.monotonic() + timeout
    problems = [f"gateway {url} acknowledged no submit within {timeout:.0f} s" for url in stack.gateway_urls
                if load.submit_to(url, deadline).uuid is None]
    nodes = {stack.worker_key(index): stack.procs[stack.worker_key(index)] for index in range(stack.knobs.worker_nodes)}

    def idle() -> list[str]:
        started = {int(pid) for event, _task, pid, stamp in _ledger_lines(stack) if event == "start" and float(stamp) > since}
        return [name for name, proc in nodes.items() if not started & set(tree(proc.proc.pid))]
    try:
        wait_until(lambda: not idle(), max(1.0, deadline - time.monotonic()), "every worker node running probes")
    except TimeoutError:
        problems += [f"worker node {name} started no probe after the kill" for name in idle()]
    return problems


def _ledger_lines(stack: Stack) -> list[list[str]]:
    try:
        return [line.split() for line in stack.ledger.read_text().splitlines()]
    except FileNotFoundError:
        return []
