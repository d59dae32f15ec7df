#!/usr/bin/env bash
# The whole check a contributor and CI run: set-up (idempotent), lint, types, then the test suite
# against real services (Mosquitto, VictoriaMetrics, PostgreSQL, RTSP, headless Chromium).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/config -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check .
echo "== mypy"
mypy gridwatch drivers edge central simulators

echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here, not a success" >&2
  exit 1
fi
exit $rc
