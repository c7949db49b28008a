"""GET /openapi.json: a valid OpenAPI 3.1 document naming every route; Schemathesis finds no 500 and no
response contradicting it, run against the real gateway (gunicorn, OpenBao, workers)."""
from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from openapi_spec_validator import validate

from devsupport.processes import BIN, ROOT
from gateway import create_app
from gateway.listing import encode_cursor


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


def test_submit_has_one_branch_per_job_type(settings, document):
    branches = document["components"]["schemas"]["SubmitRequest"]["oneOf"]
    assert {b["properties"]["type"]["const"] for b in branches} == set(settings.config["jobs"])


def test_docs_page_points_at_the_document(api):
    response = api.request("GET", "/docs")
    assert response.status_code == 200 and "/openapi.json" in response.text
    assert response.headers["Content-Type"].startswith("text/html")


# A cursor is opaque (the urlsafe text of a position in the client's index): valid only if this API could
# have handed it out, which no JSON Schema can say. Schemathesis is given one, as it would be given ids.
# /ops/workers waits out ops.inspect_timeout on every call: fewer generated cases there keep the run short.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-name = "GET /tasks"
parameters = {{ "query.cursor" = "{cursor}" }}

[[operations]]
include-name = "GET /ops/workers"
generation.max-examples = 3
"""


def test_schemathesis_conformance_checks_all_pass(api, vault, run_dir):
    """Every Schemathesis check, not only "no 5xx": negative data rejected, schema-valid data accepted,
    documented statuses, content types, headers and bodies, 405 with Allow for unsupported methods, auth
    not ignored, ... over the examples, coverage, fuzzing and stateful phases, against the gateway under
    gunicorn. One Schemathesis worker: with two, its coverage phase parses Python source in two threads
    at once, which trips CPython 3.11's AST recursion counter ("AST constructor recursion depth
    mismatch"). tests/support/schemathesis_hooks.py keeps integers written as integers (see there)."""
    user, password = vault.basic("admin")
    config = run_dir / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(cursor=encode_cursor((1.0e9, str(uuid.uuid4())))))
    argv = [str(BIN / "schemathesis"), "--config-file", str(config), "run", f"{api.base_url}/openapi.json",
            "--auth", f"{user}:{password}", "--checks", "all",
            "--max-examples", "40", "--seed", "20261123", "--workers", "1", "--request-timeout", "10",
            "--phases", "examples,coverage,fuzzing,stateful", "--suppress-health-check", "all", "--no-shrink"]
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.support.schemathesis_hooks")
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    (run_dir / "schemathesis.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Runtime Error" not in result.stdout and " 0 generated" not in result.stdout
