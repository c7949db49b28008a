"""The Authorization header's shape: Bearer JWT or Basic userpass, checked before anything is asked.

Usernames are held to Vault's name pattern because hvac puts them into the URL unescaped.
"""
from __future__ import annotations

import base64
import binascii
import re

from gateway.access.identity import AuthFailed, Credential

# Vault's GenericNameRegex for userpass names. hvac puts the username into the URL unescaped, so
# anything else ("../", "?", "%2F") is refused before Vault is asked.
VAULT_NAME = re.compile(r"\w(?:[\w.-]*\w)?", re.ASCII)
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def parse_authorization(header: str | None) -> Credential:
    """Authorization header -> Credential, or AuthFailed with a reason class; never an exception else."""
    scheme, _, value = (header or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and JWT_SHAPE.fullmatch(value):
        return Credential(kind="jwt", secret=value)
    if scheme.lower() == "basic" and value:
        return _basic(value)
    raise AuthFailed("missing_or_malformed")


def _basic(value: str) -> Credential:
    try:
        username, colon, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        raise AuthFailed("malformed_basic") from None
    if not colon or not password:
        raise AuthFailed("malformed_basic")
    if not VAULT_NAME.fullmatch(username):
        raise AuthFailed("bad_username")
    return Credential(kind="userpass", secret=password, username=username.lower())
