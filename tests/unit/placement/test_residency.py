"""Placement by region and source host, checked before an endpoint is stored."""

from __future__ import annotations

from typing import Any

from modelport.placement.residency import placement_refusal, with_default_region
from modelport.spec.endpoint import EndpointSpec

ALLOW = {"MODELPORT_ALLOWED_HOSTS": "hf-mirror.eu.internal"}


def spec(body: dict[str, Any]) -> EndpointSpec:
    return EndpointSpec.model_validate({"name": "chat", **body}, context={"check_paths": False})


def test_a_create_without_a_region_gets_the_installations() -> None:
    assert with_default_region({"name": "x"}, "eu-west-1")["provider"] == {"region": "eu-west-1"}
    body = {"name": "x", "provider": {"vendor": "local"}}
    assert with_default_region(body, "eu-west-1")["provider"] == {"vendor": "local", "region": "eu-west-1"}
    given = {"name": "x", "provider": {"region": "us-east-1"}}
    assert with_default_region(given, "eu-west-1") is given


def test_another_region_is_refused_naming_both() -> None:
    refused = placement_refusal(spec({"model": {"repository": "/m"}, "provider": {"region": "us-east-1"}}),
                                "eu-west-1", {})  # fmt: skip
    assert refused is not None
    field, why = refused
    assert field == "provider.region" and "'eu-west-1'" in why and "'us-east-1'" in why


def test_a_source_off_the_allowed_hosts_is_refused_and_secrets_may_name_the_endpoint() -> None:
    here = {"provider": {"region": "eu-west-1"}}
    hub = spec({"model": {"repository": "acme/chat"}, **here})
    refused = placement_refusal(hub, "eu-west-1", ALLOW)
    assert refused is not None and refused[0] == "model.repository" and "huggingface.co" in refused[1]
    mirrored = spec({"model": {"repository": "acme/chat", "env": {"HF_ENDPOINT": "https://hf-mirror.eu.internal"}},
                     **here})  # fmt: skip
    assert placement_refusal(mirrored, "eu-west-1", ALLOW) is None
    s3 = spec({"model": {"repository": "s3://w/chat", "secrets": {"MODELPORT_S3_ENDPOINT_URL": "http://x:9000"}},
               **here})  # fmt: skip
    assert placement_refusal(s3, "eu-west-1", {"MODELPORT_ALLOWED_HOSTS": "x:9000"}) is None
    custom = spec(
        {
            "model": {
                "repository": "acme/chat",
                "image": {"custom": {"command": ["srv", "--port", "{port}"]}},
            },
            **here,
        }
    )
    assert placement_refusal(custom, "eu-west-1", ALLOW) is None  # modelport fetches nothing for it
