"""The HTTP API as both clients speak it, without I/O: request bodies and parameters, idempotency keys,
and how an answer becomes a value or a typed error. client.py and aio.py only send and wait."""
from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from jobgateway_client._version import API_VERSION, __version__
from jobgateway_client.errors import ApiError, GatewayUnavailable, error_class
from jobgateway_client.models import Health, TaskInfo
from jobgateway_client.policy import parse_retry_after

USER_AGENT = f"jobgateway-client/{__version__} (API {API_VERSION})"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_PAGE = 200  # GET /tasks `limit`: 1-200


def base_url(url: str) -> str:
    """The gateway's root URL, checked: http(s), a host, and no credentials in it (they would end up
    in error messages and logs; give them as `auth`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the gateway URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise ValueError("put credentials in auth=, not in the gateway URL")
    return url.rstrip("/")


def request_headers(extra: Mapping[str, str] | None, authorization: str | None) -> dict[str, str]:
    return {**(extra or {}), **({"Authorization": authorization} if authorization else {})}


def task_path(task_id: str, suffix: str = "") -> str:
    return f"/tasks/{quote(str(task_id), safe='')}{suffix}"


def submit_key(idempotency_key: str | None, external_id: str | None) -> str | None:
    """The key one logical submit carries on every attempt: the caller's; else none when an ExternalId
    is given (the gateway takes the ExternalId as the key, and a header would take its place, so a
    later submit with that ExternalId would not find this task); else a fresh random one."""
    if idempotency_key:
        return idempotency_key
    return None if external_id else f"jgc-{uuidlib.uuid4()}"


def submit_body(job_type: str, upload: Mapping[str, Any], external_id: str | None,
                callback_url: str | None, delay_seconds: float | None = None,
                run_at: datetime | str | None = None) -> dict[str, Any]:
    """`run_at`: an aware datetime (a naive one is refused here, as the gateway would) or RFC 3339 text."""
    body: dict[str, Any] = {"type": job_type, "upload": dict(upload)}
    if external_id is not None:
        body["ExternalId"] = external_id
    if callback_url is not None:
        body["callback_url"] = callback_url
    if delay_seconds is not None:
        body["delay_seconds"] = delay_seconds
    if isinstance(run_at, datetime):
        if run_at.tzinfo is None:
            raise ValueError("run_at needs a time zone (e.g. datetime.now(timezone.utc) + timedelta(hours=1))")
        body["run_at"] = run_at.isoformat()
    elif run_at is not None:
        body["run_at"] = run_at
    return body


def list_params(status: str | None, job_type: str | None, external_id: str | None, created_after: datetime | str | None,
                client_id: str | None, page_size: int) -> dict[str, str]:
    params = {"status": status, "type": job_type, "ExternalId": external_id, "client_id": client_id,
              "created_after": created_after.isoformat() if isinstance(created_after, datetime) else created_after}
    found = {name: value for name, value in params.items() if value is not None}
    return found | {"limit": str(max(1, min(MAX_PAGE, page_size)))}


def page(response: httpx.Response) -> tuple[list[TaskInfo], str | None]:
    body = response.json()
    return [TaskInfo.from_json(row) for row in body.get("tasks") or []], body.get("next_cursor") or None


def error_from(response: httpx.Response) -> ApiError:
    """The typed error for an error answer whose body has been read: the gateway's envelope when it
    is one, else the status's reason (a proxy's HTML page, say)."""
    body: Any = None
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        pass
    envelope = body if isinstance(body, dict) else {}
    message = envelope.get("message") if isinstance(envelope.get("message"), str) else response.reason_phrase
    errors = envelope.get("errors") if isinstance(envelope.get("errors"), dict) else None
    code = envelope.get("code") if isinstance(envelope.get("code"), int) else response.status_code
    task = envelope.get("uuid") if isinstance(envelope.get("uuid"), str) else None
    return error_class(response.status_code)(
        message or f"HTTP {response.status_code}", status=response.status_code, code=code, errors=errors, uuid=task,
        retry_after=parse_retry_after(response.headers.get("Retry-After")), body=envelope)


def connection_error(exc: httpx.TransportError) -> GatewayUnavailable:
    """No answer: refused, reset, closed before answering, timed out. The URL is not repeated (the
    caller knows it); the exception is chained by the caller."""
    return GatewayUnavailable(f"no answer from the gateway ({type(exc).__name__})")


def health(response: httpx.Response) -> Health:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = {}
    body = body if isinstance(body, dict) else {}
    return Health(ok=response.status_code == 200, message=str(body.get("message", response.reason_phrase)),
                  code=int(body.get("code", 0)) if isinstance(body.get("code", 0), int) else 0,
                  status=response.status_code)


def check_length(response: httpx.Response, received: int) -> None:
    """A result shorter than its Content-Length was cut off: an error, never a truncated file."""
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) != received:
        raise GatewayUnavailable(f"the result was cut off after {received} of {declared} bytes")


def json_or_error(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(f"the gateway answered {response.status_code} with a body that is not JSON",
                       status=response.status_code) from None
