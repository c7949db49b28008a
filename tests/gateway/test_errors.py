"""Every error is the JSON envelope of SPEC §2, with the right status, leaking nothing."""
from __future__ import annotations

import uuid

import pytest

from gateway import create_app
from jobs import stats
from settings import load_settings
from tests.support.api import b64, basic_header


def assert_envelope(response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"code", "message", "errors"}
    return body


def test_unknown_route_is_a_json_404(api):
    assert_envelope(api.request("GET", "/no/such/route"), 404)


def test_wrong_method_is_a_json_405_with_allow(api):
    response = api.request("PUT", "/submit")
    assert_envelope(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {}], ids=["text-plain", "no-content-type"])
def test_non_json_body_is_a_json_415_naming_what_to_send(api, headers):
    body = assert_envelope(api.request("POST", "/submit", data="type=calc_hash", headers=headers), 415)
    assert body["message"] == "Content-Type must be application/json"


def test_malformed_json_is_a_400(api):
    body = assert_envelope(api.request("POST", "/submit", data="{not json", headers={"Content-Type": "application/json"}), 400)
    assert "JSON" in body["message"]


def test_validation_lists_every_bad_field_at_once(api):
    response = api.request("POST", "/submit", json={
        "ExternalId": 7, "type": "resize_image", "upload": {"content": "***", "width": 0, "format": "gif", "extra": 1}})
    errors = assert_envelope(response, 400)["errors"]
    assert set(errors) == {"ExternalId", "upload.content", "upload.width", "upload.format", "upload.extra"}
    assert all(isinstance(reasons, list) and reasons for reasons in errors.values())


def test_missing_fields_are_each_reported(api):
    errors = assert_envelope(api.request("POST", "/submit", json={}), 400)["errors"]
    assert set(errors) == {"type", "upload"}


def test_unknown_job_type_is_a_400_naming_the_known_ones(api):
    errors = assert_envelope(api.submit("make_coffee", {}), 400)["errors"]
    assert "calc_hash" in errors["type"][0]


def test_payload_schema_requires_a_box_for_resize(api):
    errors = assert_envelope(api.submit("resize_image", {"content": b64(b"x")}), 400)["errors"]
    assert list(errors) == ["upload"]


def test_oversized_content_is_refused_with_413_before_queueing(api, settings, redis_client):
    """Nothing is recorded or queued: the save script, which records and queues together, never ran (its
    submission count is unchanged). The queue's length is no witness: the worker may take an earlier
    test's job from it meanwhile."""
    limit = settings.config["jobs"]["calc_hash"]["max_content_bytes"]
    field = stats.field(stats.SUBMITTED, "calc_hash")
    before = redis_client.hget(stats.TOTAL_KEY, field)
    response = api.submit("calc_hash", {"content": b64(b"\0" * (limit + 3))})
    assert_envelope(response, 413)
    assert redis_client.hget(stats.TOTAL_KEY, field) == before


def test_validation_errors_do_not_echo_the_payload(api):
    secret = "U0VDUkVUU0VDUkVU" * 4
    response = api.submit("calc_hash", {"content": secret, "algorithms": ["crc32"]})
    assert_envelope(response, 400)
    assert secret not in response.text


def test_unknown_and_malformed_task_ids_get_byte_identical_404s(api):
    unknown = api.taskinfo(str(uuid.uuid4()))
    malformed = api.taskinfo("../../etc/passwd")
    assert_envelope(unknown, 404)
    assert unknown.content == malformed.content and malformed.status_code == 404


def test_missing_taskid_is_a_400(api):
    assert set(assert_envelope(api.request("GET", "/taskinfo"), 400)["errors"]) == {"taskid"}


@pytest.fixture
def small_app(config_files):
    settings = load_settings(*config_files, environ={"GATEWAY__LIMITS__MAX_BODY_BYTES": "2048"})
    app = create_app(settings)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret-detail-that-must-not-leak")

    return app.test_client()


def test_flask_body_limit_is_a_json_413(small_app, vault):
    response = small_app.post("/submit", json={"type": "calc_hash", "upload": {"content": "A" * 4096}},
                              headers=basic_header(*vault.basic("admin")))
    assert response.status_code == 413
    assert response.get_json() == {"code": 413, "message": "Request Entity Too Large"}


def test_unhandled_exception_is_a_json_500_without_details(small_app):
    response = small_app.get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {"code": 500, "message": "Internal Server Error"}
    assert b"secret-detail" not in response.data and b"Traceback" not in response.data
