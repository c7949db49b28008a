"""Route decorators that declare a route's contract: its body or query schema and what it returns.

Views receive validated data and return plain objects; parsing, validation and the 400 envelope
happen here, with every problem reported at once.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import UnsupportedMediaType

from gateway.errors import ValidationFailed

Check = Callable[[Mapping[str, Any]], dict[str, list[str]]]


def body(schema: type[Schema], check: Check | None = None) -> Callable:
    """Load the JSON body with `schema`; `check` adds domain errors (e.g. the payload schema)."""
    loader = schema()

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not request.is_json:
                raise UnsupportedMediaType("Content-Type must be application/json")
            payload = request.get_json(silent=True)
            if not isinstance(payload, dict):
                raise ValidationFailed("Request body must be a JSON object")
            return view(_load(loader, payload, check), *args, **kwargs)
        return wrapper
    return decorator


def query(schema: type[Schema]) -> Callable:
    loader = schema()

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(_load(loader, request.args.to_dict(), None), *args, **kwargs)
        return wrapper
    return decorator


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
