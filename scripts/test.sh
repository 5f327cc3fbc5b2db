#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint (ruff), type-check (mypy) and test (pytest).
# Arguments go to pytest, e.g. scripts/test.sh -m peers -x. Runs every step and exits
# non-zero if any of them failed.
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
step .venv/bin/pytest "$@"

exit "$status"
