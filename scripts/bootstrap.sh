# Sourced by scripts/test.sh, scripts/run-local.sh and the other scripts: installs what a fresh machine lacks.
# A fresh machine has Python, pip and apt; this adds redis-server, nginx, promtool and nodejs (apt) and a
# virtualenv with the pinned requirements in .venv. Safe to run again: each step is skipped when already
# done. BOOTSTRAP_APT names the apt packages the caller runs (default: all four, what the tests run;
# run-local.sh runs only redis-server, so it sets "redis-server"; compose-init.sh runs none, so it sets "").
set -euo pipefail
BOOTSTRAP_APT="${BOOTSTRAP_APT-redis-server nginx prometheus nodejs}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GATEWAY_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_redis_server() {
  command -v redis-server >/dev/null 2>&1 && return 0
  echo "bootstrap: installing redis-server (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
}

# The tests put a real nginx in front of gunicorn (tests/test_nginx.py), as production does. Debian
# keeps it in /usr/sbin, which is not on every user's PATH. Where systemd runs, the package also starts
# its own default site on port 80 (`systemctl disable --now nginx` if unwanted); nothing here uses it.
ensure_nginx() {
  { command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null 2>&1 && return 0
  echo "bootstrap: installing nginx (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx >/dev/null
}

# The tests check the alert rules with promtool (tests/test_monitoring.py: `promtool check rules`,
# `promtool test rules`), which Debian ships in its `prometheus` package, in /usr/bin. The package is a
# whole Prometheus server too (without its recommended node exporter here); where systemd runs, it would
# start it on port 9090, so it is stopped and disabled: nothing here uses it.
ensure_promtool() {
  { command -v promtool || [ -x /usr/bin/promtool ]; } >/dev/null 2>&1 && return 0
  echo "bootstrap: installing promtool (apt: prometheus)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

# The reference HTTP worker (examples/node-worker/) runs under `node` in the tests and the fault suite.
ensure_nodejs() {
  command -v node >/dev/null 2>&1 && return 0
  echo "bootstrap: installing nodejs (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs >/dev/null
}

ensure_venv() {
  local stamp="$VENV/.requirements.sha256"
  local want
  want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/client/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ -x "$PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  echo "bootstrap: installing Python requirements into $VENV" >&2
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
  echo "$want" > "$stamp"
}

# The client library and its `jobgw` command (client/), installed as a user would (`pip install ./client`,
# not editable, so the tests exercise the package as built). Installed again whenever a file of it changes;
# its dependencies are pinned in requirements-dev.txt, installed first.
ensure_client() {
  local stamp="$VENV/.client.sha256"
  local want
  want="$(cd "$ROOT" && find client -type f \( -name '*.py' -o -name '*.toml' -o -name 'py.typed' -o -name '*.md' \) \
          -not -path 'client/build/*' -not -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  echo "bootstrap: installing the client library (pip install ./client) into $VENV" >&2
  "$PY" -m pip install -q --disable-pip-version-check "$ROOT/client"
  echo "$want" > "$stamp"
}

for _package in $BOOTSTRAP_APT; do
  case "$_package" in
    redis-server) ensure_redis_server ;;
    nginx) ensure_nginx ;;
    prometheus) ensure_promtool ;;
    nodejs) ensure_nodejs ;;
    *) echo "bootstrap: unknown package in BOOTSTRAP_APT: $_package" >&2; exit 2 ;;
  esac
done
ensure_venv
ensure_client
