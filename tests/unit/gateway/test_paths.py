"""Which routes an endpoint URL forwards to a replica (gateway/paths.py)."""

from __future__ import annotations

import pytest

from modelport.gateway.paths import check_forwarded
from modelport.protocol.errors import APIError


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/tiny"),
        ("GET", "/v1/models/org/name-1.5B"),
        ("POST", "/generate"),
        ("POST", "/generate_stream"),
        ("POST", "/"),
        ("GET", "/info"),
        ("GET", "/health"),
        ("POST", "/embed"),
        ("POST", "/similarity"),
        ("POST", "/rerank"),
    ],
)
def test_inference_routes_are_forwarded(method: str, path: str) -> None:
    check_forwarded(method, path)


@pytest.mark.parametrize(
    "path",
    [
        "/sleep",
        "/wake_up",
        "/collective_rpc",
        "/v1/load_lora_adapter",
        "/reset_prefix_cache",
        "/metrics",
        "/v1/chat/completions/../../sleep",
        "/v1/models/../sleep",
        "/v1/models/..",
        "/v1/models/a/../../sleep",
        "/v1/models/./x",
        "//sleep",
        "/v1//chat/completions",
        "/generate/",
        "/v1/models/a/b/c",
        "/v1/models/a%2Fb",
    ],
)
def test_everything_else_is_a_404(path: str) -> None:
    with pytest.raises(APIError) as err:
        check_forwarded("POST", path)
    assert err.value.status == 404


def test_a_known_route_with_another_method_is_a_405() -> None:
    with pytest.raises(APIError) as err:
        check_forwarded("GET", "/v1/chat/completions")
    assert err.value.status == 405 and "POST" in err.value.message
    with pytest.raises(APIError):
        check_forwarded("DELETE", "/v1/models")
