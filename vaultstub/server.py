"""The HTTP side: Vault's paths, response envelopes, status codes and error bodies.

State lives in memory for the life of the process (issued tokens, entities created on first
login, counters). Extra non-Vault paths under /v1/sys/stub/ let tests count the logins that
actually reached "Vault" and seal it to exercise the gateway's 503 path.
"""

import logging
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from vaultstub import jwt as vjwt
from vaultstub.seed import NAME_PATTERN, Seed, check_password, hash_password, load_seed

log = logging.getLogger("vaultstub")
VERSION = "1.17.0+vaultstub"
_ALPHABET = string.ascii_letters + string.digits
# Paths Vault still answers while sealed, and the stub's own control paths.
_SEAL_EXEMPT = ("/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/stub/")


class VaultError(Exception):
    """A Vault error response: the status and the texts of its `errors` list."""

    def __init__(self, status: int, *errors: str) -> None:
        super().__init__(status, errors)
        self.status, self.errors = status, list(errors)


def _multi(message: str) -> str:
    """How Vault renders errors it wraps in a go-multierror (internal and routing errors)."""
    return f"1 error occurred:\n\t* {message}\n\n"


def _random(n: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Token:
    id: str
    policies: list[str]
    meta: dict[str, str] | None = None
    entity_id: str = ""
    display_name: str = "token"
    path: str = "auth/token/create"
    ttl: int = 0  # 0: never expires, like tokens created by an operator with no TTL
    issued: float = field(default_factory=time.time)
    accessor: str = field(default_factory=_random)

    def expires(self) -> float | None:
        return self.issued + self.ttl if self.ttl else None


class Vault:
    """In-memory Vault state shared by all request threads; every mutation holds the lock."""

    def __init__(self, seed: Seed) -> None:
        self.seed = seed
        self.lock = threading.Lock()
        self.sealed = False
        self.cluster_id = str(uuid.uuid4())
        self.tokens: dict[str, Token] = {}
        self.entities: dict[str, dict[str, Any]] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.accessors = {m: f"auth_{t}_{secrets.token_hex(4)}" for m, t in
                          ((seed.userpass_mount, "userpass"), (seed.jwt_mount, "jwt"))}
        self.dummy_hash = hash_password(secrets.token_urlsafe())  # equal timing for unknown users
        self.reset_counters()
        for spec in seed.tokens:
            policies = spec.get("policies", [])
            self.tokens[spec["id"]] = Token(spec["id"], _token_policies(policies),
                                            display_name="root" if "root" in policies else spec.get("display_name", "token"),
                                            ttl=spec.get("ttl", 0))
        for spec in seed.entities:
            entity = self._new_entity(spec.get("id"), spec.get("name"), spec.get("metadata"), spec.get("policies", []))
            for alias in spec.get("aliases", []):
                self._add_alias(entity, alias["mount"], alias["name"])

    def reset_counters(self) -> None:
        self.counters: dict[str, Any] = {"logins": {"jwt": 0, "userpass": 0}, "lookups": 0, "entity_reads": 0}

    def count(self, key: str, sub: str | None = None) -> None:
        with self.lock:
            if sub is None:
                self.counters[key] += 1
            else:
                self.counters[key][sub] += 1

    def token(self, token_id: str | None) -> Token | None:
        """The live token with this id; expired tokens are gone, as Vault revokes them."""
        with self.lock:
            token = self.tokens.get(token_id or "")
            if token and token.expires() is not None and token.expires() <= time.time():
                del self.tokens[token.id]
                return None
            return token

    def login(self, mount: str, alias_name: str, policies: tuple[str, ...], meta: dict[str, str],
              ttl: int, display_name: str, path: str) -> Token:
        """Issue a service token bound to the entity owning the alias (created if none does)."""
        with self.lock:
            entity_id = self.aliases.get(self._alias_key(mount, alias_name))
            if entity_id is None:
                entity = self._new_entity(None, None, None, [])  # Vault's auto-created entity: no metadata
                self._add_alias(entity, mount, alias_name)
                entity_id = entity["id"]
            token = Token("hvs." + _random(), _token_policies(policies), meta, entity_id,
                          f"{mount}-{display_name}", path, ttl)
            self.tokens[token.id] = token
            return token

    def entity(self, entity_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.entities.get(entity_id)

    def _alias_key(self, mount: str, name: str) -> tuple[str, str]:
        return (mount, name.lower() if mount == self.seed.userpass_mount else name)

    def _new_entity(self, entity_id: str | None, name: str | None, metadata: dict[str, str] | None,
                    policies: list[str]) -> dict[str, Any]:
        now = _rfc3339(time.time())
        entity = {"id": entity_id or str(uuid.uuid4()), "name": name or f"entity_{secrets.token_hex(4)}",
                  "metadata": metadata, "policies": policies, "aliases": [], "creation_time": now,
                  "last_update_time": now}
        self.entities[entity["id"]] = entity
        return entity

    def _add_alias(self, entity: dict[str, Any], mount: str, name: str) -> None:
        key = self._alias_key(mount, name)
        self.aliases[key] = entity["id"]
        entity["aliases"].append({
            "canonical_id": entity["id"], "creation_time": entity["creation_time"], "custom_metadata": None,
            "id": str(uuid.uuid4()), "last_update_time": entity["creation_time"], "local": False,
            "merged_from_canonical_ids": None, "metadata": None, "mount_accessor": self.accessors[mount],
            "mount_path": f"auth/{mount}/", "mount_type": "jwt" if mount == self.seed.jwt_mount else "userpass",
            "name": key[1]})

    def may_read(self, token: Token, path: str) -> bool:
        """ACL check for `path` (no leading /v1/): Vault's glob is a trailing `*` prefix match."""
        if "root" in token.policies:
            return True
        rules = (rule for p in token.policies for rule in self.seed.policies.get(p, ()))
        return any(path == r or (r.endswith("*") and path.startswith(r[:-1])) for r in rules)


def _token_policies(policies: list[str] | tuple[str, ...]) -> list[str]:
    """Vault attaches the `default` policy to every token but root, and sorts the list."""
    return ["root"] if "root" in policies else sorted(set(policies) | {"default"})


def _vault() -> Vault:
    return current_app.extensions["vaultstub"]


def _envelope(data: Any = None, auth: Any = None, mount_type: str = "") -> dict[str, Any]:
    """Vault's common response frame around `data` or `auth`."""
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": None, "auth": auth, "mount_type": mount_type}


def _body() -> dict[str, Any]:
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        body = request.get_json(force=True)
    except HTTPException:
        body = None
    if not isinstance(body, dict):
        raise VaultError(400, "failed to parse JSON input: expected a JSON object")
    return body


def _field(body: dict[str, Any], name: str) -> str:
    """A string parameter, converted the way Vault's framework weakly decodes scalars."""
    value = body.get(name)
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise VaultError(400, _multi(f"{name}: expected a string"))


def _caller() -> Token:
    token_id = request.headers.get("X-Vault-Token") or _bearer()
    token = _vault().token(token_id)
    if token is None:
        raise VaultError(403, "permission denied")
    return token


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _auth_block(token: Token) -> dict[str, Any]:
    return {"client_token": token.id, "accessor": token.accessor, "policies": token.policies,
            "token_policies": token.policies, "metadata": token.meta, "lease_duration": token.ttl,
            "renewable": True, "entity_id": token.entity_id, "token_type": "service", "orphan": True,
            "mfa_requirement": None, "num_uses": 0}


def _jwt_login(mount: str) -> dict[str, Any]:
    vault, body = _vault(), _body()
    vault.count("logins", "jwt")
    role_name = _field(body, "role").lower()
    if not role_name:
        raise VaultError(400, "missing role")
    role = vault.seed.roles.get(role_name)
    if role is None:
        raise VaultError(400, f'role "{role_name}" could not be found')
    token = _field(body, "jwt")
    if not token:
        raise VaultError(400, "missing token")
    try:
        claims = vjwt.verified_claims(token, role.keys, role.algs)
        vjwt.validate_claims(claims, role)
    except vjwt.InvalidToken as exc:
        raise VaultError(400, str(exc)) from None
    user = claims.get(role.user_claim)
    if user is None:
        raise VaultError(400, f'claim "{role.user_claim}" not found in token')
    if not isinstance(user, str):
        raise VaultError(400, f'claim "{role.user_claim}" could not be converted to string')
    meta = {"role": role.name}
    for source, target in role.claim_mappings.items():
        value = vjwt.claim(claims, source)
        if value is None:
            continue  # Vault leaves a missing mapped claim out of the metadata
        if not isinstance(value, str):
            raise VaultError(400, f"error converting claim '{source}' to string")
        meta[target] = value
    issued = vault.login(mount, user, role.policies, meta, role.ttl, user, f"auth/{mount}/login")
    return _envelope(auth=_auth_block(issued), mount_type="jwt")


def _userpass_login(mount: str, username: str) -> dict[str, Any]:
    vault, body = _vault(), _body()
    vault.count("logins", "userpass")
    if not NAME_PATTERN.fullmatch(username):
        raise VaultError(404, _multi("unsupported path"))  # Vault's route pattern does not match
    password = _field(body, "password")
    if not password:
        raise VaultError(500, _multi("missing password"))  # Vault returns this as an internal error
    name = username.lower()
    user = vault.seed.users.get(name)
    # Hash even for an unknown user so timing does not reveal which usernames exist.
    if not check_password(password, user.password_hash if user else vault.dummy_hash) or user is None:
        raise VaultError(400, "invalid username or password")
    issued = vault.login(mount, name, user.policies, {"username": name}, user.ttl, name,
                         f"auth/{mount}/login/{name}")
    return _envelope(auth=_auth_block(issued), mount_type="userpass")


def _health() -> tuple[dict[str, Any], int]:
    sealed = _vault().sealed
    body = {"initialized": True, "sealed": sealed, "standby": sealed, "performance_standby": False,
            "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()), "version": VERSION, "enterprise": False,
            "echo_duration_ms": 0, "clock_skew_ms": 0}
    if not sealed:
        body |= {"cluster_name": "vaultstub-cluster", "cluster_id": _vault().cluster_id}
    code = request.args.get("sealedcode" if sealed else "activecode", type=int)
    return body, code or (503 if sealed else 200)


def _lookup_self() -> dict[str, Any]:
    _vault().count("lookups")
    token = _caller()
    expires = token.expires()
    return _envelope(data={
        "accessor": token.accessor, "creation_time": int(token.issued), "creation_ttl": token.ttl,
        "display_name": token.display_name, "entity_id": token.entity_id,
        "expire_time": _rfc3339(expires) if expires else None, "explicit_max_ttl": 0, "id": token.id,
        "issue_time": _rfc3339(token.issued), "meta": token.meta, "num_uses": 0, "orphan": True,
        "path": token.path, "policies": token.policies, "renewable": bool(token.ttl),
        "ttl": max(int(expires - time.time()), 0) if expires else 0, "type": "service"}, mount_type="token")


def _read_entity(entity_id: str) -> dict[str, Any]:
    vault = _vault()
    vault.count("entity_reads")
    token = _caller()
    if not vault.may_read(token, f"identity/entity/id/{entity_id}"):
        raise VaultError(403, "permission denied")
    entity = vault.entity(entity_id)
    if entity is None:
        raise VaultError(404)  # Vault: a read of nothing is 404 with an empty errors list
    return _envelope(data={
        "aliases": entity["aliases"], "creation_time": entity["creation_time"], "direct_group_ids": [],
        "disabled": False, "group_ids": [], "id": entity["id"], "inherited_group_ids": [],
        "last_update_time": entity["last_update_time"], "merged_entity_ids": None,
        "metadata": entity["metadata"], "mfa_secrets": {}, "name": entity["name"], "namespace_id": "root",
        "policies": entity["policies"]}, mount_type="identity")


def _unrouted() -> Response:
    """Vault checks the token before routing: only root learns that a path does not exist."""
    if not request.path.startswith("/v1/"):
        return _error_response(VaultError(404))
    token = _vault().token(request.headers.get("X-Vault-Token") or _bearer())
    if token and "root" in token.policies:
        path = request.path.removeprefix("/v1/")
        return _error_response(VaultError(404, f'no handler for route "{path}". route entry not found.'))
    return _error_response(VaultError(403, "permission denied"))


def _error_response(exc: VaultError) -> Response:
    response = current_app.json.response({"errors": exc.errors})
    response.status_code = exc.status
    return response


def _register_routes(app: Flask) -> None:
    vault: Vault = app.extensions["vaultstub"]

    @app.get("/v1/sys/health")
    def health() -> tuple[dict[str, Any], int]:
        return _health()

    @app.get("/v1/sys/seal-status")
    def seal_status() -> dict[str, Any]:
        return {"type": "shamir", "initialized": True, "sealed": vault.sealed, "t": 1, "n": 1, "progress": 0,
                "nonce": "", "version": VERSION, "migration": False, "recovery_seal": False, "storage_type": "inmem"}

    @app.route("/v1/auth/<mount>/login", methods=["POST", "PUT"])
    def login(mount: str) -> dict[str, Any] | Response:
        if mount == vault.seed.jwt_mount:
            return _jwt_login(mount)
        if mount == vault.seed.userpass_mount:
            raise VaultError(404, _multi("unsupported path"))
        return _unrouted()

    @app.route("/v1/auth/<mount>/login/<path:username>", methods=["POST", "PUT"])
    def login_user(mount: str, username: str) -> dict[str, Any] | Response:
        if mount == vault.seed.userpass_mount:
            return _userpass_login(mount, username)
        if mount == vault.seed.jwt_mount:
            raise VaultError(404, _multi("unsupported path"))
        return _unrouted()

    @app.route("/v1/auth/token/lookup-self", methods=["GET", "POST"])
    def lookup_self() -> dict[str, Any]:
        return _lookup_self()

    @app.get("/v1/identity/entity/id/<entity_id>")
    def read_entity(entity_id: str) -> dict[str, Any]:
        return _read_entity(entity_id)

    @app.get("/v1/sys/stub/counters")
    def counters() -> dict[str, Any]:
        with vault.lock:
            return {"logins": dict(vault.counters["logins"]), "lookups": vault.counters["lookups"],
                    "entity_reads": vault.counters["entity_reads"]}

    @app.post("/v1/sys/stub/reset")
    def reset() -> tuple[str, int]:
        with vault.lock:
            vault.reset_counters()
            vault.sealed = False
        return "", 204

    @app.post("/v1/sys/stub/<any(seal, unseal):action>")
    def seal(action: str) -> tuple[str, int]:
        vault.sealed = action == "seal"
        return "", 204


def _register_hooks(app: Flask) -> None:
    vault: Vault = app.extensions["vaultstub"]

    @app.before_request
    def refuse_when_sealed() -> None:
        g.started = time.monotonic()
        path = request.path
        if vault.sealed and path.startswith("/v1/") and not path.startswith(_SEAL_EXEMPT):
            raise VaultError(503, "Vault is sealed")

    @app.after_request
    def log_request(response: Response) -> Response:
        # The route pattern, not the path: no usernames, ids or anything a caller typed.
        rule = request.url_rule.rule if request.url_rule else "(no route)"
        elapsed = (time.monotonic() - g.get("started", time.monotonic())) * 1000
        log.info("%s %s %d %.1fms", request.method, rule, response.status_code, elapsed)
        return response

    app.register_error_handler(VaultError, _error_response)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 404:
            return _unrouted()
        if exc.code == 405:
            return _error_response(VaultError(405, _multi("unsupported operation")))
        return _error_response(VaultError(exc.code or 500, exc.description or ""))

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _error_response(VaultError(500, _multi("internal error")))


def make_app(seed: dict[str, Any] | Seed) -> Flask:
    """A Flask app answering Vault's API from `seed` (a parsed seed document or a loaded `Seed`)."""
    app = Flask("vaultstub")
    app.json.sort_keys = False
    app.extensions["vaultstub"] = Vault(seed if isinstance(seed, Seed) else load_seed(seed))
    _register_routes(app)
    _register_hooks(app)
    return app


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's access log prints the raw request line; the app logs a redacted one instead."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class ServerHandle:
    """A running stub: where it listens, its state (for direct inspection) and how to stop it."""

    server: BaseWSGIServer
    thread: threading.Thread
    app: Flask

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def vault(self) -> Vault:
        return self.app.extensions["vaultstub"]

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def make_http_server(app: Flask, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """A threaded werkzeug server for `app`; port 0 picks a free one (read it from `.port`)."""
    return make_server(host, port, app, threaded=True, request_handler=_QuietHandler)


def serve_in_thread(seed: dict[str, Any] | Seed, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
    """Start the stub on a background thread; it accepts connections as soon as this returns."""
    app = make_app(seed)
    server = make_http_server(app, host, port)  # the socket is bound and listening here
    # A short poll interval only makes shutdown() return quickly; requests never wait on it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="vaultstub",
                              daemon=True)
    thread.start()
    return ServerHandle(server, thread, app)
