"""Which launches the preloaded Python may fork: the pure rule in runtime/preload.py."""

from __future__ import annotations

import sys

from modelport.runtime.preload import ENTRY_MODULE, unforkable_reason

BASE = {"PATH": "/usr/bin", "HOME": "/home/me", "HF_HUB_OFFLINE": "1"}
SERVE = [sys.executable, "-m", ENTRY_MODULE, "serve", "/models/tiny", "--port", "4000"]


def test_a_builtin_launch_with_the_same_environment_is_forked() -> None:
    assert unforkable_reason(SERVE, dict(BASE), BASE) is None


def test_variables_read_when_used_may_differ() -> None:
    env = {
        **BASE,
        "MODELPORT_REPLICA_ID": "r1",
        "HF_TOKEN": "hf_x",
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_REGION": "eu",
    }
    assert unforkable_reason(SERVE, env, BASE) is None


def test_a_variable_libraries_read_at_import_forces_a_new_python() -> None:
    reason = unforkable_reason(SERVE, {**BASE, "OMP_NUM_THREADS": "1"}, BASE)
    assert reason is not None and "OMP_NUM_THREADS" in reason
    changed = unforkable_reason(SERVE, {**BASE, "HF_HUB_OFFLINE": "0"}, BASE)
    assert changed is not None and "HF_HUB_OFFLINE" in changed


def test_a_variable_the_launch_removes_also_counts() -> None:
    env = {k: v for k, v in BASE.items() if k != "HF_HUB_OFFLINE"}
    reason = unforkable_reason(SERVE, env, BASE)
    assert reason is not None and "HF_HUB_OFFLINE" in reason


def test_only_the_entry_module_run_by_this_python_is_forked() -> None:
    assert unforkable_reason(["/other/python", *SERVE[1:]], dict(BASE), BASE) is not None
    assert unforkable_reason([sys.executable, "-m", "vllm.entrypoints.openai.api_server"], dict(BASE), BASE)
    assert unforkable_reason([sys.executable, "-c", "print(1)"], dict(BASE), BASE) is not None
    assert unforkable_reason(["/bin/llama-server", "-m", "x.gguf"], dict(BASE), BASE) is not None
