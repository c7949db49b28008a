from __future__ import annotations


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
