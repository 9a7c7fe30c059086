"""Endpoint operations behind the v2 API: validate, write desired state, wake the reconciler.

Nothing here starts or stops a process: it records what the user asked (the spec, a new
model generation, the intent) and the control loop makes it so. Methods are synchronous
(store calls); the API runs them in a worker thread.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelport import envs
from modelport.auth.api_keys import Principal
from modelport.control.services.errors import ControlError, validation_error
from modelport.control.services.model_task import settle_task
from modelport.control.status import status_changes, target_replicas
from modelport.launchers.engine_install import find_engine
from modelport.launchers.engines import INSTALLED_ENGINES, missing_engine
from modelport.models.weights_check import local_weights_problem
from modelport.placement.fit import Deployment, admission_problem
from modelport.placement.residency import placement_refusal, with_default_region
from modelport.placement.resources import (
    fields_from_spec,
    render_endpoint,
    render_event,
    revision_from_spec,
    spec_from_records,
)
from modelport.spec.endpoint import EndpointSpec, EndpointState, ImageKind, Intent, merge_update
from modelport.spec.host_code import host_changes
from modelport.store import session
from modelport.store.records import EndpointRecord, ScalingEvent
from modelport.store.repository import AlreadyExists, NotFound, Store

NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_placement(spec: EndpointSpec) -> None:
    refused = placement_refusal(spec, envs.REGION.get(), os.environ)
    if refused is not None:
        field, why = refused
        raise ControlError(422, "placement", why, field)


def _check_weights(spec: EndpointSpec) -> None:
    """Refuse a local folder with a cut-short or garbled safetensors file: every replica would fail."""
    problem = local_weights_problem(spec.model.repository)
    if problem:
        raise ControlError(422, "validation", problem, "model.repository")


def _check_fit(spec: EndpointSpec) -> None:
    """Refuse, before anything is stored, a model that cannot run on the endpoint's hardware."""
    image = spec.model.image
    if image.kind in INSTALLED_ENGINES:
        override = image.config.get("enginePython")
        engines = envs.engines_dir()

        if find_engine(image.kind.value, engines, override if isinstance(override, str) else None) is None:
            raise ControlError(
                422, "validation", missing_engine(image.kind, engines, override), "model.image"
            )
    if image.kind not in (ImageKind.HUGGINGFACE, ImageKind.VLLM):
        return  # the planner sizes transformers engines; llama.cpp and custom servers size themselves
    unfit = admission_problem(Deployment.of_spec(spec))
    if unfit:
        raise ControlError(422, "validation", unfit, "model.repository")


def _check_host(
    spec: EndpointSpec, principal: Principal, allow_custom: bool, current: EndpointSpec | None = None
) -> None:
    """Refuse (403) a write that sets what runs code on the host (spec/host_code.py) without the
    `host` scope, and a custom command on an installation that did not turn them on."""
    changed = host_changes(spec, current)
    if not changed:
        return
    if "model.image.custom.command" in changed and not allow_custom:
        raise ControlError(
            403,
            "forbidden",
            "custom commands are off on this installation: an operator turns them on with "
            f"`modelport up --allow-custom-commands` (or {envs.ALLOW_CUSTOM_COMMANDS.name}=1)",
            "model.image",
        )
    if "host" not in principal.scopes:
        raise ControlError(
            403,
            "forbidden",
            f"{', '.join(changed)} can run code on the host: writing it needs the admin token or a key "
            "with the host scope",
            changed[0],
        )


def parse_spec(body: Any, *, check_paths: bool) -> EndpointSpec:
    if not isinstance(body, dict):
        raise ControlError(422, "validation", "the request body must be a JSON object")
    try:
        return EndpointSpec.model_validate(body, context={"check_paths": check_paths})
    except ValidationError as exc:
        raise validation_error(exc) from None


class EndpointService:
    def __init__(
        self,
        store: Store,
        endpoint_url: Callable[[str, str], str],
        notify: Callable[[], None],
        now: Callable[[], datetime],
        allow_custom_commands: bool = False,
    ) -> None:
        self.store = store
        self.allow_custom_commands = allow_custom_commands  # image.custom (modelport up's switch)
        self.endpoint_url = endpoint_url
        self.notify = notify  # wakes the control loop (thread-safe)
        self.now = now

    # -- reads ---------------------------------------------------------------------------
    def render(self, endpoint: EndpointRecord) -> dict[str, Any]:
        revision = self.store.get_revision(endpoint.id, endpoint.generation)
        replicas = self.store.list_replicas(endpoint.id)
        return render_endpoint(
            endpoint, revision, replicas, self.endpoint_url(endpoint.namespace, endpoint.name)
        )

    def find(self, namespace: str, name: str) -> EndpointRecord:
        _check_namespace(namespace)
        try:
            endpoint = self.store.get_endpoint(namespace, name)
        except NotFound:
            raise ControlError(
                404, "not_found", f"no endpoint named {name!r} in namespace {namespace!r}"
            ) from None
        if endpoint.intent == Intent.DELETING:
            raise ControlError(404, "not_found", f"endpoint {namespace}/{name} is being deleted")
        return endpoint

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.render(self.find(namespace, name))

    def list(self, namespace: str) -> dict[str, Any]:
        _check_namespace(namespace)
        items = [self.render(e) for e in self.store.list_endpoints(namespace) if e.intent != Intent.DELETING]
        return {"items": items}

    # -- writes --------------------------------------------------------------------------
    def create(self, namespace: str, body: Any, principal: Principal) -> dict[str, Any]:
        _check_namespace(namespace)
        spec = parse_spec(with_default_region(body, envs.REGION.get()), check_paths=True)
        _check_host(spec, principal, self.allow_custom_commands)
        _check_placement(spec)
        _check_fit(spec)
        _check_weights(spec)  # after the fit: a model too big is refused for that, whole or not
        spec = settle_task(spec)
        try:
            endpoint = self.store.create_endpoint(
                fields_from_spec(namespace, spec), revision_from_spec(spec), self.now()
            )
        except AlreadyExists:
            raise ControlError(
                409, "conflict", f"an endpoint named {spec.name!r} already exists in {namespace!r}", "name"
            ) from None
        return self._settle(endpoint)

    def update(self, namespace: str, name: str, patch: Any, principal: Principal) -> dict[str, Any]:
        endpoint = self.find(namespace, name)
        if not isinstance(patch, dict):
            raise ControlError(422, "validation", "the request body must be a JSON object")
        if patch.get("name", name) != name:
            raise ControlError(422, "validation", "an endpoint cannot be renamed", "name")
        revision = self.store.get_revision(endpoint.id, endpoint.generation)
        current = spec_from_records(endpoint, revision).to_wire(redact_secrets=False)
        new_repository = isinstance(patch.get("model"), dict) and "repository" in patch["model"]
        spec = parse_spec(merge_update(current, patch), check_paths=new_repository)
        _check_host(spec, principal, self.allow_custom_commands, spec_from_records(endpoint, revision))
        _check_placement(spec)
        if "model" in patch or "compute" in patch or "traffic" in patch:
            _check_fit(spec)
        if new_repository:
            _check_weights(spec)
        if "model" in patch:
            spec = settle_task(spec)
        now = self.now()
        fields = dataclasses.asdict(fields_from_spec(namespace, spec, Intent(endpoint.intent)))
        changes = {k: v for k, v in fields.items() if getattr(endpoint, k) != v}
        new_revision = revision_from_spec(spec)
        with self.store.transaction():  # the spec change, its revision and status land together
            if changes or new_revision != revision:
                # an update is a fresh attempt: clear a failure and the last update's error
                changes.update(update_error=None)
                if endpoint.state == EndpointState.FAILED:
                    changes.update(state=EndpointState.PENDING.value, message="")
                endpoint = self.store.update_endpoint(endpoint.id, now, **changes)
            if new_revision != revision:
                endpoint = self.store.add_revision(endpoint.id, new_revision, now)
            return self._settle(endpoint)

    def pause(self, namespace: str, name: str) -> dict[str, Any]:
        return self._set_intent(self.find(namespace, name), Intent.PAUSED)

    def scale_to_zero(self, namespace: str, name: str) -> dict[str, Any]:
        endpoint = self.find(namespace, name)
        if endpoint.intent == Intent.PAUSED:
            raise ControlError(400, "bad_request", f"endpoint {namespace}/{name} is paused: resume it first")
        return self._set_intent(endpoint, Intent.SCALED_TO_ZERO)

    def resume(self, namespace: str, name: str) -> dict[str, Any]:
        endpoint = self.find(namespace, name)
        if endpoint.intent == Intent.ACTIVE and endpoint.state != EndpointState.FAILED:
            raise ControlError(400, "bad_request", f"endpoint {namespace}/{name} is already running")
        return self._set_intent(endpoint, Intent.ACTIVE)

    def wake(self, namespace: str, name: str) -> None:
        """A request reached a scaled-to-zero endpoint: bring it back (no-op otherwise)."""
        endpoint = self.store.get_endpoint(namespace, name)
        if endpoint.intent == Intent.SCALED_TO_ZERO:
            self._set_intent(endpoint, Intent.ACTIVE, "request", "a request arrived at zero replicas")

    def delete(self, namespace: str, name: str) -> dict[str, Any]:
        return self._set_intent(self.find(namespace, name), Intent.DELETING)

    def events(self, namespace: str, name: str, limit: int) -> dict[str, Any]:
        endpoint = self.find(namespace, name)
        return {"items": [render_event(e) for e in self.store.scaling_events.list(endpoint.id, limit)]}

    def _set_intent(
        self, endpoint: EndpointRecord, intent: Intent, cause: str = "user", reason: str = ""
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {"intent": intent.value}
        if intent == Intent.ACTIVE:
            changes.update(update_error=None)
            if endpoint.state == EndpointState.FAILED:
                changes.update(state=EndpointState.PENDING.value, message="")
        now = self.now()
        before = target_replicas(endpoint)
        after = target_replicas(dataclasses.replace(endpoint, **changes))
        event = None
        if before != after:
            event = ScalingEvent(endpoint.id, now, before, after, cause, reason or _USER_ACTIONS[intent], {})
        return self._settle(self.store.update_endpoint(endpoint.id, now, event=event, **changes))

    def _settle(self, endpoint: EndpointRecord) -> dict[str, Any]:
        """Write the status the change implies now (a PUT answers "updating", a pause "paused"),
        then let the loop act on it."""
        changes = status_changes(endpoint, self.store.list_replicas(endpoint.id))
        if changes:
            endpoint = self.store.update_endpoint(endpoint.id, self.now(), **changes)
        session.after_commit(self.store.engine, self.notify)  # the loop must read the change
        return self.render(endpoint)


_USER_ACTIONS = {
    Intent.ACTIVE: "resumed by the user",
    Intent.PAUSED: "paused by the user",
    Intent.SCALED_TO_ZERO: "scaled to zero by the user",
    Intent.DELETING: "deleted by the user",
}


def _check_namespace(namespace: str) -> None:
    if not NAMESPACE_PATTERN.match(namespace):
        raise ControlError(422, "validation", f"invalid namespace {namespace!r}", "namespace")
