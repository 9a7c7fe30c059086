"""What in an endpoint spec can run code on the host, and that only changing it needs the scope."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.spec.endpoint import EndpointSpec
from modelport.spec.host_code import host_changes, launch_refusal


def spec(**model: Any) -> EndpointSpec:
    return EndpointSpec.model_validate({"name": "chat", "model": {"repository": "org/chat", **model}})


@pytest.mark.parametrize(
    ("model", "needs"),
    [
        ({"image": {"custom": {"command": ["srv", "--port", "{port}"]}}}, ["model.image.custom.command"]),
        ({"image": {"vllm": {"enginePython": "/usr/bin/python3"}}}, ["model.image.vllm.enginePython"]),
        ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, ["model.env.LD_PRELOAD"]),
        ({"env": {"PYTHONPATH": "/tmp"}}, ["model.env.PYTHONPATH"]),
        ({"env": {"HF_ENDPOINT": "http://evil"}}, ["model.env.HF_ENDPOINT"]),
        ({"env": {"MODELPORT_DATA_DIR": "/"}}, ["model.env.MODELPORT_DATA_DIR"]),
        ({"secrets": {"DYLD_INSERT_LIBRARIES": "x"}}, ["model.secrets.DYLD_INSERT_LIBRARIES"]),
        ({"args": ["--trust-remote-code"]}, ["model.args"]),
        ({"args": ["--allow-pickle"]}, ["model.args"]),
        ({"image": {"vllm": {}}, "args": ["--worker-extension-cls", "m.C"]}, ["model.args"]),
        ({"image": {"vllm": {}}, "args": ["--max-model-len=64", "--trust_remote_code"]}, ["model.args"]),
        # tuning only: no host code
        ({"env": {"OMP_NUM_THREADS": "2", "HF_TOKEN": "t"}, "secrets": {"HF_TOKEN": "s"}}, []),
        ({"args": ["--max-model-len", "64", "--dtype=float32"]}, []),
        ({"image": {"vllm": {}}, "args": ["-tp", "2", "--gpu_memory_utilization", "0.5"]}, []),
    ],
)
def test_what_needs_the_host_scope(model: dict[str, Any], needs: list[str]) -> None:
    assert host_changes(spec(**model)) == needs


def test_an_update_needs_it_only_for_what_it_changes() -> None:
    current = spec(env={"LD_PRELOAD": "/a.so"}, image={"custom": {"command": ["s", "{port}"]}})
    assert host_changes(current, current) == []  # scaling it, retagging it: nothing new runs
    changed = spec(env={"LD_PRELOAD": "/b.so"}, image={"custom": {"command": ["s", "{port}"]}})
    assert host_changes(changed, current) == ["model.env.LD_PRELOAD"]
    other = spec(env={"LD_PRELOAD": "/a.so"}, image={"custom": {"command": ["t", "{port}"]}})
    assert host_changes(other, current) == ["model.image.custom.command"]
    assert host_changes(spec(), current) == []  # removing host code needs no scope


def test_a_custom_command_is_launched_only_while_the_installation_allows_it() -> None:
    custom = spec(image={"custom": {"command": ["srv", "--port", "{port}"]}})
    assert launch_refusal(custom, allow_custom_commands=True) is None
    why = launch_refusal(custom, allow_custom_commands=False)
    assert why is not None and why.startswith("custom commands are off on this installation")
    assert "modelport up --allow-custom-commands" in why and "change the endpoint's image" in why
    # the switch is about commands: a builtin or vLLM engine launches either way
    for other in (spec(), spec(image={"vllm": {}}), spec(env={"LD_PRELOAD": "/x.so"})):
        assert launch_refusal(other, allow_custom_commands=False) is None
