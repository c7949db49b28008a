"""The OpenAPI 3.1 document, generated from the marshmallow schemas and the job catalogue.

Request and response bodies come from gateway/schemas.py through apispec's marshmallow plugin; each
job type's `upload` is its own JSON Schema (2020-12, which OpenAPI 3.1 embeds as is), so `/submit` is
a `oneOf` with one branch per configured type. Built once per app: configuration decides its content.
"""
from __future__ import annotations

import json
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from gateway import schemas
from settings import Settings, resolve_schema_path

ERROR = {"$ref": "#/components/schemas/Error"}
STATUS_TEXT = {400: "Invalid request; `errors` lists every bad field", 401: "Missing or refused credentials",
               403: "The caller's role may not do this", 404: "Unknown, malformed or another client's task",
               409: "Conflict", 413: "Payload too large", 415: "Body is not application/json",
               429: "Rate limit or unfinished-task cap reached", 503: "Broker, task store or Vault unavailable"}
AUTH = [{"basicAuth": []}, {"bearerAuth": []}]


def build(settings: Settings) -> dict[str, Any]:
    spec = APISpec(title="Job gateway", version="1.0.0", openapi_version="3.1.0", plugins=[MarshmallowPlugin()],
                   info={"description": "Submit jobs to Celery workers and read their state and results. "
                                        "Authenticate with HTTP Basic (Vault userpass) or a Bearer JWT (Vault JWT auth)."})
    spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for name in ("Error", "SubmitResponse", "TaskInfo", "TaskList"):
        spec.components.schema(name, schema=getattr(schemas, name))
    spec.components.response("Error", {"description": "Error envelope", "content": {"application/json": {"schema": ERROR}}})
    _paths(spec, settings)
    document = spec.to_dict()
    document["components"]["schemas"]["SubmitRequest"] = _submit_request(settings)
    return document


def _submit_request(settings: Settings) -> dict[str, Any]:
    branches = []
    for name, job in sorted(settings.config["jobs"].items()):
        upload = json.loads(resolve_schema_path(job["schema"]).read_text())
        upload.pop("$schema", None)
        upload.pop("$id", None)
        branches.append({"type": "object", "additionalProperties": False, "required": ["type", "upload"],
                         "properties": {"type": {"const": name}, "upload": upload,
                                        "ExternalId": {"type": ["string", "null"], "maxLength": 256},
                                        "callback_url": {"type": ["string", "null"], "maxLength": 2048}}})
    return {"oneOf": branches}


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    out = dict(ok)
    for status in errors:
        out[str(status)] = {"description": STATUS_TEXT[status], "content": {"application/json": {"schema": ERROR}}}
    return out


def _json(description: str, schema: Any, headers: dict | None = None) -> dict[str, Any]:
    body = {"description": description, "content": {"application/json": {"schema": schema}}}
    return body | ({"headers": headers} if headers else {})


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _paths(spec: APISpec, settings: Settings) -> None:
    task = {"$ref": "#/components/schemas/TaskInfo"}
    uuid_param = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    location = {"Location": {"schema": {"type": "string"}, "description": "/taskinfo?taskid=<uuid>"}}
    health = _json("Broker, result backend and Vault answer", _object(message={"type": "string"}, code={"type": "integer"}))
    down = _json("Something is down; the message names it", _object(message={"type": "string"}, code={"type": "integer"}))
    spec.path("/submit", operations={"post": {
        "summary": "Submit a job", "security": AUTH,
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/SubmitRequest"}}}},
        "responses": _responses({
            "202": _json("Accepted and queued", {"$ref": "#/components/schemas/SubmitResponse"}, location),
            "200": _json("Idempotent repeat: the original task", {"$ref": "#/components/schemas/SubmitResponse"}, location),
        }, 400, 401, 403, 409, 413, 415, 429, 503)}})
    spec.path("/taskinfo", operations={"get": {
        "summary": "State and result of a task", "security": AUTH,
        "parameters": [{"name": "taskid", "in": "query", "required": True, "schema": {"type": "string"}}],
        "responses": _responses({"200": _json("The task", task)}, 400, 401, 403, 404, 429, 503)}})
    spec.path("/tasks", operations={"get": {
        "summary": "The caller's tasks, newest first (admin: any client's with client_id)", "security": AUTH,
        "parameters": [
            {"name": "status", "in": "query", "schema": {"enum": ["created", "pending", "done", "error"]}},
            {"name": "type", "in": "query", "schema": {"type": "string"}},
            {"name": "ExternalId", "in": "query", "schema": {"type": "string"}},
            {"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            {"name": "client_id", "in": "query", "schema": {"type": "string"}}],
        "responses": _responses({"200": _json("A page", {"$ref": "#/components/schemas/TaskList"})},
                                400, 401, 403, 429, 503)}})
    spec.path("/tasks/{task_id}", operations={"delete": {
        "summary": "Cancel a task (owner or admin)", "security": AUTH, "parameters": [uuid_param],
        "responses": _responses({"202": _json("Cancelled", task)}, 401, 403, 404, 409, 429, 503)}})
    for path in ("/health",):
        spec.path(path, operations={method: {"summary": "Readiness", "security": [],
                                             "responses": {"200": health, "503": down}} for method in ("get", "post")})
    spec.path("/ping", operations={"get": {"summary": "Liveness", "security": [], "responses": {"200": health}}})
    spec.path("/metrics", operations={"get": {
        "summary": "Prometheus metrics", "security": [{}, {"bearerAuth": []}],
        "responses": _responses({"200": {"description": "Prometheus text format",
                                         "content": {"text/plain": {"schema": {"type": "string"}}}}}, 401)}})
    spec.path("/openapi.json", operations={"get": {"summary": "This document", "security": [], "responses": {
        "200": _json("OpenAPI 3.1", {"type": "object"})}}})
    spec.path("/docs", operations={"get": {"summary": "Interactive documentation", "security": [], "responses": {
        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}})
    _ops_paths(spec, uuid_param)


def _ops_paths(spec: APISpec, uuid_param: dict[str, Any]) -> None:
    errors = (401, 403, 503)
    anything = {"type": "object"}
    spec.path("/ops/queues", operations={"get": {"summary": "Queue depth and oldest message age", "security": AUTH,
                                                 "responses": _responses({"200": _json("Queues", anything)}, *errors)}})
    spec.path("/ops/workers", operations={"get": {"summary": "Workers online, their queues and running tasks",
                                                  "security": AUTH,
                                                  "responses": _responses({"200": _json("Workers", anything)}, *errors)}})
    spec.path("/ops/tasks/counts", operations={"get": {
        "summary": "Task counts by type and outcome over a window", "security": AUTH,
        "parameters": [{"name": "hours", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
        "responses": _responses({"200": _json("Counts", anything)}, 400, *errors)}})
    spec.path("/ops/tasks/{task_id}/revoke", operations={"post": {
        "summary": "Revoke any task", "security": AUTH, "parameters": [uuid_param],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": _object(terminate={"type": "boolean"})}}},
        "responses": _responses({"202": _json("Revoked", anything)}, 404, *errors)}})
    spec.path("/ops/deadletters", operations={"get": {"summary": "Jobs set aside after their retries",
                                                      "security": AUTH,
                                                      "responses": _responses({"200": _json("Dead letters", anything)},
                                                                              *errors)}})
    spec.path("/ops/deadletters/{task_id}/requeue", operations={"post": {
        "summary": "Send a dead-lettered job again", "security": AUTH, "parameters": [uuid_param],
        "responses": _responses({"202": _json("Requeued", anything)}, 404, *errors)}})
