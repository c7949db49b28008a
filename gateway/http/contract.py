"""Route decorators that declare a route's contract, and the declarations the OpenAPI document is
generated from (gateway/http/openapi.py): summary, the tag that groups it, body or query schema,
responses and their schemas, error statuses, who may call it.

Views receive validated data and return plain objects; parsing, validation, the 400 envelope and the
serialisation of the response through its declared schema happen here, with every problem reported at
once. Each decorator records what it adds in the view's `contract` (functools.wraps carries it
outward), so a route declared once is documented once.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Response, request
from marshmallow import Schema, ValidationError

from gateway.http.errors import ValidationFailed
from settings import tracing

# The groups of the API (OpenAPI tags, in this order in the document and the docs page), each route in one.
TAGS = {
    "jobs": "Submit a job: its type and upload, checked against the type's schema; idempotent with an ExternalId "
            "or an Idempotency-Key",
    "tasks": "The caller's tasks: state and progress, results, listing, cancel",
    "operations": "For the operator roles (`ops.roles`): queues, workers, task counts, revoke, dead letters, drain",
    "workers": "For workers in any language, the system identity only: lease a job, heartbeat, finish",
    "health": "Readiness, liveness and Prometheus metrics",
    "docs": "Where to start: the index at /, this document and the documentation page",
}
Check = Callable[[Mapping[str, Any]], dict[str, list[str]]]
Document = Callable[[Any], Mapping[str, Any]]  # settings -> a JSON Schema, for bodies built from config


@dataclass(frozen=True)
class Reply:
    """A declared response: its status, the schema that serialises it, headers it may carry."""

    status: int
    description: str
    schema: type[Schema] | None = None
    content_type: str = "application/json"
    headers: tuple[str, ...] = ()


@dataclass
class Contract:
    summary: str = ""
    tag: str = ""  # one of TAGS
    body: type[Schema] | None = None
    body_document: Document | None = None
    query: type[Schema] | None = None
    query_document: Document | None = None  # settings -> {parameter: JSON Schema} replacing the derived ones
    headers: tuple[str, ...] = ()
    replies: dict[int, Reply] = field(default_factory=dict)
    errors: set[int] = field(default_factory=set)
    security: list[dict[str, list]] | None = None


def contract_of(view: Callable) -> Contract:
    """The view's contract, created empty on first use."""
    return view.__dict__.setdefault("contract", Contract())


def declare(summary: str, *, tag: str, errors: tuple[int, ...] = (), headers: tuple[str, ...] = ()) -> Callable:
    """What the route is for, its group (one of TAGS), the error statuses its own logic may answer,
    request headers it reads."""
    if tag not in TAGS:
        raise ValueError(f"unknown tag {tag!r}: declare it in TAGS (gateway/http/contract.py)")

    def decorator(view: Callable) -> Callable:
        found = contract_of(view)
        found.summary = summary
        found.tag = tag
        found.errors.update(errors)
        found.headers = tuple(headers)
        return view
    return decorator


def returns(status: int, schema: type[Schema] | None = None, description: str = "",
            content_type: str = "application/json", headers: tuple[str, ...] = ()) -> Callable:
    """Declare a response; the view's return value for that status is dumped through `schema`.
    A view returns `obj`, `(obj, status)` or `(obj, status, headers)`; a Response passes as it is."""
    dumper = schema() if schema is not None else None

    def decorator(view: Callable) -> Callable:
        contract_of(view).replies[status] = Reply(status, description, schema, content_type, headers)
        if dumper is None:
            return view

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            returned = view(*args, **kwargs)
            if isinstance(returned, Response):
                return returned
            obj, code, extra = returned if isinstance(returned, tuple) and len(returned) == 3 else (
                (*returned, {}) if isinstance(returned, tuple) else (returned, 200, {}))
            if code != status:
                return obj, code, extra
            return dumper.dump(obj), code, extra
        return wrapper
    return decorator


def body(schema: type[Schema], check: Check | None = None, document: Document | None = None) -> Callable:
    """Load the JSON body with `schema`; `check` adds domain errors (e.g. the payload schema);
    `document`, when given, builds the body's documented schema from the settings instead."""
    loader = schema()

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracing.span("validation"):
                loaded = _load(loader, json_object(), check)
            return view(loaded, *args, **kwargs)
        found = contract_of(wrapper)
        found.body, found.body_document = schema, document
        found.errors.update({400, 413, 415})
        return wrapper
    return decorator


def optional_body(schema: type[Schema]) -> Callable:
    """Like `body`, for a JSON body that may be left out (an empty body loads as {})."""
    loader = schema()

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            payload = json_object() if request.content_length or request.is_json else {}
            return view(_load(loader, payload, None), *args, **kwargs)
        found = contract_of(wrapper)
        found.body = schema
        found.errors.update({400, 415})
        return wrapper
    return decorator


def query(schema: type[Schema], document: Document | None = None) -> Callable:
    """Load the query string with `schema`; `document`, when given, builds the documented schemas of
    some parameters from the settings (a bound that is configuration, e.g. the retention)."""
    loader = schema()

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(_load(loader, request.args.to_dict(), None), *args, **kwargs)
        found = contract_of(wrapper)
        found.query, found.query_document = schema, document
        found.errors.add(400)
        return wrapper
    return decorator


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or the 415/400/413 that says why not (gateway/http/bodies.py)."""
    payload = request.get_json()
    if not isinstance(payload, dict):
        raise ValidationFailed("Request body must be a JSON object")
    return payload


def _load(loader: Schema, payload: Mapping[str, Any], check: Check | None) -> dict[str, Any]:
    try:
        data, errors = loader.load(payload), {}
    except ValidationError as exc:
        data, errors = exc.valid_data or {}, flatten(exc.messages)
    if check is not None:
        errors.update(check(payload))
    if errors:
        raise ValidationFailed(errors=errors)
    return data


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"dotted.field": ["reason", ...]}."""
    if not isinstance(messages, dict):
        return {prefix or "_schema": list(messages) if isinstance(messages, list) else [str(messages)]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
