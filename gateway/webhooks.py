"""Which callback URLs a client may give (SPEC: completion webhooks). Deliveries happen in the workers
(tasks/webhooks.py); the gateway only refuses, at submit, anything that would let a client make the
workers call an address it should not reach: other schemes, credentials in the URL, hosts that are
not in `webhooks.allowed_hosts`. Allowed entries are `host`, `host:port` or `*.domain`."""
from __future__ import annotations

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
    if not webhooks.secret_for(settings.secrets, client_id):
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
