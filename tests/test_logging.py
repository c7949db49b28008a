"""One line per request and per task, with ids; never a payload or a credential (SPEC §6)."""
from __future__ import annotations

import base64

from tests.support.services import wait_until


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
    request_lines = [l for l in gateway_lines if "gateway.requestlog" in l]
    audit_lines = [l for l in gateway_lines if "gateway.auth" in l]
    assert len(request_lines) == 1 and "POST /submit 202" in request_lines[0]
    assert len(audit_lines) == 1 and "auth allowed" in audit_lines[0] and "client_id=client-admin" in audit_lines[0]
    task_lines = [l for l in worker.output().splitlines() if task_id in l and "task jobs.calc_hash done" in l]
    assert len(task_lines) == 1 and "client_id=" in task_lines[0]
    everything = gateway_log.read_text() + worker.output()
    for secret in (encoded, marker.decode(), redis_password, vault.passwords["admin"], vault.gateway_token):
        assert secret not in everything
