#!/usr/bin/env bash
# Run the demo: a private Mosquitto, central with its console, one edge per area, the camera
# simulator and the scenario player, all playing configs/demo-site.yaml. Ctrl-C stops it all.
# Extra arguments go to `gridwatch demo` (see `gridwatch demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/gridwatch demo "$@"
