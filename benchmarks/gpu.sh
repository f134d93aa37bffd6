#!/usr/bin/env bash
# The GPU check in one command (python -m benchmarks.gpu; its docstring says what it runs and writes):
#   benchmarks/gpu.sh OUT_DIR [--dry-run] [--tiny | --full] [--budget-s 540] [--steps N] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" -m benchmarks.gpu "$@"
