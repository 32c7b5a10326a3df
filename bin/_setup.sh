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
        pip_install -r requirements.txt
        echo "$want" > "$stamp"
    fi
}

# pip is silent for minutes with --quiet and prints a screenful without it: its output goes to a log, and the
# terminal gets a counter (one line rewritten in place; a line per ten packages when it is not a terminal).
# On failure the log's last lines are shown.
pip_install() {
    local log="$ROOT/.flownova/pip-install.log" total tty=0
    mkdir -p "$ROOT/.flownova"
    total="$(grep -cE '^[A-Za-z0-9]' requirements.txt || true)"
    [ -t 1 ] && tty=1
    if ! "$PY" -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 | tee "$log" | pip_progress "$total" "$tty"; then
        [ "$tty" = 1 ] && printf '\n'
        echo "pip could not install the requirements; its last lines (all of them in $log):" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

# Reads pip's output; shows "[n/total] package" as each requirement is collected or found installed.
pip_progress() {
    awk -v total="$1" -v tty="$2" '
        function show(name) {
            if (n >= total) return  # dependencies pip finds beyond the file (setuptools...) do not count
            n++
            if (tty) { printf "\r\033[K    [%d/%d] %s", n, total, name }
            else if (n % 10 == 0 || n == total) { printf "    [%d/%d] %s\n", n, total, name }
            fflush()
        }
        /^Collecting / { show($2); next }
        /^Requirement already satisfied: / { show($4); next }
        /^Installing collected packages/ {
            if (tty) { printf "\r\033[K" }
            printf "    installing...\n"
            fflush()
        }
        /^Successfully installed/ { printf "    installed.\n"; fflush() }
        END { if (tty && n) { printf "\r\033[K" } }
    '
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

# In the background: once /readyz answers ok, one line with the address to open and the demo login. Honcho's
# Ctrl-C reaches it too (same process group); it gives up, saying so, after FLOWNOVA_READY_WAIT seconds.
announce_when_ready() {
    "$PY" - "$1" "$2" "${FLOWNOVA_READY_WAIT:-300}" "$ROOT/.flownova/demo-credentials.json" <<'PYTHON' &
import json, sys, time, urllib.error, urllib.request

host, port, wait, credentials = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
if host in ("0.0.0.0", "::", "[::]", ""):
    host = "127.0.0.1"  # bound to every address: this machine's own is one of them
url = f"http://{host}:{port}/"
deadline = time.monotonic() + wait
status = "no answer"
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url + "readyz", timeout=5) as response:
            status = json.load(response).get("status", "?")
    except urllib.error.HTTPError as exc:
        status = json.load(exc).get("status", exc.code) if exc.headers.get_content_type() == "application/json" else exc.code
    except (OSError, ValueError):
        status = "no answer"
    if status == "ok":
        try:
            login = json.load(open(credentials))
            who = f"log in as {login['username']} / {login['password']}"
        except (OSError, ValueError, KeyError):
            who = "log in with your account"
        print(f"\033[1;32m==> FlowNova is ready: open {url} and {who}\033[0m", flush=True)
        sys.exit(0)
    time.sleep(1)
print(f"\033[1;31m==> FlowNova is not ready after {wait:.0f} s (readyz: {status}); see {url}readyz\033[0m", flush=True)
PYTHON
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
