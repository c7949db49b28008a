"""Configure a real HashiCorp Vault for the gateway, as SPEC §4 describes; safe to run again.

- userpass auth at `userpass/`, one user per entry of the users file, with the no-op policy;
- JWT auth at `jwt/` with static public keys and `bound_issuer`, role `dynamic` (user claim `sub`,
  bound audience, claim mappings client_id -> client_id and role -> client_role);
- an identity entity per user that has a client_id, with metadata {client_id, role} and an alias for
  its userpass login, so the gateway can read who a userpass user is;
- policies `noop-policy` (grants nothing) and `job-gateway`: read identity/entity/id/* (who a userpass
  user is) and the JWT mount's config and role (the keys, algorithms, issuer, audiences and leeways the
  gateway checks a bearer token against before Vault sees it);
- an orphan, renewable token with `job-gateway` for the gateway (`.secrets.json` vault.token).

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root or admin token> \\
    python -m deploy.vault_bootstrap --users users.json --jwt-public-key jwt.pub.pem --token-id-file gateway-token

users.json: {"alice": {"password": "...", "client_id": "client-alice", "role": "service"}, ...}
Passwords and tokens are never printed; the gateway token goes to --token-out (mode 0600).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import hvac
import requests
from hvac import exceptions as hvac_errors

NOOP_POLICY = 'path "sys/nothing" {\n  capabilities = ["deny"]\n}\n'
JWT_ROLE = "dynamic"
GATEWAY_POLICY_NAME = "job-gateway"
GATEWAY_POLICY = "".join(f'path "{path}" {{\n  capabilities = ["read"]\n}}\n' for path in (
    "identity/entity/id/*", "auth/jwt/config", f"auth/jwt/role/{JWT_ROLE}"))
CLAIM_MAPPINGS = {"client_id": "client_id", "role": "client_role"}


def bootstrap(client: hvac.Client, users: dict[str, dict[str, Any]], jwt_public_keys: list[str],
              issuer: str = "vault", audience: str = "job-gateway", log=print, token_id: str | None = None) -> str:
    """Apply the whole setup through `client` (a token allowed to configure Vault); return the
    gateway's token. With `token_id` the token gets that id (decided beforehand, so it can already
    sit in the gateway's .secrets.json); an existing token with that id is kept."""
    enabled = client.sys.list_auth_methods()
    enabled = enabled.get("data", enabled)
    for method in ("userpass", "jwt"):
        if f"{method}/" not in enabled:
            client.sys.enable_auth_method(method_type=method, path=method)
            log(f"enabled auth method {method}/")
    client.sys.create_or_update_policy(name="noop-policy", policy=NOOP_POLICY)
    client.sys.create_or_update_policy(name=GATEWAY_POLICY_NAME, policy=GATEWAY_POLICY)
    client.auth.jwt.configure(jwt_validation_pubkeys=jwt_public_keys, bound_issuer=issuer,
                              jwt_supported_algs=["RS256"], path="jwt")
    client.auth.jwt.create_role(name=JWT_ROLE, role_type="jwt", user_claim="sub", allowed_redirect_uris=[],
                                bound_audiences=[audience], claim_mappings=CLAIM_MAPPINGS,
                                token_policies=["noop-policy"], token_ttl="1h", path="jwt")
    log(f"jwt role {JWT_ROLE}: audience {audience}, issuer {issuer}, claim mappings {CLAIM_MAPPINGS}")
    accessor = _accessor(client, "userpass/")
    for name, user in users.items():
        client.auth.userpass.create_or_update_user(username=name, password=user["password"],
                                                   policies=["noop-policy"], mount_point="userpass")
        if user.get("client_id"):
            _entity(client, name, {"client_id": user["client_id"], "role": user["role"]}, accessor)
        log(f"user {name}: client_id {user.get('client_id') or '-'}, role {user.get('role') or '-'}")
    if token_id and _token_exists(client, token_id):
        log("the gateway's token already exists")
        return token_id
    token = client.auth.token.create(id=token_id, policies=[GATEWAY_POLICY_NAME], no_parent=True,
                                     renewable=True, ttl="768h", display_name="job-gateway")
    log(f"created the gateway's token (policy {GATEWAY_POLICY_NAME})")
    return token["auth"]["client_token"]


def _token_exists(client: hvac.Client, token_id: str) -> bool:
    try:
        client.auth.token.lookup(token_id)
        return True
    except (hvac_errors.Forbidden, hvac_errors.InvalidRequest, hvac_errors.InvalidPath):
        return False


def _accessor(client: hvac.Client, path: str) -> str:
    methods = client.sys.list_auth_methods()
    return methods.get("data", methods)[path]["accessor"]


def _entity(client: hvac.Client, name: str, metadata: dict[str, str], accessor: str) -> None:
    """The named entity with this metadata and an alias for the userpass login `name`."""
    client.secrets.identity.create_or_update_entity_by_name(name=name, metadata=metadata, policies=[])
    entity = client.secrets.identity.read_entity_by_name(name=name)["data"]
    if any(a["mount_accessor"] == accessor and a["name"] == name for a in entity.get("aliases") or []):
        return
    try:
        client.secrets.identity.create_or_update_entity_alias(name=name, canonical_id=entity["id"],
                                                              mount_accessor=accessor)
    except hvac_errors.InvalidRequest:
        # An alias made by an earlier login belongs to an auto-created entity: find it and move it.
        aliases = client.secrets.identity.list_entity_aliases()["data"]["key_info"]
        for alias_id, info in aliases.items():
            if info["mount_accessor"] == accessor and info["name"] == name:
                client.secrets.identity.update_entity_alias(alias_id=alias_id, name=name,
                                                            canonical_id=entity["id"], mount_accessor=accessor)


def wait_until_ready(url: str, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            if requests.get(f"{url}/v1/sys/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"vault_bootstrap: Vault at {url} not ready within {deadline_seconds:.0f}s")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.vault_bootstrap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=Path, required=True, help="JSON: username -> password, client_id, role")
    parser.add_argument("--jwt-public-key", type=Path, action="append", required=True)
    parser.add_argument("--issuer", default="vault")
    parser.add_argument("--audience", default="job-gateway")
    parser.add_argument("--token-out", type=Path, help="write the gateway's token here (mode 0600)")
    parser.add_argument("--token-id-file", type=Path, help="give the gateway's token the id in this file")
    args = parser.parse_args(argv)
    url, root = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if not url or not root:
        print("vault_bootstrap: set VAULT_ADDR and VAULT_TOKEN", file=sys.stderr)
        return 2
    wait_until_ready(url)
    client = hvac.Client(url=url, token=root, timeout=10)
    token_id = args.token_id_file.read_text().strip() if args.token_id_file else None
    token = bootstrap(client, json.loads(args.users.read_text()),
                      [key.read_text() for key in args.jwt_public_key], args.issuer, args.audience, token_id=token_id)
    if args.token_out:
        args.token_out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args.token_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        print(f"vault_bootstrap: gateway token written to {args.token_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
