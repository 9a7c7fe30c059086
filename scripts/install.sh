#!/usr/bin/env bash
# Create .venv and install modelport into it. Installs torch==2.13.0 first only when no torch
# is importable, so a GPU machine keeps its own CUDA build and a CPU machine never pulls CUDA
# wheels (the project's own torch requirement is a range 2.13.0 satisfies).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install -q torch==2.13.0
fi
"$py" -m pip install -q -e ".${extras:+[$extras]}"
if [ "$extras" = "test" ]; then
  # The TGI client pins huggingface_hub<1.0, which breaks transformers 5; it works without that pin.
  "$py" -m pip install -q --no-deps text-generation
fi
