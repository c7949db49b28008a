"""Client library for the job gateway: submit jobs, wait for them with the progress they report, read
results, list and cancel tasks, verify completion webhooks. Sync (`Client`) and async (`AsyncClient`).

    from jobgateway_client import BasicAuth, Client, content_from_path

    with Client("http://127.0.0.1:8000", auth=BasicAuth("service", password)) as gateway:
        task = gateway.submit("calc_hash", {"content": content_from_path("photo.png")})
        print(task.wait(timeout=60).result["digests"]["sha256"])

Failures are bounded and typed: 429 waits Retry-After and repeats, 503 and lost connections repeat with
backoff until the retry deadline, a token provider logs in again once after a 401, and a submit is
repeated under one idempotency key so it never makes a second job (policy.py, client.py). Errors carry
the gateway's envelope (errors.py). Version 1.x speaks the gateway's API 1 (`API_VERSION`)."""
from jobgateway_client._version import API_VERSION, __version__
from jobgateway_client.aio import AsyncClient, AsyncTask
from jobgateway_client.auth import Auth, BasicAuth, BearerToken, TokenProvider
from jobgateway_client.client import Client, Task
from jobgateway_client.content import content_from_bytes, content_from_path, upload_from_path
from jobgateway_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ClientError,
    Conflict,
    GatewayUnavailable,
    JobFailed,
    JobGatewayError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    TokenProviderError,
    WaitTimeout,
    WebhookVerificationError,
)
from jobgateway_client.models import ErrorCode, Health, Progress, Result, Submitted, TaskInfo
from jobgateway_client.policy import RetryEvent, RetryPolicy
from jobgateway_client.webhooks import verify_delivery, verify_signature

__all__ = [
    "API_VERSION", "ApiError", "AsyncClient", "AsyncTask", "Auth", "AuthenticationError", "BadRequest", "BasicAuth",
    "BearerToken", "Client", "ClientError", "Conflict", "ErrorCode", "GatewayUnavailable", "Health", "JobFailed",
    "JobGatewayError", "NotFound", "PayloadTooLarge", "PermissionDenied", "Progress", "RateLimited", "Result",
    "RetryEvent", "RetryPolicy", "ServerError", "Submitted", "Task", "TaskInfo", "TokenProvider",
    "TokenProviderError", "WaitTimeout", "WebhookVerificationError", "__version__", "content_from_bytes",
    "content_from_path", "upload_from_path", "verify_delivery", "verify_signature",
]
