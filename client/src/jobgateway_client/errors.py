"""Typed exceptions. An error answer from the gateway becomes an `ApiError` subclass chosen by its HTTP
status, carrying the gateway's envelope as it was sent: `code` (the status), `message`, `errors` (field
-> reasons, on a 400) and `uuid` (a 409 names the task it is about; a 503 whose outcome is unknown
names the task that may exist). Failures that are not an HTTP answer have their own classes."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobgateway_client.models import TaskInfo


class JobGatewayError(Exception):
    """Root of every exception this package raises on purpose."""


class ApiError(JobGatewayError):
    """The gateway answered with an error status (or, for `GatewayUnavailable`, could not be reached).

    `status` is the HTTP status (None when no answer came at all); `code` and `message` are the
    envelope's; `errors` maps a field (dotted, e.g. `upload.width`) to its reasons; `uuid` is the task
    the error names, if any; `retry_after` is the `Retry-After` header in seconds, if sent."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 errors: Mapping[str, list[str]] | None = None, uuid: str | None = None,
                 retry_after: float | None = None, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code if code is not None else status
        self.errors: dict[str, list[str]] = dict(errors or {})
        self.uuid = uuid
        self.retry_after = retry_after
        self.body: dict[str, Any] = dict(body or {})

    def __str__(self) -> str:
        head = f"{self.status} {self.message}" if self.status else self.message
        return head + (f" (task {self.uuid})" if self.uuid else "")


class ClientError(ApiError):
    """A 4xx: the request was wrong, or not allowed; repeating it as it is will not help."""


class BadRequest(ClientError):
    """400: see `errors` for every bad field at once."""


class AuthenticationError(ClientError):
    """401: no credential, a malformed one, or Vault refused it (after one re-login for a token provider)."""


class PermissionDenied(ClientError):
    """403: the credential is valid, but its role may not do this (for example submit this job type)."""


class NotFound(ClientError):
    """404: unknown route, or a task that is unknown, malformed or someone else's (one identical answer)."""


class Conflict(ClientError):
    """409: the idempotency key names another body's task (`uuid`), the task already finished (cancel),
    or the task is not done (result)."""


class PayloadTooLarge(ClientError):
    """413: the body, or the decoded content, is over the gateway's limit."""


class RateLimited(ClientError):
    """429 that outlasted the retry deadline: a rate limit (`retry_after` set), the cap on unfinished
    tasks, or throttled authentication."""


class ServerError(ApiError):
    """A 5xx other than unavailable: a bug in the gateway (its body is generic on purpose)."""


class GatewayUnavailable(ApiError):
    """503 (or 502/504 from a proxy in front), or no answer at all (connection refused, reset, timed
    out), still so when the retry deadline ran out. With `uuid` set the outcome of a submit is unknown:
    the task may exist under that uuid; repeating the submit with the same idempotency key is safe."""

    @property
    def outcome_unknown(self) -> bool:
        return self.uuid is not None


class TokenProviderError(JobGatewayError):
    """The token provider raised or returned no token (its cause is chained; no token is ever shown)."""


class JobFailed(JobGatewayError):
    """The job ended with status `error`: `code` is the task error code (see `ErrorCode`), `message`
    the gateway's text for it, `task` the final TaskInfo."""

    def __init__(self, task: TaskInfo) -> None:
        super().__init__(f"task {task.uuid} ended with error code {task.code}: {task.message}")
        self.task = task
        self.code = task.code
        self.message = task.message


class WaitTimeout(JobGatewayError, TimeoutError):
    """`wait` gave up before the task finished; `last` is the last TaskInfo read (None if none was)."""

    def __init__(self, uuid: str, timeout: float, last: TaskInfo | None) -> None:
        state = f", last seen {last.status}" if last is not None else ""
        super().__init__(f"task {uuid} did not finish within {timeout:g}s{state}")
        self.uuid = uuid
        self.timeout = timeout
        self.last = last


class WebhookVerificationError(JobGatewayError):
    """A webhook delivery whose signature, timestamp or body does not check out: answer it 4xx, do not act on it."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: AuthenticationError, 403: PermissionDenied, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 429: RateLimited, 502: GatewayUnavailable, 503: GatewayUnavailable,
    504: GatewayUnavailable,
}


def error_class(status: int) -> type[ApiError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ClientError if 400 <= status < 500 else ServerError
