"""GET /openapi.json: a valid OpenAPI 3.1 document naming every route; Schemathesis finds no 500 and no
response contradicting it, run against the real gateway (gunicorn, OpenBao, workers)."""
from __future__ import annotations

import re
import subprocess

import pytest
from openapi_spec_validator import validate

from devsupport.processes import BIN, ROOT
from gateway import create_app


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


def test_schemathesis_finds_no_server_error_and_no_contradiction(api, vault, run_dir):
    user, password = vault.basic("admin")
    argv = [str(BIN / "schemathesis"), "run", f"{api.base_url}/openapi.json", "--auth", f"{user}:{password}",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_schema_conformance,response_headers_conformance",
            "--max-examples", "25", "--seed", "20261123", "--workers", "2", "--request-timeout", "10",
            "--phases", "examples,fuzzing", "--exclude-path", "/ops/workers",
            "--suppress-health-check", "all", "--no-shrink"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    (run_dir / "schemathesis.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-6000:]
