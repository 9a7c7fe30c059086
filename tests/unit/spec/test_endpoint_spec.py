"""Validation of the v2 resource: clear messages naming the field, huggingface_hub payloads accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modelport.control.services.endpoint_service import parse_spec
from modelport.control.services.errors import ControlError
from modelport.spec.endpoint import EndpointSpec, ImageKind, merge_update


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def hub_payload(repository: str) -> dict[str, Any]:
    """What huggingface_hub's create_inference_endpoint sends."""
    return {
        "compute": {
            "accelerator": "cpu",
            "instanceSize": "x1",
            "instanceType": "intel-icl",
            "scaling": {"maxReplica": 1, "minReplica": 1, "scaleToZeroTimeout": None},
        },
        "model": {
            "framework": "pytorch",
            "repository": repository,
            "revision": None,
            "image": {"huggingface": {}},
        },
        "name": "hub-ep",
        "provider": {"region": "eu-west-1", "vendor": "aws"},
        "type": "authenticated",
        "route": {"path": "/x"},
    }


def test_huggingface_hub_payload_is_accepted(model_dir: Path) -> None:
    spec = parse_spec(hub_payload(str(model_dir)), check_paths=True)
    assert spec.model.image.kind is ImageKind.HUGGINGFACE
    assert spec.type.needs_token
    wire = spec.to_wire()
    assert wire["model"]["image"] == {"huggingface": {}}
    assert wire["compute"]["scaling"]["minReplica"] == 1


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": "Bad_Name"}, "name", "pattern"),
        ({"compute": {"scaling": {"minReplica": 3, "maxReplica": 1}}}, "compute.scaling", "must not exceed"),
        ({"compute": {"accelerator": "tpu"}}, "compute.accelerator", "'cpu' or 'gpu'"),
        ({"model": {"repository": "/nonexistent/model"}}, "model.repository", "no model folder"),
        ({"model": {"repository": "not a source"}}, "model.repository", "cannot read model source"),
        ({"model": {"repository": "/models/m.Q4_K_M.gguf"}}, "model.repository", "GGUF file"),
        ({"model": {"image": {"tgi": {}}}}, "model.image", "cannot run on this installation"),
        ({"model": {"image": {"vllm": {"sleep": True}}}}, "model.image", "image.vllm has no setting sleep"),
        (
            {"model": {"image": {"vllm": {"sleepMode": "yes"}}}},
            "model.image",
            "sleepMode must be true or false",
        ),
        ({"model": {"image": {"llamacpp": {}}}}, "model", "llama.cpp serves a single GGUF file"),
        ({"model": {"image": {"vllm": {"sleepMode": True}}}}, None, "sleepMode needs a GPU"),
        (
            {"model": {"image": {"vllm": {}}, "args": ["--port", "1"]}},
            "model.args",
            "--port is set by modelport",
        ),
        ({"model": {"image": {"nope": {}}}}, "model.image", "unknown image variant"),
        ({"model": {"image": {"custom": {"url": "ghcr.io/a/b:1"}}}}, "model.image", "runs no containers"),
        ({"model": {"image": {"custom": {"command": ["python", "app.py"]}}}}, "model.image", "{port}"),
        (
            {"model": {"image": {"custom": {"command": ["x", "{port}"], "apis": ["grpc"]}}}},
            "model.image",
            "apis",
        ),
        ({"model": {"args": ["--port", "1"]}}, "model.args", "set by modelport"),
        ({"model": {"env": {"1BAD": "x"}}}, "model.env", "not a valid environment variable"),
        ({"type": "secret"}, "type", "public"),
    ],
)
def test_bad_fields_get_a_message_naming_them(
    model_dir: Path, change: dict[str, Any], field: str, words: str
) -> None:
    body: dict[str, Any] = {"name": "ok", "model": {"repository": str(model_dir)}}
    for key, value in change.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(ControlError) as info:
        parse_spec(body, check_paths=True)
    assert info.value.status == 422
    assert info.value.field == field
    assert words in info.value.message


@pytest.mark.parametrize("repository", ["acme/chat", "acme/chat@v1.0", "s3://weights/acme/chat"])
def test_hub_ids_and_s3_urls_are_sources_pulled_into_the_cache(repository: str) -> None:
    body = {"name": "ok", "model": {"repository": repository}}
    assert parse_spec(body, check_paths=True).model.repository == repository


def test_stored_specs_load_without_the_folder() -> None:
    spec = EndpointSpec.model_validate({"name": "x", "model": {"repository": "/gone"}})
    assert spec.model.repository == "/gone"
    with pytest.raises(ValidationError):
        EndpointSpec.model_validate(
            {"name": "x", "model": {"repository": "/gone"}}, context={"check_paths": True}
        )


def test_merge_update_is_partial_and_keeps_redacted_secrets() -> None:
    current = {
        "name": "x",
        "compute": {"scaling": {"minReplica": 1, "maxReplica": 2}},
        "model": {"repository": "/m", "secrets": {"TOKEN": "s3cret"}, "args": []},
    }
    merged = merge_update(
        current, {"compute": {"scaling": {"maxReplica": 4}}, "model": {"secrets": {"TOKEN": "***"}}}
    )
    assert merged["compute"]["scaling"] == {"minReplica": 1, "maxReplica": 4}
    assert merged["model"]["secrets"] == {"TOKEN": "s3cret"}
    assert merged["model"]["repository"] == "/m"
