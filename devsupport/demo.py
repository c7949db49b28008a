"""The local demo's Vault material (scripts/run-local.sh), generated once and kept across runs:

    python -m devsupport.demo init --out .run/vault

writes, each only if missing (owner-only where secret):
- users.json: one userpass user per default role (admin, service, copytrust, ops), random passwords, as
  deploy/vault_bootstrap.py reads it; a user missing from an existing file is added, the others kept;
- demo-users.json: username -> password, for the curl examples;
- jwt-signing-key.pem (mint demo tokens: `python -m devsupport.jwt --key .run/vault/jwt-signing-key.pem ...`)
  and jwt-public-key.pem (the JWT mount's `jwt_validation_pubkeys`);
- gateway-token: the id the bootstrap gives the gateway's Vault token;
- root-token: the id `bao server -dev` gives its root token.

Dev mode keeps Vault in memory, so run-local.sh configures it from these files on every start; keeping
them means passwords, tokens and minted JWTs stay valid from one start to the next.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

# USERS, username -> (client_id, role): one user per role of the default configuration (`ops` may use
# the ops API and submit nothing), the same users compose's Vault gets.
from deploy.compose_init import USERS
from devsupport import jwt as devjwt


def _write(path: Path, text: str, secret: bool = True) -> bool:
    """Create `path` with `text` unless it exists; True if written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def init(out: Path) -> list[str]:
    """Generate whatever is missing in `out`; the names of the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if not (out / "jwt-signing-key.pem").exists():
        private, public = devjwt.new_key_pair()
        (out / "jwt-public-key.pem").unlink(missing_ok=True)  # a public key must match its private key
        _write(out / "jwt-signing-key.pem", private)
        _write(out / "jwt-public-key.pem", public, secret=False)
        written += ["jwt-signing-key.pem", "jwt-public-key.pem"]
    users = json.loads((out / "users.json").read_text()) if (out / "users.json").exists() else {}
    missing = {name: {"password": secrets.token_urlsafe(15), "client_id": client_id, "role": role}
               for name, (client_id, role) in USERS.items() if name not in users}
    if missing:  # a new folder, or one from before a user was added (ops): existing passwords are kept
        users |= missing
        (out / "users.json").unlink(missing_ok=True)
        (out / "demo-users.json").unlink(missing_ok=True)  # derived from users.json, below
        _write(out / "users.json", json.dumps(users, indent=2) + "\n")
        written.append("users.json")
    if _write(out / "demo-users.json", json.dumps({name: user["password"] for name, user in users.items()},
                                                  indent=2) + "\n"):
        written.append("demo-users.json")
    # Vault token ids: no "." (OpenBao reserves it for its own token formats).
    for name in ("gateway-token", "root-token"):
        if _write(out / name, secrets.token_urlsafe(24) + "\n"):
            written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devsupport.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    init_parser = commands.add_parser("init", help="generate the demo's Vault material (missing files only)")
    init_parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    written = init(args.out)
    print(f"demo: wrote {', '.join(written)} in {args.out}" if written else f"demo: keeping {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
