"""Auth cases that need an app of their own: system-only routes (Vault faults: test_vault_faults.py)."""
from __future__ import annotations

import pytest

from gateway import create_app
from gateway.access import decorators as auth
from tests.support.api import b64, basic_header

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
