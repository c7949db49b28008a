"""One line per request and per task, with ids; never a payload or a credential (SPEC §6)."""
from __future__ import annotations

import base64
import re

from devsupport.processes import wait_until


def test_logs_carry_ids_but_no_payload_or_credentials(api, gateway_log, worker, redis_password, vault):
    marker = b"PAYLOAD-MARKER-" + b"z" * 33
    encoded = base64.b64encode(marker).decode()
    response = api.submit("calc_hash", {"content": encoded}, ExternalId="log-check")
    task_id = response.json()["uuid"]
    request_id = response.headers["X-Request-ID"]
    api.wait_status(task_id, "done")
    wait_until(lambda: task_id in worker.output(), 10, "worker logged the task")
    gateway_lines = wait_until(lambda: [l for l in gateway_log.read_text().splitlines() if request_id in l],
                               10, "gateway logged the request")
    assert len(gateway_lines) == 1, gateway_lines  # one line per request, carrying the auth decision
    assert "POST /submit 202" in gateway_lines[0]
    assert re.search(r"auth=allowed reason=(cached|vault_login) role=admin", gateway_lines[0])
    assert "client_id=client-admin" in gateway_lines[0]
    task_lines = [l for l in worker.output().splitlines() if task_id in l and "task jobs.calc_hash done" in l]
    assert len(task_lines) == 1 and "client_id=" in task_lines[0]
    everything = gateway_log.read_text() + worker.output()
    for secret in (encoded, marker.decode(), redis_password, vault.passwords["admin"], vault.gateway_token):
        assert secret not in everything
