#!/usr/bin/env bash
# Install, then `modelport up`: the control plane, the gateway and an offline demo endpoint.
# Asks the demo endpoint one question through its URL, then keeps running (Ctrl-C stops it all).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh embeddings
export HF_HUB_OFFLINE=1
port="${PORT:-8000}"
.venv/bin/modelport up --port "$port" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT INT TERM
token_file="${MODELPORT_DATA_DIR:-$HOME/.cache/modelport}/admin-token"
url="http://127.0.0.1:$port/endpoints/default/demo"
for _ in $(seq 1 180); do
  if [ -f "$token_file" ] && curl -sf -H "authorization: Bearer $(cat "$token_file")" "$url/health" >/dev/null; then
    break
  fi
  kill -0 $server 2>/dev/null || { echo "modelport up exited; see the log above" >&2; exit 1; }
  sleep 1
done
token=$(cat "$token_file")
echo "--- POST $url/v1/chat/completions (random weights: the words are noise, the API is real)"
curl -s "$url/v1/chat/completions" -H 'content-type: application/json' -H "authorization: Bearer $token" \
  -d '{"model": "demo", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}'
echo
echo "--- endpoints (modelport endpoints list):"
.venv/bin/modelport endpoints list --url "http://127.0.0.1:$port" || true
echo "--- the demo endpoint answers on $url (OpenAI base_url $url/v1; token in $token_file)"
wait $server
