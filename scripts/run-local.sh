#!/usr/bin/env bash
# The whole stack on this machine: redis (unless one answers on 6379), the Vault-compatible demo
# server seeded with one user per role, one Celery worker per queue, and the gateway on port 8000.
# Ctrl-C stops everything it started. Files it generates live in .run/ (git-ignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

RUN="$ROOT/.run"
PORT="${GATEWAY_PORT:-8000}"
REDIS_PORT="${REDIS_PORT:-6379}"
VAULT_PORT="${VAULT_PORT:-8200}"
mkdir -p "$RUN" "$ROOT/logs"
pids=()
cleanup() { trap - EXIT INT TERM; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

wait_for() {  # wait_for "what" command...: poll with a deadline, never a blind sleep
  local what="$1"; shift
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "run-local: $what did not come up; see $RUN/*.log" >&2; exit 1
}
redis_up() { "$PY" -c "import redis,sys; redis.Redis(port=$REDIS_PORT, socket_connect_timeout=0.5).ping()"; }
http_ok() { "$PY" -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1"; }

if redis_up; then
  echo "redis: using the one already answering on 127.0.0.1:$REDIS_PORT"
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no > "$RUN/redis.log" 2>&1 &
  pids+=($!); wait_for "redis" redis_up; echo "redis: started on 127.0.0.1:$REDIS_PORT"
fi

# Demo Vault: keys, users and the gateway's token are generated once into .run/vault.
"$PY" -m vaultstub init-demo --out "$RUN/vault" >/dev/null
"$PY" -m vaultstub serve --seed "$RUN/vault/vault-seed.json" --host 127.0.0.1 --port "$VAULT_PORT" > "$RUN/vault.log" 2>&1 &
pids+=($!); wait_for "vault stand-in" http_ok "http://127.0.0.1:$VAULT_PORT/v1/sys/health"

export GATEWAY_CONFIG="${GATEWAY_CONFIG:-$( [ -f config.json ] && echo "$ROOT/config.json" || echo "$ROOT/config.example.json")}"
if [ -z "${GATEWAY_SECRETS:-}" ]; then
  if [ -f .secrets.json ]; then export GATEWAY_SECRETS="$ROOT/.secrets.json"; else
    printf '{"vault": {"token": "%s"}}\n' "$(cat "$RUN/vault/gateway-token")" > "$RUN/secrets.json"
    export GATEWAY_SECRETS="$RUN/secrets.json"
  fi
fi
export GATEWAY__QUEUE__URL="${GATEWAY__QUEUE__URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export GATEWAY__VAULT__URL="${GATEWAY__VAULT__URL:-http://127.0.0.1:$VAULT_PORT}"

for queue in hash images webhooks; do
  "$VENV/bin/celery" -A tasks worker -Q "$queue" -n "$queue@%h" --loglevel INFO > "$RUN/worker-$queue.log" 2>&1 &
  pids+=($!)
done
"$VENV/bin/gunicorn" wsgi:app --bind "0.0.0.0:$PORT" > "$RUN/gateway.log" 2>&1 &
pids+=($!); wait_for "gateway" http_ok "http://127.0.0.1:$PORT/health"

cat <<MSG

Job gateway is up: http://127.0.0.1:$PORT   (logs: .run/*.log and logs/gateway.log)
Demo users (password file .run/vault/demo-users.json): admin, service, copytrust

  PW=\$($PY -c 'import json;print(json.load(open(".run/vault/demo-users.json"))["admin"])')
  curl -s -u admin:\$PW -H 'Content-Type: application/json' \\
       -d '{"type": "calc_hash", "upload": {"content": "aGVsbG8="}}' http://127.0.0.1:$PORT/submit
  curl -s -u admin:\$PW 'http://127.0.0.1:$PORT/taskinfo?taskid=<uuid from above>'

A JWT instead of a password:
  TOKEN=\$($PY -m vaultstub mint-jwt --key .run/vault/jwt-signing-key.pem --sub svc-1 --client-id client-jwt --role service)
  curl -s -H "Authorization: Bearer \$TOKEN" 'http://127.0.0.1:$PORT/taskinfo?taskid=<uuid>'

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "run-local: a process exited; stopping the stack (see .run/*.log)" >&2
