"""Who is calling and what they may do, declared on each route (SPEC §4, STYLE habit 6).

`@login_required()` turns the Authorization header into an Identity through Vault (gateway/access/identity.py)
and records the decision for the request's log line (the audit trail); `@job_type_allowed(field)` checks the role -> job types table;
`@login_required(system=True)` marks routes for internal callers only.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import current_app, g, request
from loguru import logger

from gateway.access.authenticator import Authenticator, Throttled
from gateway.access.identity import AuthFailed, Identity, NoIdentity, VaultUnavailable
from gateway.access.ratelimit import Check, RateLimits
from gateway.health import metrics
from gateway.http import requestinfo
from gateway.http.contract import contract_of
from gateway.http.errors import Forbidden, ServiceUnavailable, TooManyRequests, Unauthorized
from settings import tracing

KEY = "gateway.access"
CHALLENGE = 'Bearer realm="job-gateway", Basic realm="job-gateway", charset="UTF-8"'
CLIENT_SECURITY: list[dict[str, list]] = [{"basicAuth": []}, {"bearerAuth": []}]


@dataclass(frozen=True)
class Access:
    """What the route decorators decide with, built once by the factory (gateway/extensions.py) and kept
    on the app under its own key, the way a Flask extension keeps its state."""

    authenticator: Authenticator
    rate_limits: RateLimits
    job_types: frozenset[str]  # every configured job type
    roles: Mapping[str, Any]  # role -> the job types it may submit (config `roles`)
    operator_roles: tuple[str, ...]  # config `ops.roles`


def access() -> Access:
    return current_app.extensions[KEY]


def login_required(system: bool = False) -> Callable:
    """Authenticate before the view; `system=True` admits only the internal system identity."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracing.span("auth"):
                identity = _authenticate()
            if identity.system != system:
                _audit(identity, "denied", "system_route" if system else "system_identity")
                raise Forbidden()
            g.identity = identity
            with logger.contextualize(client_id=identity.client_id):
                return view(*args, **kwargs)
        found = contract_of(wrapper)
        found.security = CLIENT_SECURITY
        found.errors.update({401, 403, 429, 503})
        return wrapper
    return decorator


def job_type_allowed(field: str) -> Callable:
    """The job type named in the JSON body's `field` must be in the caller's role's list.

    Checked before the payload is validated, so a caller learns nothing about the schema of a type it
    may not use; a missing, non-string or unknown type is left for body validation to report as a 400.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            identity = current_identity()
            body = request.get_json(silent=True) if request.is_json else None
            job_type = body.get(field) if isinstance(body, dict) else None
            if isinstance(job_type, str) and job_type in access().job_types:
                requestinfo.required().job_type = job_type
                if job_type not in access().roles.get(identity.role, ()):
                    _audit(identity, "denied", "job_type_not_allowed")
                    raise Forbidden(f"Role may not submit {job_type}")
            return view(*args, **kwargs)
        contract_of(wrapper).errors.add(403)
        return wrapper
    return decorator


def operator_required(view: Callable) -> Callable:
    """After login_required: the caller's role must be one of `ops.roles` (operators see every task)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        identity = current_identity()
        if identity.role not in access().operator_roles:
            _audit(identity, "denied", "not_operator")
            raise Forbidden()
        return view(*args, **kwargs)
    contract_of(wrapper).errors.add(403)
    return wrapper


def current_identity() -> Identity:
    """Who is calling: set by `login_required` for the span of the request (on `flask.g`)."""
    return g.identity


def rate_limited(kind: str, deferred: bool = False) -> Callable:
    """After login_required: count this request against the caller's `kind` limit (submit or read).

    `deferred`: the view sends the check with its own first round trip (`take_rate_check()`: the task
    read's pipeline, the save script), which settles it before it looks at anything else that came
    back, so a refused request still writes nothing and learns nothing. A view that ends without
    taking it (a 400, a 404 before any read) is checked afterwards, and over the limit its answer is
    the 429, as if checked first. A caller this process knows to be over is refused before the view."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            identity = current_identity()
            limits = access().rate_limits
            if not deferred:
                limits.check(kind, identity.role, identity.client_id)
                return view(*args, **kwargs)
            g.rate_check = limits.pending(kind, identity.role, identity.client_id)
            try:
                answer = view(*args, **kwargs)
            except TooManyRequests:
                raise
            except Exception:
                _check_untaken()
                raise
            _check_untaken()
            return answer
        contract_of(wrapper).errors.add(429)
        return wrapper
    return decorator


def take_rate_check() -> Check | None:
    """The request's deferred rate check, for the view to send with its own round trip (None when the
    caller is unlimited or the route checks up front)."""
    return g.pop("rate_check", None)


def _check_untaken() -> None:
    check = take_rate_check()
    if check is not None:
        access().rate_limits.window.run(check)


def may_read(owner: str) -> bool:
    """Tasks belong to the client that submitted them; admin reads every task."""
    identity = current_identity()
    return identity.role == "admin" or identity.client_id == owner


def _authenticate() -> Identity:
    try:
        identity, how = access().authenticator.authenticate(request.headers.get("Authorization"),
                                                              request.remote_addr or "-")
    except NoIdentity:
        # Vault accepted the credential but it carries no client_id/role: authenticated, not authorized.
        _audit(None, "denied", "no_identity")
        raise Forbidden("No client identity is assigned to this credential") from None
    except AuthFailed as failure:
        _audit(None, "denied", failure.reason)
        raise Unauthorized(headers={"WWW-Authenticate": CHALLENGE}) from None
    except Throttled as throttled:
        metrics.note_submit_outcome("throttled")
        _audit(None, "denied", "throttled")
        raise TooManyRequests("Too many failed authentications; retry later",
                              headers={"Retry-After": str(throttled.retry_after)}) from None
    except VaultUnavailable:
        metrics.note_submit_outcome("auth_unavailable")
        _audit(None, "error", "vault_unavailable")
        raise ServiceUnavailable("Authentication service unavailable") from None
    _audit(identity, "allowed", how)
    return identity


def _audit(identity: Identity | None, outcome: str, reason: str) -> None:
    """Record the decision: the request's one log line (gateway/http/requestlog.py) carries it, with who,
    the route, the outcome and a reason class; never a credential, token or payload. A later decision
    in the same request (an operator check after login) replaces the earlier one."""
    metrics.AUTH.labels(outcome, metric_reason(reason)).inc()
    requestinfo.required().auth = requestinfo.AuthDecision(outcome, reason, identity.client_id if identity else None,
                                                          identity.role if identity else None)


def metric_reason(reason: str) -> str:
    """The metric's label: every refusal made before Vault is asked collapses to local_reject, so the
    label has a small fixed set of values whatever the log line says in detail; a reason outside the
    set (none today) is counted as `other`, never as itself."""
    if reason in LOCAL_REJECTS or reason.startswith("jwt_"):
        return "local_reject"
    if reason in VAULT_REFUSALS:
        return "vault_refused"
    return reason if reason in METRIC_REASONS else "other"


LOCAL_REJECTS = frozenset({"missing_or_malformed", "malformed_basic", "bad_username"})
VAULT_REFUSALS = frozenset({"vault_no_auth", "entity_unreadable", "vault_refused"})
METRIC_REASONS = frozenset({"local_reject", "cached_reject", "vault_refused", "throttled", "no_identity",
                            "vault_unavailable", "cached", "vault_login", "job_type_not_allowed", "not_operator",
                            "system_route", "system_identity"})
