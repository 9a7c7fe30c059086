#!/usr/bin/env bash
# Install with test extras, then lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh test
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
