"""One line per request and per task, with ids; never a payload or a credential (SPEC §6); no request can
write, or colour, a line of its own (SPEC §8)."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from flask import Flask, request
from loguru import logger

from devsupport.processes import wait_until
from gateway import create_app
from gateway.access import decorators as auth
from settings import load_settings
from settings.logs import setup_logging


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


FORGED = "GET /forged 200 0.1ms from 10.0.0.1"
ANSI = "\x1b[31m"


def lines_of(log, request_id: str) -> list[str]:
    return wait_until(lambda: [line for line in log.read_text().splitlines() if request_id in line], 10,
                      f"log line of {request_id}")


def assert_not_forged(log) -> None:
    text = log.read_text()
    assert "\x1b" not in text and "\r" not in text
    assert not any(line.startswith(("GET /forged", "x")) for line in text.splitlines())


def test_a_newline_and_ansi_in_the_path_stay_inside_the_line(gateway_url, worker, gateway_log):
    """Issue 11, class 7: `%0A` in the path once wrote a second, forged request line."""
    response = requests.get(gateway_url + "/ping%0A" + quote(FORGED) + "%1B[31m%0D", timeout=5)
    (line,) = lines_of(gateway_log, response.headers["X-Request-ID"])
    assert f"/ping\\n{FORGED}\\x1b[31m\\r 404" in line
    assert_not_forged(gateway_log)


def test_a_newline_in_a_jwt_client_id_claim_stays_inside_the_line(gateway_url, worker, gateway_log, vault):
    """The claim reaches the log through Vault's login metadata (claim_mappings client_id -> client_id)."""
    client_id = f"x\n{FORGED}{ANSI}"
    token = vault.jwt(client_id=client_id, client_role="service")
    response = requests.get(gateway_url + "/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    (line,) = lines_of(gateway_log, response.headers["X-Request-ID"])
    assert "client_id=x\\nGET /forged 200 0.1ms from 10.0.0.1\\x1b[31m" in line
    assert_not_forged(gateway_log)


@pytest.fixture
def app_logging_to(config_files, tmp_path):
    """An in-process gateway writing its log to a file of its own, text or JSON, with a route that
    logs request text from inside an authenticated view, as any future log call might."""
    def make(json_logs: bool) -> tuple[Flask, Path]:
        log = tmp_path / ("json.log" if json_logs else "text.log")
        settings = load_settings(*config_files, environ={"GATEWAY__LOGGING__LOG_FILE": str(log),
                                                         "GATEWAY__LOGGING__JSON": str(json_logs).lower()})
        app = create_app(settings)

        @app.get("/echo")
        @auth.login_required()
        def echo() -> dict:
            logger.warning("echo {}", request.args.get("q"))
            return {}
        return app, log
    yield make
    setup_logging(load_settings(*config_files, environ={}), process="tests")  # back to the session's log


def test_every_log_call_is_escaped_in_text_logs(app_logging_to, vault):
    """Not only the request line: a value logged inside a view, and the client id bound to every line of
    the request (raw from the claim), are escaped by the text sink itself."""
    app, log = app_logging_to(json_logs=False)
    token = vault.jwt(client_id=f"x\n{FORGED}", client_role="service")
    response = app.test_client().get("/echo", query_string={"q": f"a\n{FORGED}{ANSI}\u2028"},
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    (line,) = [line for line in log.read_text().splitlines() if "echo" in line and "gateway.http.requestlog" not in line]
    assert f"echo a\\n{FORGED}\\x1b[31m\\u2028" in line and f"client_id=x\\n{FORGED}" in line
    assert_not_forged(log)


def test_json_logs_stay_json(app_logging_to, vault):
    app, log = app_logging_to(json_logs=True)
    token = vault.jwt(client_id=f"x\n{FORGED}", client_role="service")
    client = app.test_client()
    client.get("/echo", query_string={"q": f"a\n{FORGED}{ANSI}"}, headers={"Authorization": f"Bearer {token}"})
    client.get("/ping%0A" + quote(FORGED) + "%1B[31m")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert f"echo a\n{FORGED}{ANSI}" in [r["message"] for r in records]  # the value, whole, inside JSON
    assert any(r["message"].startswith(f"GET /ping\n{FORGED}{ANSI} 404") for r in records)
    assert any(r.get("client_id") == f"x\n{FORGED}" for r in records)
