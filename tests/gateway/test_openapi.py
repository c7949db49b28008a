"""GET /openapi.json: a valid OpenAPI 3.1 document naming every route, agreeing with what the gateway
checks; Schemathesis' conformance checks pass against the real gateway (gunicorn, OpenBao, workers)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from devsupport.processes import BIN, ROOT, free_port, start_gunicorn, wait_until
from gateway import create_app
from gateway.submission.listing import encode_cursor
from tests.support.api import b64


@pytest.fixture(scope="module")
def document(settings) -> dict:
    return create_app(settings).test_client().get("/openapi.json").get_json()


def test_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert set(document["components"]["securitySchemes"]) == {"basicAuth", "bearerAuth"}


def test_every_flask_route_and_method_is_documented(settings, document):
    app = create_app(settings)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in document["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], f"{method} {path}"


def test_every_operation_is_in_one_declared_tag(document):
    """The docs page groups operations by tag (Swagger UI shows a section per tag, in the document's
    order); each operation is in exactly one, and every declared tag has operations and a description."""
    declared = [tag["name"] for tag in document["tags"]]
    assert declared == ["jobs", "tasks", "operations", "workers", "health", "docs"]
    assert all(tag["description"] for tag in document["tags"])
    tags = {f"{method.upper()} {path}": operation.get("tags") for path, operations in document["paths"].items()
            for method, operation in operations.items()}
    untagged = [name for name, found in tags.items() if not found or len(found) != 1 or found[0] not in declared]
    assert not untagged, untagged
    assert {found[0] for found in tags.values()} == set(declared)
    assert {name for name, found in tags.items() if found == ["operations"]} == {
        name for name in tags if " /ops/" in name}
    assert {name for name, found in tags.items() if found == ["workers"]} == {
        name for name in tags if " /internal/" in name}
    assert tags["POST /submit"] == ["jobs"] and tags["DELETE /tasks/{task_id}"] == ["tasks"]
    assert tags["GET /metrics"] == tags["GET /ping"] == ["health"] and tags["GET /"] == ["docs"]


def test_index_points_at_the_docs_the_document_and_health(api_as, document):
    """GET /, without a credential: what this is and where to start; every link answers."""
    anonymous = api_as(None)
    response = anonymous.request("GET", "/")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"name": "Job gateway", "version": document["info"]["version"],
                               "links": {"docs": "/docs", "openapi": "/openapi.json", "health": "/health"}}
    assert document["paths"]["/"]["get"]["security"] == []
    for link in response.json()["links"].values():
        assert anonymous.request("GET", link).status_code == 200, link


def test_submit_has_one_branch_per_job_type(settings, document):
    branches = document["components"]["schemas"]["SubmitRequest"]["oneOf"]
    assert {b["properties"]["type"]["const"] for b in branches} == set(settings.config["jobs"])


def query_schema(document: dict, path: str, name: str) -> dict:
    (parameter,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    return parameter["schema"]


def test_counts_hours_are_bounded_by_the_retention_in_document_and_check(api, settings, document):
    """Issue 11, class 12: `hours` was unbounded in the document; `hours=null` must not pass either."""
    most = settings.config["results"]["expires"] // 3600
    assert query_schema(document, "/ops/tasks/counts", "hours") | {"description": ""} == {
        "type": "integer", "minimum": 1, "maximum": most, "description": ""}
    assert api.request("GET", f"/ops/tasks/counts?hours={most}").status_code == 200
    for refused in (most + 1, 0, "null", "", "1.5"):
        response = api.request("GET", f"/ops/tasks/counts?hours={refused}")
        assert response.status_code == 400 and set(response.json()["errors"]) == {"hours"}, refused


@pytest.mark.parametrize("name", ["ExternalId", "client_id", "type"])
def test_empty_listing_filters_are_refused_as_documented(api, document, name):
    """Decision: an empty filter is a mistake, not "no filter": the document says minLength 1, the
    gateway answers 400 naming it."""
    assert query_schema(document, "/tasks", name)["minLength"] == 1
    response = api.request("GET", f"/tasks?{name}=")
    assert response.status_code == 400 and set(response.json()["errors"]) == {name}


@pytest.mark.parametrize("url", ["", "http://127.0.0.1:9/hook?x=1", "https://a.hooks.example/", "http://127.0.0.1./x",
                                 "HTTP://127.0.0.1/", "http://u:p@127.0.0.1/", "http://hooks.example/", "ftp://127.0.0.1/",
                                 "http://127.0.0.1:99999/", "http://evil.example/", "http://127.0.0.1 /", "//127.0.0.1/",
                                 "http://127.0.0.1:80@evil.example/", "http://a.hooks.example.evil/"])
def test_callback_url_is_accepted_exactly_when_the_document_says_so(api, document, url):
    """The document shows the allowed hosts as a pattern, and the gateway checks that same pattern
    first: an empty callback_url, once valid per the document but a 400, is now refused by both."""
    (branch,) = [b for b in document["components"]["schemas"]["SubmitRequest"]["oneOf"]
                 if b["properties"]["type"]["const"] == "calc_hash_parked"]
    documented = Draft202012Validator(branch["properties"]["callback_url"]).is_valid(url)
    response = api.submit("calc_hash_parked", {"content": b64(uuid.uuid4().bytes)}, callback_url=url)
    assert response.status_code == (202 if documented else 400), (url, response.text)
    if not documented:
        assert set(response.json()["errors"]) == {"callback_url"}


def test_revoke_with_a_body_that_is_not_json_is_a_415(api):
    """Issue 11, class 12: /ops/tasks/{id}/revoke accepted any body; its declared body is JSON."""
    path = f"/ops/tasks/{uuid.uuid4()}/revoke"
    response = api.request("POST", path, data="terminate=true", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and response.json()["code"] == 415
    assert api.request("POST", path, data="{oops", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.request("POST", path).status_code == 404  # no body at all: fine, and the task is unknown


# /ops/workers waits out ops.inspect_timeout on every call: fewer generated cases there keep the run short.
# POST /ops/drain is left out: it works, and then every later submit rightly answers 503 (a drained gateway
# does not come back); tests/gateway/test_drain.py checks it against gateways of its own.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-name = "GET /tasks"
parameters = {{ "query.cursor" = "{cursor}" }}

[[operations]]
include-name = "GET /ops/workers"
generation.max-examples = 3

[[operations]]
include-name = "POST /ops/drain"
enabled = false
"""


@pytest.fixture(scope="module")
def production_gateway(service_env, config_files, run_dir, worker) -> str:
    """A gateway with the shipped job catalogue and roles (config.example.json), not the test-only job
    types (Schemathesis' valid `hold` jobs would each hold a worker for a minute), and callbacks
    allowed only to *.hooks.example (reserved: nothing answers), so no generated callback reaches a
    real port on this machine. Same Redis, Vault and workers as the session."""
    example = json.loads((ROOT / "config.example.json").read_text())
    config = json.loads(config_files[0].read_text()) | {"jobs": example["jobs"], "roles": example["roles"]}
    config["webhooks"] = {**config["webhooks"], "allowed_hosts": ["*.hooks.example"]}
    path = run_dir / "config-production.json"
    path.write_text(json.dumps(config))
    port = free_port()
    proc = start_gunicorn(port, dict(service_env, GATEWAY_CONFIG=str(path)), run_dir, workers=1)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200,
               30, "production-catalogue gateway ready")
    yield url
    proc.stop()


def test_schemathesis_conformance_checks_all_pass(production_gateway, vault, run_dir):
    """Every Schemathesis check, not only "no 5xx": negative data rejected, schema-valid data accepted,
    documented statuses, content types, headers and bodies, 405 with Allow for unsupported methods, auth
    not ignored, ... over the examples, coverage, fuzzing and stateful phases, against the gateway under
    gunicorn. One Schemathesis worker: with two, its coverage phase parses Python source in two threads
    at once, which trips CPython 3.11's AST recursion counter ("AST constructor recursion depth
    mismatch"). tests/support/schemathesis_hooks.py keeps integers written as integers (see there)."""
    user, password = vault.basic("admin")
    config = run_dir / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(cursor=encode_cursor((1.0e9, str(uuid.uuid4())))))
    argv = [str(BIN / "schemathesis"), "--config-file", str(config), "run", f"{production_gateway}/openapi.json",
            "--auth", f"{user}:{password}", "--checks", "all",
            "--max-examples", "40", "--seed", "20261123", "--workers", "1", "--request-timeout", "10",
            "--phases", "examples,coverage,fuzzing,stateful", "--suppress-health-check", "all", "--no-shrink"]
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.support.schemathesis_hooks")
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    (run_dir / "schemathesis.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Runtime Error" not in result.stdout and " 0 generated" not in result.stdout
