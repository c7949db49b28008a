"""`python -m vaultstub serve | init-demo | mint-jwt`: run the stub, seed the demo, mint JWTs."""

import argparse
import json
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from vaultstub import jwt as vjwt
from vaultstub.seed import hash_password, load_seed
from vaultstub.server import make_app, make_http_server

# The default roles of SPEC §4, one demo user each: username -> (client_id, role).
DEMO_USERS = {"admin": ("client-admin", "admin"), "service": ("client-service", "service"),
              "copytrust": ("client-copytrust", "copytrust_site")}
DEMO_FILES = ("jwt-signing-key.pem", "vault-seed.json", "demo-users.json", "gateway-token")


def serve(seed_path: Path, host: str, port: int) -> int:
    """Run until interrupted; one access line per request on stderr, never bodies or tokens."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s vaultstub %(message)s")
    try:
        app = make_app(json.loads(seed_path.read_text()))
    except (OSError, ValueError) as exc:  # SeedError and JSON errors are ValueErrors
        print(f"vaultstub: cannot use seed {seed_path}:\n{exc}", file=sys.stderr)
        return 2
    server = make_http_server(app, host, port)
    print(f"vaultstub listening on http://{host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def demo_seed(public_pem: str, passwords: dict[str, str], gateway_token: str) -> dict[str, Any]:
    """The local stack's seed: SPEC §4's JWT role `dynamic` and one userpass user per default role."""
    return {
        "tokens": [{"id": gateway_token, "policies": ["gateway-identity-read"]}],
        "policies": {"gateway-identity-read": ["identity/entity/id/*"], "noop-policy": []},
        "userpass": {"users": {name: {"password_hash": hash_password(pw), "policies": ["noop-policy"], "ttl": 3600}
                               for name, pw in passwords.items()}},
        "jwt": {"keys": [public_pem], "bound_issuer": "vault", "roles": {"dynamic": {
            "bound_audiences": ["job-gateway"], "user_claim": "sub",
            "claim_mappings": {"client_id": "client_id", "role": "client_role"},
            "policies": ["noop-policy"], "ttl": 3600}}},
        "entities": [{"name": name, "metadata": {"client_id": client_id, "role": role},
                      "aliases": [{"mount": "userpass", "name": name}, {"mount": "jwt", "name": name}]}
                     for name, (client_id, role) in DEMO_USERS.items()],
    }


def init_demo(out: Path) -> int:
    """Write the demo key, seed, passwords and gateway token once; a complete set is left alone."""
    present = [name for name in DEMO_FILES if (out / name).exists()]
    if len(present) == len(DEMO_FILES):
        print(f"vaultstub: {out} already holds a demo seed; nothing regenerated")
        return 0
    if present:
        print(f"vaultstub: {out} holds only {present}; remove them or complete the set", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    private_pem, public_pem = vjwt.new_key_pair()
    passwords = {name: secrets.token_urlsafe(18) for name in DEMO_USERS}
    gateway_token = "hvs." + secrets.token_urlsafe(24)
    seed = demo_seed(public_pem, passwords, gateway_token)
    load_seed(seed)  # never write a seed the server would refuse
    _write_secret(out / "jwt-signing-key.pem", private_pem)
    _write_secret(out / "demo-users.json", json.dumps(passwords, indent=2) + "\n")
    _write_secret(out / "gateway-token", gateway_token + "\n")
    _write_secret(out / "vault-seed.json", json.dumps(seed, indent=2) + "\n")
    print(f"vaultstub: wrote {', '.join(DEMO_FILES)} to {out}")
    return 0


def _write_secret(path: Path, text: str) -> None:
    """Owner-only from the first byte: these files hold keys, passwords and tokens."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def mint_jwt(args: argparse.Namespace) -> int:
    now = int(time.time())
    claims = {"iss": args.iss, "aud": args.aud, "sub": args.sub, "client_id": args.client_id,
              "role": args.role, "iat": now, "nbf": now, "exp": now + args.ttl}
    print(vjwt.mint(args.key.read_text(), claims))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaultstub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the Vault-compatible server")
    run.add_argument("--seed", type=Path, required=True)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8200)
    demo = commands.add_parser("init-demo", help="write a demo key pair, seed, passwords and gateway token")
    demo.add_argument("--out", type=Path, required=True)
    mint = commands.add_parser("mint-jwt", help="print an RS256 JWT for the demo role `dynamic`")
    mint.add_argument("--key", type=Path, required=True)
    mint.add_argument("--sub", required=True)
    mint.add_argument("--client-id", required=True)
    mint.add_argument("--role", required=True)
    mint.add_argument("--iss", default="vault")
    mint.add_argument("--aud", default="job-gateway")
    mint.add_argument("--ttl", type=int, default=3600)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.seed, args.host, args.port)
    if args.command == "init-demo":
        return init_demo(args.out)
    return mint_jwt(args)
