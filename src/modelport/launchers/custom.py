"""A user's own server as a replica engine: the "custom container" case, without containers.

`model.image = {"custom": {"command": [...], "healthRoute": "/health", "apis": ["openai"]}}`:
any program that serves HTTP on the port it is given and answers its health route 200 when
ready. `{port}` in the command becomes the runtime's port, `{model}` the endpoint's repository
and `{name}` the endpoint's name. It is scaled, routed, metered and stopped (SIGTERM to its
process group, then SIGKILL after the grace period) like any other replica.

The server gets its replica token in MODELPORT_REPLICA_TOKEN (runtime/replica_token.py) and
the gateway sends every request with `Authorization: Bearer <token>`: a server that checks it
refuses other processes on the host, as modelport's own engine does. It is not enforced here;
the control plane calls the health route, /metrics and the sleep routes without it.
"""

from __future__ import annotations

from modelport.runtime.base import LaunchSpec
from modelport.spec.custom_image import check_custom_image
from modelport.store.records import ModelRevision


def custom_launch(replica_id: str, served_name: str, revision: ModelRevision) -> LaunchSpec:
    config = check_custom_image(revision.image_config)
    fill = {"{model}": revision.repository, "{name}": served_name}
    command = []
    for arg in config["command"]:
        for placeholder, value in fill.items():
            arg = arg.replace(placeholder, value)
        command.append(arg)
    return LaunchSpec(
        replica_id=replica_id,
        command=[*command, *revision.args],
        env={**config["env"], **revision.env, **revision.secrets},
        health_path=config["healthRoute"],
    )


def custom_apis(revision: ModelRevision) -> frozenset[str]:
    return frozenset(check_custom_image(revision.image_config)["apis"])
