#!/usr/bin/env bash
# The test command of the README: the whole suite with the compiled core,
# then again on the pure-Python reference kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q "$@"
WEDMETRICS_PUREPYTHON=1 python -m pytest -q "$@"
