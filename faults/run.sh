#!/usr/bin/env bash
# The fault suite (issue 13): installs what it needs like the tests, then runs the scenarios
# (`--help` lists the options; no argument = the quick ones). Traffic stays on 127.0.0.1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/bootstrap.sh"
cd "$ROOT"
exec "$PY" -m faults "$@"
