from __future__ import annotations

import time

from gateway import create_app
from settings import load_settings


def test_health_is_all_right_when_everything_answers(api):
    for method in ("GET", "POST"):
        response = api.request(method, "/health")
        assert response.status_code == 200
        assert response.json() == {"message": "All right", "code": 1}


def test_every_response_carries_a_request_id(api):
    response = api.request("GET", "/health", headers={"X-Request-ID": "trace-42"})
    assert response.headers["X-Request-ID"] == "trace-42"
    generated = api.request("GET", "/health", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces" and len(generated.headers["X-Request-ID"]) == 32


def test_ping_answers_without_touching_anything(api):
    response = api.request("GET", "/ping")
    assert response.status_code == 200 and response.json() == {"message": "pong", "code": 1}


def test_health_names_the_vault_token_when_vault_no_longer_knows_it(config_files):
    """A Vault restarted with a new setup answers, but every login needing the gateway's token fails:
    /health must not say "All right" then."""
    settings = load_settings(*config_files, environ={"GATEWAY__VAULT__TOKEN": "s.not-a-token-vault-knows"})
    response = create_app(settings).test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json() == {"message": "Unavailable: vault token", "code": 0}


def test_health_checks_in_parallel_within_its_budget_and_names_every_stalled_part(config_files, stalled_port):
    stalled = f"127.0.0.1:{stalled_port}"
    settings = load_settings(*config_files, environ={"GATEWAY__QUEUE__URL": f"redis://{stalled}/0",
                                                     "GATEWAY__QUEUE__RESULT_URL": f"redis://{stalled}/1",
                                                     "GATEWAY__VAULT__URL": f"http://{stalled}"})
    client = create_app(settings).test_client()
    started = time.monotonic()
    response = client.get("/health")
    elapsed = time.monotonic() - started
    assert response.get_json() == {"message": "Unavailable: broker, result backend, vault", "code": 0}
    assert elapsed < 1.0, f"/health took {elapsed:.2f}s"  # the checks ran side by side, not one after another
