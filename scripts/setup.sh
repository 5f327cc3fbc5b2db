#!/usr/bin/env bash
# Install what ringback's tests need on Debian/Ubuntu, idempotently:
#   - the real SIP peers and tools: kamailio, sip-tester (sipp 3.6.1), baresip, espeak-ng,
#     sox, tshark (dumpcap);
#   - chromium, for the web pages' tests (Playwright drives /usr/bin/chromium: no browser
#     download);
#   - PostgreSQL for the database tests: the Debian cluster started, and the local `postgres`
#     user trusted over the unix socket (tests connect as postgres@/var/run/postgresql);
#   - the Python venv in .venv with the project installed editable with its dev extras.
# Runs as root, or through sudo when not root. apt-get update runs at most once, and only
# when a package is missing. Set PYTHON to choose the interpreter for a new venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(kamailio sip-tester baresip espeak-ng sox tshark postgresql php-cli chromium)

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

# PostgreSQL: the newest installed major version's `main` cluster, running, with the local
# postgres user trusted over the unix socket (Debian's default is peer, which only lets the
# postgres OS user in). A test-machine setting: never copy it to a production server.
pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
pg_hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
pg_cluster() {  # pg_cluster [STATUS]: does the main cluster exist (with that status)?
    pg_lsclusters -h | awk -v v="$pg_version" -v s="${1:-}" \
        '$1 == v && $2 == "main" && (s == "" || $4 ~ "^" s) { found = 1 } END { exit !found }'
}
pg_trusted() {
    as_root grep -Eq '^local[[:space:]]+all[[:space:]]+postgres[[:space:]]+trust' "$pg_hba"
}
if ! pg_cluster; then
    echo "setup.sh: creating the PostgreSQL $pg_version main cluster"
    as_root pg_createcluster "$pg_version" main
fi
if ! pg_trusted; then
    echo "setup.sh: trusting the local postgres user in $pg_hba"
    as_root sed -i -E 's/^(local[[:space:]]+all[[:space:]]+postgres[[:space:]]+)peer/\1trust/' \
        "$pg_hba"
    pg_trusted || as_root sed -i '1i local all postgres trust' "$pg_hba"
    if pg_cluster online; then
        as_root pg_ctlcluster "$pg_version" main reload
    fi
fi
if ! pg_cluster online; then
    echo "setup.sh: starting PostgreSQL $pg_version main"
    as_root pg_ctlcluster "$pg_version" main start
fi
for _ in $(seq 1 30); do
    pg_isready -q -h /var/run/postgresql && break
    sleep 1
done
if ! pg_isready -q -h /var/run/postgresql; then
    echo "setup.sh: PostgreSQL is not accepting connections on /var/run/postgresql" >&2
    exit 1
fi
echo "setup.sh: PostgreSQL $pg_version running"

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
