"""docs/api.md holds the API contract, and it is the contract the gateway serves: its routes table names
every route and method of the OpenAPI document (GET /openapi.json, generated from the route declarations)
and nothing else, each with every status the route declares and the fields of its bodies; the submit
body, the TaskInfo fields, the four statuses (jobs/status.py STATUSES) and the task error codes
(jobs/status.py ErrorCode) are the code's; the HTTP status table covers every error status a route
declares. No servers: the document is built by the app factory in a subprocess (create_app configures the
process's logging, which the rest of the session must keep), from config.example.json."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.status import STATUSES, ErrorCode

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
SPEC = ROOT / "docs" / "spec.md"
SECTION = "## Routes, bodies and statuses"
ROUTES_HEADER = ("route", "auth", "answers", "errors")
ANY_ROUTE = {404, 405, 500}  # unknown route, wrong method, a bug: no route declares them, any may answer them
OPERATION = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")
STATUS = re.compile(r"(?<![\d.])[1-5]\d\d(?![\d.])")
CODE_SPAN = re.compile(r"`([^`]+)`")

BUILD = ("import json, sys\n"
         "from gateway import create_app\n"
         "sys.stdout.write(json.dumps(create_app().test_client().get('/openapi.json').get_json()))\n")


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY", "CELERY_"))
           and k not in ("PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(PYTHONPATH=str(ROOT), GATEWAY_CONFIG=str(ROOT / "config.example.json"),
               GATEWAY_SECRETS=str(ROOT / ".secrets.example.json"),
               GATEWAY__LOGGING__LOG_FILE=str(tmp_path_factory.mktemp("openapi") / "gateway.log"))
    done = subprocess.run([sys.executable, "-c", BUILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- reading the docs


def section(text: str, heading: str) -> str:
    """From `heading` to the next section of the same level."""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end == -1 else text[start:end]


def tables(text: str) -> Iterator[list[list[str]]]:
    """Every markdown table in `text`: its header row and body rows as cells, the separator row left out."""
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                rows.append(cells)
        elif rows:
            yield rows
            rows = []


def table(text: str, *header: str) -> list[dict[str, str]]:
    found = [rows for rows in tables(text) if tuple(rows[0]) == header]
    assert len(found) == 1, f"expected one table headed {' | '.join(header)}, found {len(found)}"
    return [dict(zip(header, row, strict=True)) for row in found[0][1:]]


def paragraph(text: str, start: str) -> str:
    """The paragraph that begins with `start`."""
    at = text.index(start)
    end = text.find("\n\n", at)
    return text[at:] if end == -1 else text[at:end]


def routes_section() -> str:
    return section(API.read_text(), SECTION)


def route_rows() -> list[dict[str, str]]:
    return table(routes_section(), *ROUTES_HEADER)


def normal(path: str) -> str:
    """`/tasks/<uuid>?x=` and `/tasks/{task_id}` alike: no query string, every path parameter `{}`."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path.split("?", 1)[0])


def row_operations(row: dict[str, str]) -> list[tuple[str, str]]:
    return [(method, normal(path)) for method, path in OPERATION.findall(row["route"])]


def named(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- reading the document


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), normal(path)): operation
            for path, methods in document["paths"].items() for method, operation in methods.items()}


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A schema and its component name, when it is a reference."""
    ref = schema.get("$ref")
    if ref is None:
        return None, schema
    name = ref.rsplit("/", 1)[1]
    return name, document["components"]["schemas"][name]


def body_fields(document: dict[str, Any], schema: dict[str, Any], row: str) -> Iterator[str]:
    """Every property name of a JSON body, through the objects and arrays it holds, that a row must show;
    a component the row names (`TaskInfo`, `TaskRow`) stands for its fields, which have tests of their own."""
    name, schema = resolve(document, schema)
    if name is not None and named(name, row):
        return
    if schema.get("type") == "array" and "items" in schema:
        yield from body_fields(document, schema["items"], row)
    for prop, sub in (schema.get("properties") or {}).items():
        yield prop
        yield from body_fields(document, sub, row)


def submit_branches(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["components"]["schemas"]["SubmitRequest"]["oneOf"]


# --- the routes table


def test_the_routes_table_names_every_operation_of_the_document_and_no_other(document):
    documented = [operation for row in route_rows() for operation in row_operations(row)]
    served = set(operations(document))
    assert not [op for op in set(documented) if documented.count(op) > 1], "a route is in two rows"
    missing = sorted(served - set(documented))
    assert not missing, f"docs/api.md's routes table lacks: {', '.join(f'{m} {p}' for m, p in missing)}"
    extra = sorted(set(documented) - served)
    assert not extra, f"docs/api.md's routes table names routes the gateway does not serve: {extra}"


def test_each_route_row_shows_every_status_its_routes_declare_and_no_other(document):
    served = operations(document)
    wrong = []
    for row in route_rows():
        declared = {int(status) for op in row_operations(row) for status in served[op]["responses"]}
        shown = {int(status) for status in STATUS.findall(f"{row['answers']} {row['errors']}")}
        if shown != declared:
            wrong.append(f"{row['route']}: shows {sorted(shown)}, declares {sorted(declared)}")
    assert not wrong, "\n".join(wrong)


def test_a_route_is_open_in_the_docs_exactly_when_the_document_asks_no_credential(document):
    served = operations(document)
    wrong = []
    for row in route_rows():
        for op in row_operations(row):
            security = served[op]["security"]
            if (security == [] or {} in security) != row["auth"].startswith("none"):
                wrong.append(f"{op}: auth {row['auth']!r}, security {security}")
    assert not wrong, "\n".join(wrong)


def test_each_route_row_names_its_parameters_and_its_bodies_fields(document):
    """Query parameters as `name=`, request headers by name, and every field of the JSON bodies the
    route takes (besides /submit's, which has its own table) and answers with."""
    served = operations(document)
    missing = []
    for row in route_rows():
        text = " ".join(row.values())
        for op in row_operations(row):
            operation = served[op]
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and f"{parameter['name']}=" not in text:
                    missing.append(f"{op}: query parameter {parameter['name']}=")
                if parameter["in"] == "header" and not named(parameter["name"], text):
                    missing.append(f"{op}: header {parameter['name']}")
            bodies = [reply.get("content", {}).get("application/json", {}).get("schema")
                      for status, reply in operation["responses"].items() if status.startswith("2")]
            if op != ("POST", "/submit"):
                bodies.append(operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"))
            missing += [f"{op}: field {field}" for body in bodies if body
                        for field in body_fields(document, body, text) if not named(field, text)]
    assert not missing, "\n".join(missing)


# --- bodies: submit, TaskInfo, errors


def test_the_submit_fields_are_the_documents(document):
    fields = table(routes_section(), "field", "")
    documented = {CODE_SPAN.search(row["field"]).group(1) for row in fields}
    served = {prop for branch in submit_branches(document) for prop in branch["properties"]}
    assert documented == served
    for row in fields:
        name = CODE_SPAN.search(row["field"]).group(1)
        lengths = {branch["properties"][name].get("maxLength") for branch in submit_branches(document)} - {None}
        assert all(named(str(length), row[""]) for length in lengths), (name, lengths)
        required = all(name in branch.get("required", []) for branch in submit_branches(document))
        assert row[""].startswith("required") == required, name


def test_each_job_types_upload_fields_values_and_bounds_are_documented(document):
    rows = {CODE_SPAN.search(row["type"]).group(1): row for row in table(routes_section(), "type", "queue", "`upload`")}
    config = json.loads((ROOT / "config.example.json").read_text())["jobs"]
    branches = {branch["properties"]["type"]["const"]: branch["properties"]["upload"]
                for branch in submit_branches(document)}
    assert set(rows) == set(branches)
    missing = []
    for job_type, upload in branches.items():
        row = rows[job_type]
        if row["queue"] != f"`{config[job_type]['queue']}`":
            missing.append(f"{job_type}: queue {config[job_type]['queue']}")
        shown = set(CODE_SPAN.findall(row["`upload`"]))
        for name, schema in upload["properties"].items():
            values = schema.get("enum") or schema.get("items", {}).get("enum") or []
            missing += [f"{job_type}.{name}" + (f" {value}" if value != name else "")
                        for value in [name, *values] if value not in shown]
            bounds = [schema[key] for key in ("minimum", "maximum", "maxLength") if key in schema]
            # the field's clause: from its name to the next `;`
            clause = row["`upload`"][row["`upload`"].index(f"`{name}`"):].split(";")[0] if name in shown else ""
            missing += [f"{job_type}.{name} bound {number(b)}" for b in bounds if not named(number(b), clause)]
        for name in upload.get("required", []):
            if f"`{name}` (" not in row["`upload`"] or "required" not in row["`upload`"].split(f"`{name}` (")[1].split(")")[0]:
                missing.append(f"{job_type}.{name} required")
    assert not missing, "\n".join(missing)


def test_the_taskinfo_fields_are_the_documents(document):
    schemas = document["components"]["schemas"]
    text = paragraph(routes_section(), "TaskInfo: ")
    spans = {name.strip("{} ") for span in CODE_SPAN.findall(text) for name in span.split(",")}
    assert set(schemas["TaskInfo"]["properties"]) <= spans
    # The docs say a row is a TaskInfo without its result: so is the schema.
    assert "TaskRow: TaskInfo without `result`" in routes_section()
    assert set(schemas["TaskRow"]["properties"]) == set(schemas["TaskInfo"]["properties"]) - {"result"}


def test_the_error_envelope_fields_are_the_documents(document):
    text = paragraph(routes_section(), "HTTP errors are always")
    missing = [name for name in document["components"]["schemas"]["Error"]["properties"] if not named(name, text)]
    assert not missing, missing


# --- statuses and codes


def test_the_documented_statuses_are_the_codes(document):
    api = [row["status"].strip("`") for row in table(routes_section(), "status", "meaning", "from Celery")]
    spec = [row["status"].strip("`") for row in table(section(SPEC.read_text(), "## §2"), "status", "meaning", "Celery states")]
    assert api == spec == list(STATUSES)
    assert document["components"]["schemas"]["TaskInfo"]["properties"]["status"]["enum"] == list(STATUSES)


def test_the_documented_task_error_codes_are_the_codes():
    documented = {int(row["code"]): row["name"] for row in table(routes_section(), "code", "name", "meaning")}
    assert documented == {0: "—", **{int(code): code.name.lower().replace("_", " ") for code in ErrorCode}}


def test_the_http_status_table_covers_every_error_status_a_route_declares(document):
    documented = [int(row["status"]) for row in table(routes_section(), "status", "when")]
    declared = {int(status) for operation in operations(document).values() for status in operation["responses"]
                if int(status) >= 400}
    assert set(documented) == declared | ANY_ROUTE
    assert documented == sorted(documented)
