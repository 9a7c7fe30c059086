"""Which host a model source makes modelport connect to, and the allowed-hosts list."""

from __future__ import annotations

from modelport.models.egress import allowed_hosts, egress_refusal, source_host
from modelport.models.sources import parse_source

HUB = parse_source("acme/chat")
S3 = parse_source("s3://weights/chat")
LOCAL = parse_source("/models/chat")


def test_each_source_kind_names_its_host() -> None:
    assert source_host(HUB, {}) == "huggingface.co"
    assert (
        source_host(HUB, {"HF_ENDPOINT": "https://hf-mirror.eu.internal:8443/"})
        == "hf-mirror.eu.internal:8443"
    )
    assert source_host(S3, {}) == "s3.amazonaws.com"
    assert (
        source_host(S3, {"MODELPORT_S3_ENDPOINT_URL": "http://minio.internal:9000"}) == "minio.internal:9000"
    )
    assert (
        source_host(S3, {"AWS_ENDPOINT_URL": "https://s3.eu-central-1.example"}) == "s3.eu-central-1.example"
    )
    assert source_host(LOCAL, {}) is None


def test_without_a_list_every_host_is_allowed() -> None:
    assert allowed_hosts({}) is None and allowed_hosts({"MODELPORT_ALLOWED_HOSTS": " , "}) is None
    assert egress_refusal(HUB, {}) is None


def test_a_source_off_the_list_is_refused_with_what_to_do() -> None:
    env = {"MODELPORT_ALLOWED_HOSTS": "minio.internal:9000, HF-Mirror.eu.internal"}
    assert allowed_hosts(env) == {"minio.internal:9000", "hf-mirror.eu.internal"}
    refusal = egress_refusal(HUB, env)
    assert refusal is not None and "huggingface.co" in refusal and "MODELPORT_ALLOWED_HOSTS" in refusal
    assert egress_refusal(S3, {**env, "MODELPORT_S3_ENDPOINT_URL": "http://minio.internal:9000"}) is None
    assert egress_refusal(S3, {**env, "MODELPORT_S3_ENDPOINT_URL": "http://minio.internal:9001"}) is not None
    # a listed bare host allows any port on it
    assert egress_refusal(HUB, {**env, "HF_ENDPOINT": "https://hf-mirror.eu.internal:8443"}) is None
    assert egress_refusal(LOCAL, env) is None
