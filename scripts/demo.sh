#!/usr/bin/env bash
# The CSAT loop on the embedded defaults (scripts/demo.py): Kamailio as registrar and proxy, a
# baresip softphone that answers and presses a key, a local CRM receiver and `ringback serve`;
# everything it starts ends with it. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
