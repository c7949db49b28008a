"""scripts/run-local.sh started as a test starts it: every port free and its own, its run folder and the
gateway's log in a temporary directory, nothing of the caller's GATEWAY_*/REDIS_URL, the example
configuration. Shared by tests/test_local_stack.py and tests/test_docs_commands.py."""
from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devsupport.processes import ROOT, free_port, wait_until

RUN_LOCAL = ROOT / "scripts" / "run-local.sh"
DEFAULT_PORTS = {"GATEWAY_PORT": 8000, "VAULT_PORT": 8200, "FLOWER_PORT": 5555, "REDIS_PORT": 16379}
READY = "Press Ctrl-C to stop."


def stack_env(tmp_path: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """run-local's environment: every port free and its own, files in tmp_path, nothing of the caller's
    GATEWAY_*/REDIS_URL, the example configuration (a developer's config.json stays out of it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY", "CELERY_", "VAULT_", "BAO_"))
           and k not in ("REDIS_URL", "PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")}
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"vault": {"token": "replaced-by-run-local"}}')
    env.update({name: str(port) for name, port in ports.items()}, RUN_DIR=str(tmp_path / "run"),
               GATEWAY_CONFIG=str(ROOT / "config.example.json"), GATEWAY_SECRETS=str(secrets),
               GATEWAY__LOGGING__LOG_FILE=str(tmp_path / "gateway.log"), **extra)
    return env


def free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(DEFAULT_PORTS):
        ports = {name: free_port() for name in DEFAULT_PORTS}
    return ports


@dataclass
class LocalStack:
    proc: subprocess.Popen
    ports: dict[str, int]
    env: dict[str, str]
    run_dir: Path
    out: Path  # what run-local printed (stdout and stderr)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False


@contextmanager
def local_stack(tmp_path: Path, timeout: float = 90, **extra: str) -> Iterator[LocalStack]:
    """run-local.sh up (its hints printed), in its own process group; killed with the group afterwards if
    the caller did not stop it (Ctrl-C)."""
    ports = free_ports()
    env = stack_env(tmp_path, ports, **extra)
    out = tmp_path / "run-local.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([str(RUN_LOCAL)], env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path,
                                start_new_session=True)
    stack = LocalStack(proc, ports, env, tmp_path / "run", out)
    try:
        wait_until(lambda: proc.poll() is None and READY in out.read_text(), timeout, "run-local's stack up")
        yield stack
    finally:
        if proc.poll() is None or stack.group_alive():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
