#!/usr/bin/env bash
# The main job on its embedded defaults, for now: start local SIP peers (Kamailio as registrar and
# proxy, a baresip softphone that answers and presses a key) and make one real robot call with
# `ringback call`, printing its outcome. Installs what it needs first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
