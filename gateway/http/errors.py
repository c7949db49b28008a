"""The error envelope: every exception, ours or Flask's, becomes {"code", "message"[, "errors"]}.

Domain code raises the ApiError subclasses below; nothing else in the gateway builds error
responses. Messages are fixed strings: no exception text from Redis, Vault or Celery reaches a client.
"""
from __future__ import annotations

import traceback
from typing import Any

from flask import Flask, Response, jsonify
from kombu.exceptions import OperationalError
from loguru import logger
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    status = 500
    message = "Internal Server Error"

    def __init__(self, message: str | None = None, errors: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}  # further envelope fields, e.g. the uuid an idempotency conflict names


class ValidationFailed(ApiError):
    status = 400
    message = "Invalid request"


class Unauthorized(ApiError):
    status = 401
    message = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    message = "Forbidden"


class NotFound(ApiError):
    status = 404
    message = "Not found"


class TaskNotFound(ApiError):
    """One body for unknown, malformed and foreign task ids: a caller learns nothing from it."""

    status = 404
    message = "Task not found"


class Conflict(ApiError):
    status = 409
    message = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    message = "Payload Too Large"


class UnsupportedMediaType(ApiError):
    """A body the route reads as JSON, sent as something else: the answer says what to send."""

    status = 415
    message = "Content-Type must be application/json"


class TooManyRequests(ApiError):
    status = 429
    message = "Too Many Requests"


class ServiceUnavailable(ApiError):
    status = 503
    message = "Service Unavailable"


def envelope(status: int, message: str, errors: dict[str, list[str]] | None = None,
             extra: dict[str, Any] | None = None) -> Response:
    body: dict = {"code": status, "message": message, **(extra or {})}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RedisError, _redis_error)
    app.register_error_handler(OperationalError, _broker_error)
    app.register_error_handler(Exception, _unexpected)


def _api_error(exc: ApiError) -> Response:
    response = envelope(exc.status, exc.message, exc.errors, exc.extra)
    response.headers.update(exc.headers)
    return response


def _http_error(exc: HTTPException) -> Response:
    """Flask's own 404/405/413/415/...: same envelope, keeping headers such as Allow."""
    status = exc.code or 500
    response = envelope(status, exc.name if status != 400 else "Invalid request")
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _redis_error(exc: RedisError) -> Response:
    """Any route that reads or writes Redis (task records, listings, counts) and meets it down,
    stalled or refusing: a dependency outage is a 503, never a 500 (SPEC §8)."""
    logger.warning("task store unavailable: {}", exc.__class__.__name__)
    return envelope(503, "Task store unavailable")


def _broker_error(exc: OperationalError) -> Response:
    logger.warning("broker unavailable: {}", exc.__class__.__name__)
    return envelope(503, "Broker unavailable")


def _unexpected(exc: Exception) -> Response:
    # Class and raise site find the bug; the exception's message could quote request data.
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
    logger.error("unhandled {} at {}", exc.__class__.__name__, where)
    return envelope(500, "Internal Server Error")
