"""A Redis Sentinel group of our own on loopback: a master, one replica (or more) and three sentinels (quorum 2),
shared by tests/test_sentinel.py and the fault suite's failover scenarios (faults/cluster.py).

Every server is a real `redis-server` (the sentinels `redis-server FILE --sentinel`, the same Debian
package). The master's password is also every server's `masterauth`, since any of them may become a
replica; the sentinels have a password of their own. Timings are short (a master is down after
`down_after_ms`) so that a failover takes seconds, not the half minute of Redis's defaults.
"""
from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from devsupport.processes import Process, free_port, wait_until

MASTER = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 2000


@dataclass
class Group:
    """A master, its replica(s) and three sentinels, all on loopback. `servers` maps a data server's
    name (`master`, `replica`, `replica-2`, ...: what each was at the start) to its port."""

    run_dir: Path
    password: str
    sentinel_password: str
    servers: dict[str, int]
    sentinel_ports: list[int]
    persistence: str = "none"
    master_name: str = MASTER
    processes: dict[str, Process] = field(default_factory=dict)

    def url(self, dead_first: bool = True) -> str:
        """Every sentinel as a sentinel:// address; with `dead_first`, a dead one first (celery#5538)."""
        ports = [free_port(), *self.sentinel_ports] if dead_first else self.sentinel_ports
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in ports)

    def sentinel(self, index: int = 0) -> Redis:
        return Redis(port=self.sentinel_ports[index], password=self.sentinel_password, socket_timeout=1,
                     decode_responses=True)

    def master_address(self, index: int = 0) -> int:
        """The master's port as sentinel `index` reports it now."""
        _host, port = self.sentinel(index).sentinel_get_master_addr_by_name(self.master_name)
        return int(port)

    def server(self, port: int) -> Redis:
        return Redis(port=port, password=self.password, socket_timeout=1, decode_responses=True)

    def name_of(self, port: int) -> str:
        return next(name for name, known in self.servers.items() if known == port)

    def start_server(self, name: str, *extra: str) -> Process:
        """redis-server `name` on its port and folder; with AOF persistence, started again it reloads
        its own files (named after its port)."""
        port = self.servers[name]
        aof = ["--appendonly", "no"] if self.persistence == "none" else [
            "--appendonly", "yes", "--appendfsync", self.persistence, "--appendfilename", f"appendonly-{port}.aof",
            "--appenddirname", f"aof-{port}"]
        argv = [_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof,
                "--requirepass", self.password, "--masterauth", self.password, "--dir", str(self.run_dir), *extra]
        old = self.processes.get(name)
        if old is not None:
            old.stop(signal.SIGKILL, timeout=5)
        self.processes[name] = Process(f"{name}-{port}", argv, dict(os.environ), self.run_dir)
        return self.processes[name]

    def kill(self, name: str) -> None:
        self.processes[name].stop(signal.SIGKILL, timeout=5)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop(signal.SIGKILL, timeout=5)

    def _start_sentinel(self, port: int) -> None:
        conf = self.run_dir / f"sentinel-{port}.conf"  # a sentinel rewrites its own file: one each
        conf.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {self.run_dir}",
            f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}",
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.servers['master']} 2",
            f'sentinel auth-pass {self.master_name} "{self.password}"',
            f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}",
            # A failover attempt that finds no good replica (its last INFO too old: sentinels ask replicas
            # every 10 s until the master is down) is tried again after twice this.
            f"sentinel failover-timeout {self.master_name} {FAILOVER_TIMEOUT_MS}", ""]))
        self.processes[f"sentinel-{port}"] = Process(f"sentinel-{port}", [_server(), str(conf), "--sentinel"],
                                                     dict(os.environ), self.run_dir)

    def knows_all(self) -> bool:
        """Each sentinel knows the other two and every replica (it learns replicas from the master's INFO,
        every 10 s): one that does not gives up a failover for want of a replica (then waits twice
        failover-timeout), or leaves a replica it does not know pointing at the dead master; a master
        killed sooner gave 20 s failovers."""
        for index in range(len(self.sentinel_ports)):
            master = self.sentinel(index).sentinel_master(self.master_name)
            if (int(master["num-other-sentinels"]) != len(self.sentinel_ports) - 1
                    or int(master["num-slaves"]) < len(self.servers) - 1):
                return False
        return True

    def is_replica_of(self, port: int, master_port: int) -> bool:
        """The server on `port` replicates the one on `master_port`, its link up."""
        info = self.server(port).info("replication")
        return (info["role"] == "slave" and int(info["master_port"]) == master_port
                and info["master_link_status"] == "up")


def _server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return found


def replica_names(replicas: int) -> list[str]:
    """The replicas' names: `replica`, then `replica-2`, `replica-3`, ..."""
    return ["replica" if index == 1 else f"replica-{index}" for index in range(1, replicas + 1)]


def start_group(run_dir: Path, password: str, sentinel_password: str, persistence: str = "none",
                replicas: int = 1) -> Group:
    """Start the group and return once every replica is in sync and every sentinel knows the whole group.
    `persistence`: as devsupport.processes.start_redis ("none", or the AOF's `appendfsync`)."""
    if replicas < 1:
        raise ValueError("a Sentinel group needs at least one replica")
    run_dir.mkdir(parents=True, exist_ok=True)
    names = replica_names(replicas)
    group = Group(run_dir, password, sentinel_password, {name: free_port() for name in ["master", *names]},
                  [free_port() for _ in range(3)], persistence)
    try:
        group.start_server("master")
        for name in names:
            group.start_server(name, "--replicaof", "127.0.0.1", str(group.servers["master"]))
        for port in group.sentinel_ports:
            group._start_sentinel(port)
        wait_until(lambda: all(group.is_replica_of(group.servers[name], group.servers["master"]) for name in names),
                   20, "replicas in sync")
        wait_until(group.knows_all, 30, "sentinels know each other and every replica")
    except BaseException:
        group.stop()
        raise
    return group
