#!/usr/bin/env bash
# The bench of issue 5 in one command: ./bench/run.sh [--duration 15] [--memory-submissions 100000] ...
# Installs what it needs (redis-server and the venv via scripts/bootstrap.sh, wrk from apt, py-spy from
# bench/requirements.txt), then runs `python -m bench`, which starts and stops its own isolated stack.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/bootstrap.sh"
cd "$ROOT"

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
fi
bench_stamp="$VENV/.bench-requirements.sha256"
bench_want="$(sha256sum bench/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$bench_stamp" 2>/dev/null)" != "$bench_want" ]; then
  echo "bench: installing bench/requirements.txt into $VENV" >&2
  "$PY" -m pip install -q --disable-pip-version-check -r bench/requirements.txt
  echo "$bench_want" > "$bench_stamp"
fi

export BENCH_COMMAND="./bench/run.sh"
exec "$PY" -m bench "$@"
