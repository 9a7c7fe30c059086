"""The routes an endpoint URL forwards to a replica: an allow-list, never "the rest of the URL".

Engines serve more than inference on their port: vLLM's development routes (`/sleep`,
`/collective_rpc`, `/v1/load_lora_adapter`, profiling), its `/metrics`, a custom server's
admin pages. Those are for the control plane, which calls them on the replica's own address;
a caller of the endpoint URL reaches only the inference APIs below (OpenAI, TGI, TEI, the HF
task route and health/info), whatever engine serves them. Matching is exact on the decoded
path, so `..`, `//` or percent-encoded tricks never match and never reach the replica.
"""

from __future__ import annotations

import re

from modelport.protocol.errors import APIError

_GET = frozenset({"GET", "HEAD"})
_POST = frozenset({"POST"})

FORWARDED: dict[str, frozenset[str]] = {
    # OpenAI (and the OpenAI-style routes vLLM, llama.cpp, TGI and TEI serve)
    "/v1/models": _GET,
    "/v1/chat/completions": _POST,
    "/v1/completions": _POST,
    "/v1/embeddings": _POST,
    "/v1/responses": _POST,
    "/v1/rerank": _POST,
    "/v1/score": _POST,
    "/v1/audio/transcriptions": _POST,
    "/v1/audio/translations": _POST,
    "/v1/images/generations": _POST,
    # TGI and the HF task route
    "/": _POST,
    "/generate": _POST,
    "/generate_stream": _POST,
    "/tokenize": _POST,
    "/info": _GET,
    "/health": _GET,
    # TEI
    "/embed": _POST,
    "/embed_all": _POST,
    "/embed_sparse": _POST,
    "/similarity": _POST,
    "/rerank": _POST,
    "/predict": _POST,
}
# GET /v1/models/{id}: a model id of the shapes clients send (`name`, `org/name`), no dot-only
# segment (which an HTTP client would collapse into another route)
_MODEL = re.compile(r"^/v1/models/(?!\.{1,2}(?:/|$))[A-Za-z0-9_.:-]+(?:/(?!\.{1,2}$)[A-Za-z0-9_.:-]+)?$")


def check_forwarded(method: str, path: str) -> None:
    """Raise the API error for a route the gateway does not forward (404), or a known route
    called with another method (405)."""
    methods = FORWARDED.get(path)
    if methods is None and _MODEL.match(path):
        methods = _GET
    if methods is None:
        raise APIError(404, f"no route {path} on this endpoint", code="not_found", error_type="not_found")
    if method not in methods:
        raise APIError(
            405,
            f"{path} takes {' or '.join(sorted(methods))}, not {method}",
            code="method_not_allowed",
            error_type="validation",
        )
