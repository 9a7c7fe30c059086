"""How a replica of modelport's builtin engine is launched: `modelport serve` on a runtime port."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from modelport.runtime.base import LaunchSpec
from modelport.store.records import ModelRevision

HEALTH_PATH = "/health"


def builtin_launch(
    replica_id: str, served_name: str, revision: ModelRevision, planned_args: Sequence[str] = ()
) -> LaunchSpec:
    """`planned_args`: the planner's sizing (context, KV budget) for flags the user left unset."""
    command = [
        sys.executable,
        "-m",
        "modelport.cli.main",
        "serve",
        revision.repository,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--served-model-name",
        served_name,
        "--any-model-name",
        *(["--revision", revision.revision] if revision.revision else []),
        # "text-generation" was every endpoint's default before tasks were checked: the folder decides
        *(["--task", revision.task] if revision.task and revision.task != "text-generation" else []),
        *planned_args,
        *revision.args,
    ]
    # secrets reach the engine as environment variables, as on the managed service
    return LaunchSpec(
        replica_id=replica_id,
        command=command,
        env={**revision.env, **revision.secrets},
        health_path=HEALTH_PATH,
    )


def served_apis(revision: ModelRevision) -> frozenset[str]:
    """The APIs a replica of this revision answers; the gateway translates requests for others."""
    args = revision.args
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--api" and i + 1 < len(args) else arg.removeprefix("--api=")
        if arg.startswith("--api") and value == "openai":
            return frozenset({"openai"})
    return frozenset({"openai", "tgi", "tei"})
