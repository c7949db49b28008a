"""Auth cases that need an app of their own: system-only routes, and Vault unreachable or stalled."""
from __future__ import annotations

import time

import pytest

from gateway import auth, create_app
from settings import load_settings
from tests.support.api import b64, basic_header
from tests.support.services import free_port

SUBMISSION = {"type": "calc_hash", "upload": {"content": b64(b"x")}}


@pytest.fixture
def app_with_system_route(settings):
    app = create_app(settings)

    @app.post("/internal/ping")
    @auth.login_required(system=True)
    def internal_ping():
        return {"client_id": auth.current_identity().client_id}

    return app.test_client()


def test_system_route_admits_the_system_identity(app_with_system_route, vault):
    response = app_with_system_route.post("/internal/ping", headers=basic_header(*vault.basic("system")))
    assert response.status_code == 200 and response.get_json() == {"client_id": "gateway-system"}


@pytest.mark.parametrize("user", ["admin", "service", "copytrust"])
def test_system_route_refuses_every_client_role(app_with_system_route, vault, user):
    response = app_with_system_route.post("/internal/ping", headers=basic_header(*vault.basic(user)))
    assert response.status_code == 403 and response.get_json() == {"code": 403, "message": "Forbidden"}


@pytest.mark.parametrize("kind", ["refused", "stalled"])
def test_vault_unreachable_is_a_503_within_the_hvac_timeout(config_files, vault, stalled_port, kind):
    port = stalled_port if kind == "stalled" else free_port()
    settings = load_settings(*config_files, environ={"GATEWAY__VAULT__URL": f"http://127.0.0.1:{port}"})
    client = create_app(settings).test_client()
    started = time.monotonic()
    response = client.post("/submit", json=SUBMISSION, headers=basic_header(*vault.basic("service")))
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.get_json() == {"code": 503, "message": "Authentication service unavailable"}
    assert elapsed < settings.config["vault"]["timeout"] + 1.0
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json() == {"message": "Unavailable: vault", "code": 0}
