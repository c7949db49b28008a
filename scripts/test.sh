#!/usr/bin/env bash
# The test command: installs what it needs, then runs the whole suite against a real redis-server,
# real Celery workers and gunicorn, all started by the test session. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec "$PY" -m pytest "$@"
