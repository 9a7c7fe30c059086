"""Which launcher starts a replica, by the endpoint's `model.image` kind.

The rest of modelport (gateway, autoscaler, metering) sees only the `LaunchSpec` (argv, env,
health route) and the APIs the engine answers; the gateway translates requests for the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelport.launchers.builtin import builtin_launch, served_apis
from modelport.launchers.custom import custom_apis, custom_launch
from modelport.runtime.base import LaunchSpec
from modelport.spec.endpoint import ImageKind
from modelport.store.records import ModelRevision


def launch_spec(
    replica_id: str, served_name: str, revision: ModelRevision, planned_args: Sequence[str] = ()
) -> LaunchSpec:
    """`planned_args` (the planner's sizing) apply to the builtin engine, which they were made for."""
    kind = ImageKind(revision.image_kind)
    if kind == ImageKind.CUSTOM:
        return custom_launch(replica_id, served_name, revision)
    if kind == ImageKind.HUGGINGFACE:
        return builtin_launch(replica_id, served_name, revision, planned_args)
    raise ValueError(f"no launcher for image kind {kind.value!r} on this installation")


def engine_apis(revision: ModelRevision) -> frozenset[str]:
    if ImageKind(revision.image_kind) == ImageKind.CUSTOM:
        return custom_apis(revision)
    return served_apis(revision)
