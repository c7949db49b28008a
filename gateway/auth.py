"""Who is calling. Every route declares its requirement here; the Vault login plugs in behind it.

Until Vault authentication lands (SPEC §4), every caller is the same anonymous client with the
`admin` role, so routes already run through the one decorator that will check credentials.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import g
from loguru import logger


@dataclass(frozen=True)
class Identity:
    client_id: str
    role: str


ANONYMOUS = Identity(client_id="anonymous", role="admin")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Resolve the caller before the view runs and bind its client_id into the log context."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.identity = ANONYMOUS
        with logger.contextualize(client_id=g.identity.client_id):
            return view(*args, **kwargs)

    return wrapper


def current_identity() -> Identity:
    return g.identity


def may_read(owner: str) -> bool:
    """Tasks belong to the client that submitted them; admin reads every task."""
    identity = current_identity()
    return identity.role == "admin" or identity.client_id == owner
