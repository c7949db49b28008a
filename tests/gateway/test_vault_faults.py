"""Vault faults by real means, against a gateway of their own under gunicorn: OpenBao killed, stopped
(SIGSTOP) and sealed. Each is a 503 within the Vault timeout, never a 401 or 500, and the gateway
recovers without a restart when Vault does."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devsupport.processes import free_port, start_gunicorn, wait_until
from tests.support.api import b64
from tests.support.vault import SeededVault, start_seeded_vault

SUBMISSION = {"type": "calc_hash", "upload": {"content": b64(b"vault faults")}}
UNAVAILABLE = {"code": 503, "message": "Authentication service unavailable"}


@pytest.fixture(scope="module")
def own_vault(run_dir: Path) -> SeededVault:
    seeded = start_seeded_vault(run_dir, "vault-faults")
    yield seeded
    seeded.server.stop()


@pytest.fixture(scope="module")
def own_gateway(own_vault: SeededVault, config_files, service_env, run_dir: Path) -> str:
    config = json.loads(config_files[0].read_text())
    config["vault"]["url"] = own_vault.url
    secrets = json.loads(config_files[1].read_text())
    secrets["vault"]["token"] = own_vault.gateway_token
    folder = run_dir / "vault-faults-gateway"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / ".secrets.json").write_text(json.dumps(secrets))
    env = dict(service_env, GATEWAY_CONFIG=str(folder / "config.json"), GATEWAY_SECRETS=str(folder / ".secrets.json"),
               PROMETHEUS_MULTIPROC_DIR=str(folder / "metrics"))
    port = free_port()
    proc = start_gunicorn(port, env, folder)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200, 30,
               "vault-faults gateway ready")
    yield url
    proc.stop()


def submit(url: str, vault: SeededVault) -> tuple[int, dict, float]:
    """A fresh credential each time, so no login cache can answer for Vault."""
    started = time.monotonic()
    response = requests.post(url + "/submit", json=SUBMISSION, timeout=10,
                             headers={"Authorization": "Bearer " + vault.jwt()})
    return response.status_code, response.json(), time.monotonic() - started


FAULTS: dict[str, tuple[Callable[[SeededVault], None], Callable[[SeededVault], None]]] = {
    "killed": (lambda v: v.server.kill(), lambda v: v.server.restart()),
    "stopped": (lambda v: v.server.pause(), lambda v: v.server.resume()),
    "sealed": (lambda v: v.server.seal(), lambda v: v.server.unseal()),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_vault_fault_is_a_503_within_the_timeout_and_recovers_without_restart(own_gateway, own_vault, settings, fault):
    inject, heal = FAULTS[fault]
    # The JWT rules are read and cached before the fault; every process's Vault breaker has closed
    # again after the previous fault (it stays open up to a second after Vault recovers).
    wait_until(lambda: submit(own_gateway, own_vault)[0] == 202, 10, "gateway answering before the fault")
    inject(own_vault)
    try:
        outcomes = [submit(own_gateway, own_vault) for _ in range(3)]
        health = requests.get(own_gateway + "/health", timeout=10)
    finally:
        heal(own_vault)
    assert [(status, body) for status, body, _ in outcomes] == [(503, UNAVAILABLE)] * 3
    assert max(elapsed for _, _, elapsed in outcomes) < settings.config["vault"]["timeout"] + 0.5
    assert health.status_code == 503 and health.json() == {"message": "Unavailable: vault", "code": 0}
    wait_until(lambda: submit(own_gateway, own_vault)[0] == 202, 20, f"gateway recovered after Vault {fault}")
    assert requests.get(own_gateway + "/health", timeout=5).status_code == 200


def test_one_new_credential_behind_a_stalled_vault_is_a_503_for_every_waiter_within_the_timeout(own_gateway, own_vault,
                                                                                                  settings):
    """Single flight shares the leader's failure: eight concurrent requests with one new credential do
    not queue behind each other's Vault timeouts (they did: 1.5 s ... 10.5 s)."""
    wait_until(lambda: submit(own_gateway, own_vault)[0] == 202, 10, "gateway answering before the fault")
    token = own_vault.jwt()

    def one(_: int) -> tuple[int, float]:
        started = time.monotonic()
        response = requests.post(own_gateway + "/submit", json=SUBMISSION, timeout=15,
                                 headers={"Authorization": "Bearer " + token})
        return response.status_code, time.monotonic() - started

    own_vault.server.pause()
    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, range(8)))
    finally:
        own_vault.server.resume()
    assert [status for status, _ in outcomes] == [503] * 8
    assert max(elapsed for _, elapsed in outcomes) < settings.config["vault"]["timeout"] + 0.5
    wait_until(lambda: submit(own_gateway, own_vault)[0] == 202, 20, "gateway recovered after the stall")
