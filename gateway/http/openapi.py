"""The OpenAPI 3.1 document, generated from the route declarations (gateway/http/contract.py) and the
marshmallow schemas they name, through apispec's marshmallow plugin. Nothing about a route is written
here: a route declared once is documented once. Built once per app (configuration decides the job
types and so the submit body's branches).
"""
from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from gateway.http.contract import TAGS, Contract, Reply, contract_of
from gateway.http.schemas import Error
from settings import Settings

TITLE, VERSION = "Job gateway", "1.0.0"  # the API's name and version (GET / says them too)
ERROR = {"$ref": "#/components/schemas/Error"}
STATUS_TEXT = {400: "Invalid request; `errors` lists every bad field", 401: "Missing or refused credentials",
               403: "The caller's role may not do this", 404: "Unknown, malformed or another client's task",
               409: "Conflict", 413: "Payload too large", 415: "Body is not application/json: send Content-Type: application/json",
               429: "Rate limit, unfinished-task cap or failed-authentication throttle reached",
               503: "Broker, task store or Vault unavailable"}
PATH_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def build(app: Flask, settings: Settings) -> dict[str, Any]:
    marshmallow = MarshmallowPlugin()
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.1.0", plugins=[marshmallow],
                   info={"description": "Submit jobs to Celery workers and read their state and results. "
                                        "Authenticate with HTTP Basic (Vault userpass) or a Bearer JWT (Vault JWT auth)."})
    spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=Error)
    for name, description in TAGS.items():  # this order is the docs page's order of groups
        spec.tag({"name": name, "description": description})
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        path = PATH_PARAMETER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):  # Flask gives every rule its methods
            paths.setdefault(path, {})[method.lower()] = _operation(spec, marshmallow, contract_of(view),
                                                                    rule.arguments, settings)
    for path, operations in paths.items():
        spec.path(path, operations=operations)
    return spec.to_dict()


def _operation(spec: APISpec, marshmallow: MarshmallowPlugin, contract: Contract, path_arguments: set[str],
               settings: Settings) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": contract.summary, "security": contract.security or [],
                                 "responses": _responses(contract)}
    if contract.tag:
        operation["tags"] = [contract.tag]
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in sorted(path_arguments)]
    parameters += [{"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                   for name in contract.headers]
    if contract.query is not None:
        parameters += _query_parameters(marshmallow, contract, settings)
    if parameters:
        operation["parameters"] = parameters
    if contract.body is not None:
        schema: Any = contract.body
        if contract.body_document is not None:  # built from configuration, e.g. one branch per job type
            name = contract.body.__name__
            if name not in spec.components.schemas:
                spec.components.schema(name, component=dict(contract.body_document(settings)))
            schema = {"$ref": f"#/components/schemas/{name}"}
        operation["requestBody"] = {"required": contract.body_document is not None,
                                    "content": {"application/json": {"schema": schema}}}
    return operation


def _query_parameters(marshmallow: MarshmallowPlugin, contract: Contract, settings: Settings) -> list[dict[str, Any]]:
    """The query schema's parameters as apispec derives them, with the ones the route builds from the
    settings (`query_document`) replaced, so a configured bound is documented where it is enforced."""
    if contract.query_document is None:
        return [{"in": "query", "schema": contract.query}]
    built = contract.query_document(settings)
    assert marshmallow.converter is not None  # set when the plugin joined the APISpec (build)
    parameters = marshmallow.converter.schema2parameters(contract.query, location="query")
    return [{**parameter, "schema": built.get(parameter["name"], parameter["schema"])} for parameter in parameters]


def _responses(contract: Contract) -> dict[str, Any]:
    out = {str(status): _reply(reply) for status, reply in sorted(contract.replies.items())}
    for status in sorted(contract.errors - set(contract.replies)):
        out[str(status)] = {"description": STATUS_TEXT[status], "content": {"application/json": {"schema": ERROR}}}
    return out


def _reply(reply: Reply) -> dict[str, Any]:
    schema = reply.schema or ({"type": "object"} if reply.content_type == "application/json" else {"type": "string"})
    body: dict[str, Any] = {"description": reply.description or "OK",
                            "content": {reply.content_type: {"schema": schema}}}
    if reply.headers:
        body["headers"] = {name: {"schema": {"type": "string"}} for name in reply.headers}
    return body
