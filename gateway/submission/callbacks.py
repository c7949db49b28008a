"""Which callback URLs a client may give (SPEC: completion webhooks). Deliveries happen in the workers
(tasks/webhooks.py); the gateway only refuses, at submit, anything that would let a client make the
workers call an address it should not reach: other schemes, credentials in the URL, hosts that are
not in `webhooks.allowed_hosts`. Allowed entries are `host`, `host:port` or `*.domain`.

The allow-list is also one regular expression (`callback_pattern`), which the OpenAPI document shows
and which a URL must match too, so the document and the check accept exactly the same URLs."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from jobs import webhooks
from settings import Settings


def callback_problem(url: str, settings: Settings, client_id: str) -> str | None:
    """Why `url` is refused as this client's callback, or None when it is fine."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Must be an http or https URL."
    if parts.username or parts.password:
        return "Must not carry credentials."
    if not host_allowed(parts.hostname, port, settings.config["webhooks"]["allowed_hosts"]):
        return "Host is not allowed for callbacks."
    if not re.fullmatch(callback_pattern(settings.config["webhooks"]["allowed_hosts"]), url):
        return "Must match the documented pattern (lowercase scheme, printable ASCII, no spaces)."
    if not webhooks.secrets_for(settings.secrets, client_id):
        return "No webhook secret is configured for this client."
    return None


def host_allowed(host: str, port: int | None, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower()
        name, _, entry_port = entry.partition(":") if not entry.startswith("[") else (entry, "", "")
        if entry_port and str(port) != entry_port:
            continue
        if name.startswith("*.") and host.endswith(name[1:]) and host != name[2:]:
            return True
        if host == name:
            return True
    return False


PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
NOT_A_HOST = "(?!)"  # no allowed hosts: nothing matches


def callback_pattern(allowed: list[str]) -> str:
    """A regular expression (ECMA-262 and Python alike) for the callback URLs `allowed` admits: http or
    https, an allowed host in any letter case (a `*.domain` entry: one or more labels before it),
    an optional trailing dot, the entry's port or any port, then a path, query or fragment of
    printable ASCII (other characters percent-encoded). No user:password@ can match."""
    hosts = [_host_pattern(entry.lower()) for entry in allowed]
    return rf"^https?://(?:{'|'.join(hosts) or NOT_A_HOST})(?:[/?#][!-~]*)?$"


def _host_pattern(entry: str) -> str:
    name, _, port = entry.partition(":") if not entry.startswith("[") else (entry, "", "")
    prefix = rf"(?:{LABEL}\.)+" if name.startswith("*.") else ""
    name = name[2:] if prefix else name
    return rf"{prefix}{_caseless(name)}\.?" + (f":{port}" if port else rf"(?::{PORT})?")


def _caseless(text: str) -> str:
    """`text` as a pattern matching it literally in any letter case, with no flag (JSON Schema has none)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else ("\\" + c if c in ".[]" else c) for c in text)
