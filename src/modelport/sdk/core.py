"""The SDK's one core, free of I/O: every operation is a generator of steps.

An operation yields `Call` (an HTTP request to make) or `Sleep` and receives a `Reply` for
each call; its return value is the result. The sync and async clients only drive these
generators (httpx.Client + time.sleep, httpx.AsyncClient + asyncio.sleep), so payloads,
parsing, error mapping and the `wait` state machine are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.sdk.errors import EndpointFailed, WaitTimeout, error_for


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # relative to the control plane URL, or absolute (an endpoint URL)
    json: Any = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: Any  # parsed JSON, or the text when the body is not JSON


Step = Call | Sleep
Operation = Generator[Step, Reply | None, Any]

FAILED_STATES = ("failed", "updateFailed")


def check(reply: Reply) -> Any:
    """The JSON of a successful reply, or the typed error the API reported."""
    if reply.status_code < 400:
        return reply.body
    body = reply.body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise error_for(reply.status_code, body["error"], body.get("error_type"), body.get("field"))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # OpenAI-shaped
        raise error_for(reply.status_code, str(body["error"].get("message")), body["error"].get("type"), None)
    raise error_for(reply.status_code, str(body)[:500] or f"HTTP {reply.status_code}", None, None)


def request(method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Operation:
    reply = yield Call(method, path, json, params)
    assert reply is not None
    return check(reply)


def endpoint_path(namespace: str, name: str | None = None, action: str | None = None) -> str:
    path = f"/v2/endpoint/{namespace}"
    if name:
        path += f"/{name}"
    if action:
        path += f"/{action}"
    return path


def create_payload(
    name: str,
    model: str,
    *,
    revision: str | None = None,
    task: str | None = None,
    type: str = "protected",
    min_replicas: int = 1,
    max_replicas: int | None = None,
    scale_to_zero_timeout: int | None = None,
    scale_to_zero_after_s: float | None = None,
    target_pending: float | None = None,
    stabilization_s: float | None = None,
    warm_standby: int | None = None,
    engine_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    tags: list[str] | None = None,
    traffic: dict[str, Any] | None = None,
    image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`image`: the engine, {"huggingface": {}} (modelport's own, the default) or e.g.
    {"custom": {"command": ["python", "app.py", "--port", "{port}"], "healthRoute": "/health"}}."""
    model_part: dict[str, Any] = {
        "repository": _absolute(model),
        "revision": revision,
        "image": image or {"huggingface": {}},
        "env": env or {},
        "secrets": secrets or {},
        "args": engine_args or [],
    }
    if task:
        model_part["task"] = task
    return {
        "name": name,
        "type": type,
        "compute": {
            "scaling": {
                "minReplica": min_replicas,
                "maxReplica": max_replicas if max_replicas is not None else max(min_replicas, 1),
                "scaleToZeroTimeout": scale_to_zero_timeout,
                **_autoscaling(scale_to_zero_after_s, target_pending, stabilization_s, warm_standby),
            }
        },
        "model": model_part,
        "tags": tags or [],
        **({"traffic": traffic} if traffic else {}),
    }


def update_payload(
    *,
    model: str | None = None,
    revision: str | None = None,
    task: str | None = None,
    engine_args: list[str] | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    scale_to_zero_timeout: int | None = None,
    scale_to_zero_after_s: float | None = None,
    target_pending: float | None = None,
    stabilization_s: float | None = None,
    warm_standby: int | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    tags: list[str] | None = None,
    traffic: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A partial PUT body: only what was given (traffic merges key by key; None removes a key)."""
    model_part = {
        key: value
        for key, value in {
            "repository": _absolute(model) if model else None,
            "revision": revision,
            "task": task,
            "args": engine_args,
            "env": env,
            "secrets": secrets,
        }.items()
        if value is not None
    }
    scaling = {
        key: value
        for key, value in {
            "minReplica": min_replicas,
            "maxReplica": max_replicas,
            "scaleToZeroTimeout": scale_to_zero_timeout,
            **_autoscaling(scale_to_zero_after_s, target_pending, stabilization_s, warm_standby),
        }.items()
        if value is not None
    }
    payload: dict[str, Any] = {}
    if model_part:
        payload["model"] = model_part
    if scaling:
        payload["compute"] = {"scaling": scaling}
    if tags is not None:
        payload["tags"] = tags
    if traffic is not None:
        payload["traffic"] = traffic
    return payload


def wait_for_ready(
    namespace: str,
    name: str,
    timeout: float,
    poll_interval: float,
    clock: Callable[[], float],
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> Operation:
    """Poll until running and the endpoint URL answers its health route; raise on failure.
    `progress` sees every fetched endpoint object (the CLI draws its spinner from it)."""
    deadline = clock() + timeout
    while True:
        raw = yield from request("GET", endpoint_path(namespace, name))
        if progress:
            progress(raw)
        status = raw["status"]
        if status["state"] in FAILED_STATES:
            raise EndpointFailed(
                f"endpoint {namespace}/{name} is {status['state']}: {status.get('message', '')}"
            )
        if status["state"] == "running" and status.get("url"):
            health = yield Call("GET", f"{status['url'].rstrip('/')}{raw.get('healthRoute', '/health')}")
            if health is not None and health.status_code == 200:
                return raw
        if clock() >= deadline:
            raise WaitTimeout(
                f"endpoint {namespace}/{name} not ready after {timeout:.0f} s "
                f"(state {status['state']}: {status.get('message', '')})"
            )
        yield Sleep(poll_interval)


def _absolute(model: str) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() or model.startswith((".", "/", "~")) else model


def _autoscaling(
    scale_to_zero_after_s: float | None,
    target_pending: float | None,
    stabilization_s: float | None,
    warm_standby: int | None,
) -> dict[str, Any]:
    """The autoscaler's settings that were given, as `compute.scaling` fields."""
    out: dict[str, Any] = {}
    if scale_to_zero_after_s is not None:
        out["scaleToZeroTimeoutSeconds"] = scale_to_zero_after_s
    if target_pending is not None:
        out["measure"] = {"pendingRequests": target_pending}
    if stabilization_s is not None:
        out["stabilizationWindowSeconds"] = stabilization_s
    if warm_standby is not None:
        out["warmStandby"] = warm_standby
    return out
