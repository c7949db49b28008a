#!/usr/bin/env bash
# Before the first `docker compose up`: generate the demo users, the JWT key pair, the gateway's Vault
# token id and the config files compose mounts. Existing files are kept. Uses the project venv.
set -euo pipefail
BOOTSTRAP_APT=""  # only the venv: compose runs its redis and nginx in containers; nothing here runs either
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec "$PY" -m deploy.compose_init "$@"
