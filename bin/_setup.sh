# Shared by bin/start and bin/test: a virtualenv with the pinned requirements, and the services checked.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLOWNOVA_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
cd "$ROOT"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ensure_python() {
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "Python 3.11 or newer is needed (looked for '$python'; set PYTHON to choose another)." >&2
        exit 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "Python 3.11 or newer is needed; '$python' is $("$python" --version 2>&1)." >&2
        exit 1
    fi
    BASE_PYTHON="$python"
}

ensure_venv() {
    ensure_python
    if [ ! -x "$PY" ]; then
        say "Creating the virtualenv in $VENV"
        "$BASE_PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256"
    local want
    want="$(sha256sum requirements.txt | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing the pinned requirements (requirements.txt)"
        "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
        echo "$want" > "$stamp"
    fi
}

# The canvas bundle (React Flow editor and run view) from frontend/ into static/dist/. npm ci runs only when
# the lock file changed; the build itself takes under a second, so it always runs and can never be stale.
ensure_bundle() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "Node.js 18 or newer with npm is needed to build the canvas (frontend/); install it, e.g. 'apt-get install nodejs npm'." >&2
        exit 1
    fi
    local stamp="frontend/node_modules/.package-lock.sha256"
    local want
    want="$(sha256sum frontend/package-lock.json | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing the pinned front-end packages (frontend/package-lock.json)"
        npm ci --prefix frontend --no-audit --no-fund --loglevel=error
        echo "$want" > "$stamp"
    fi
    npm run --prefix frontend --silent build -- --quiet
}

preflight() {
    "$PY" manage.py preflight "$@"
}

# A PostgreSQL and a Redis of our own (flownova/embedded.py; data in the folder given) for each service that
# DATABASE_URL / REDIS_URL do not name and that nothing answers on its default address (FLOWNOVA_SERVICES=
# auto|embedded|external chooses). Their URLs are exported, so every process started from here uses them;
# they stop when this shell exits. EMBEDDED_SERVICES says whether any was started, EMBEDDED_REDIS_URL which Redis.
EMBEDDED_SERVICES=""
EMBEDDED_REDIS_URL=""
start_services() {
    local home="$1"
    shift
    local urls line
    urls="$("$PY" -m flownova.embedded start --home "$home" "$@")"
    [ -n "$urls" ] || return 0
    EMBEDDED_SERVICES="$home"
    trap stop_services EXIT
    while IFS= read -r line; do
        eval "export $line"
    done <<<"$urls"
    if [[ "$urls" == *REDIS_URL=* ]]; then
        EMBEDDED_REDIS_URL="$REDIS_URL"
    fi
}

stop_services() {
    say "Stopping the private PostgreSQL and Redis (data kept in $EMBEDDED_SERVICES)"
    "$PY" -m flownova.embedded stop --home "$EMBEDDED_SERVICES" || true
}
