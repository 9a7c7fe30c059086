#!/usr/bin/env bash
# Install, build the offline demo model, serve it, and ask it one question.
# The server keeps running in the foreground afterwards (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh embeddings
export HF_HUB_OFFLINE=1
port="${PORT:-8080}"
model_dir=$(.venv/bin/modelport demo build)
echo "demo model: $model_dir"
.venv/bin/modelport serve "$model_dir" --port "$port" --served-model-name demo &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $server 2>/dev/null || { echo "the server exited; see the log above" >&2; exit 1; }
  sleep 1
done
echo "--- POST /v1/chat/completions (random weights: the words are noise, the API is real)"
curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model": "demo", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}'
echo
echo "--- the model is answering on http://127.0.0.1:$port (OpenAI base_url http://127.0.0.1:$port/v1)"
wait $server
