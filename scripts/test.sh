#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint (ruff), type-check (mypy) and test (pytest).
# Arguments go to pytest, e.g. scripts/test.sh -m peers -x. Runs every step and exits
# non-zero if any of them failed. Tests run in parallel, a file per worker at a time (each peer
# on its own ports: lab/ports.py); RINGBACK_TEST_WORKERS sets how many (default 3, 1 = serial).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh || { echo "test.sh: setup failed" >&2; exit 1; }

# 1,000 calls need 1,000+ RTP sockets; raise the descriptor limit when allowed.
if ! ulimit -n 20000 2>/dev/null; then
    echo "test.sh: could not raise ulimit -n to 20000 (now $(ulimit -n))" >&2
fi

status=0
step() {
    echo "=== $*"
    "$@"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "=== FAILED ($rc): $*" >&2
        status=1
    fi
}

step .venv/bin/ruff check .
step .venv/bin/mypy
workers="${RINGBACK_TEST_WORKERS:-3}"
if [ "$workers" -gt 1 ]; then
    step .venv/bin/pytest -n "$workers" --dist loadfile "$@"
else
    step .venv/bin/pytest "$@"
fi

exit "$status"
