#!/usr/bin/env bash
# Install with test extras, then lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh test
# The store's tests run against a real PostgreSQL server (tests/support/postgres.py starts a throwaway one).
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports  # the layers declared in pyproject.toml, drawn in docs/architecture.md
.venv/bin/python -m pytest -q "$@"
