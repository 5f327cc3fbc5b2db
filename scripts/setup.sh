#!/usr/bin/env bash
# Install what ringback's tests need on Debian/Ubuntu, idempotently:
#   - the real SIP peers and tools: kamailio, sip-tester (sipp 3.6.1), baresip, espeak-ng,
#     sox, tshark (dumpcap);
#   - the Python venv in .venv with the project installed editable with its dev extras.
# Runs as root, or through sudo when not root. apt-get update runs at most once, and only
# when a package is missing. Set PYTHON to choose the interpreter for a new venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(kamailio sip-tester baresip espeak-ng sox tshark)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@" || sudo "$@"
    else
        echo "setup.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    # tshark asks whether non-root users may capture; answer "no" up front.
    echo "wireshark-common wireshark-common/install-setuid boolean false" \
        | as_root debconf-set-selections
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
else
    echo "setup.sh: system packages present (${PACKAGES[*]})"
fi

for bin in kamailio kamcmd sipp baresip dumpcap tshark espeak-ng sox; do
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
        echo "setup.sh: $bin still missing after install" >&2
        exit 1
    fi
done

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup.sh: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi

# Reinstall only when pyproject.toml changed since the last successful install.
stamp=.venv/.ringback-setup-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -e '.[dev]'
    echo "$want" > "$stamp"
else
    echo "setup.sh: .venv up to date"
fi
