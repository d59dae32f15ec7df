#!/usr/bin/env bash
# Benchmarks: every figure of ours next to the raw limit measured in the same run.
# `scripts/bench.sh` runs all sections; `scripts/bench.sh drivers vision` only those.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
exec .venv/bin/python -m bench.run "$@"
