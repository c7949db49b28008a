#!/usr/bin/env bash
# The test command: installs what it needs, checks the code's shape (ruff; import-linter's layer
# contracts in .importlinter; the mypy type checker, configured in mypy.ini), then runs the whole suite
# against a real redis-server, a real OpenBao, real Celery workers and gunicorn, all started by the test
# session. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
"$VENV/bin/ruff" check --quiet .
"$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache
"$VENV/bin/mypy" --no-error-summary >/dev/null || "$VENV/bin/mypy"
exec "$PY" -m pytest "$@"
