"""The autoscaler against a real store and the gateway's real counters: decisions are written,
recorded with their reasons, and lose to a user's change made meanwhile."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from modelport.autoscale.policy import Decision
from modelport.control.reconcile.autoscaler import Autoscaler, AutoscalerSettings, policy_for
from modelport.control.status import target_replicas
from modelport.gateway.admission import AdmissionTable
from modelport.gateway.routing import EndpointView, Route, RoutingTable
from modelport.placement.resources import fields_from_spec, revision_from_spec
from modelport.spec.endpoint import EndpointSpec, EndpointState, EndpointType, Intent
from modelport.store.records import EndpointRecord
from modelport.store.repository import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, scaling: dict[str, object]) -> tuple[Store, EndpointRecord]:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    spec = EndpointSpec.model_validate(
        {"name": "chat", "model": {"repository": str(tmp_path)}, "compute": {"scaling": scaling}}
    )
    endpoint = store.create_endpoint(
        fields_from_spec("default", spec), revision_from_spec(spec), datetime.now(UTC)
    )
    return store, endpoint


def scaler(store: Store, admissions: AdmissionTable, clock: Clock, woken: list[int]) -> Autoscaler:
    table = RoutingTable()  # one replica serving, as the control loop would publish it
    view = EndpointView("default", "chat", EndpointType.PROTECTED, Intent.ACTIVE, EndpointState.RUNNING, "",
                        routes=(Route("r1", "http://127.0.0.1:9", 1),))  # fmt: skip
    table.publish({("default", "chat"): view})
    return Autoscaler(
        store,
        table,
        admissions,
        lambda: woken.append(1),
        lambda: datetime.now(UTC),
        clock,
        settings=AutoscalerSettings(scrape_engines=False),
    )


def test_load_scales_up_then_idle_goes_to_zero_and_each_change_is_an_event(tmp_path: Path) -> None:
    store, endpoint = make(
        tmp_path,
        {"minReplica": 0, "maxReplica": 3, "measure": {"pendingRequests": 2},
         "scaleToZeroTimeoutSeconds": 30, "stabilizationWindowSeconds": 10},
    )  # fmt: skip
    admissions, clock, woken = AdmissionTable(), Clock(), []
    autoscaler = scaler(store, admissions, clock, woken)
    load = admissions.of("default", "chat")
    load.in_flight, load.held, load.arrivals = 2, 3, 5  # 2 in flight, 3 held for a replica

    asyncio.run(autoscaler.tick())
    scaled = store.get_endpoint_by_id(endpoint.id)
    assert scaled.desired_replicas == 3 and target_replicas(scaled) == 3 and woken

    load.in_flight = load.held = 0
    for step in range(1, 80):  # idle: down after the window, then zero after 30 s without requests
        clock.now = 1000.0 + step
        asyncio.run(autoscaler.tick())
    final = store.get_endpoint_by_id(endpoint.id)
    assert final.intent == "scaledToZero" and final.desired_replicas is None

    events = store.scaling_events.list(endpoint.id)
    path = [(e.previous, e.desired, e.cause) for e in events]
    assert path[0] == (1, 3, "autoscaler") and path[-1] == (1, 0, "autoscaler"), path
    assert all(e.reason and "pending" in e.inputs for e in events)


def test_a_users_change_made_meanwhile_wins(tmp_path: Path) -> None:
    store, endpoint = make(tmp_path, {"minReplica": 1, "maxReplica": 4})
    admissions, clock, woken = AdmissionTable(), Clock(), []
    autoscaler = scaler(store, admissions, clock, woken)
    admissions.of("default", "chat").in_flight = 4
    # the row as the tick read it, before a user's update landed
    stale = dataclasses.replace(endpoint, updated_at=datetime(2000, 1, 1, tzinfo=UTC))
    autoscaler._apply(stale, Decision(clock.now, 1, 4, "4 pending", {"pending": 4}))
    assert store.get_endpoint_by_id(endpoint.id).desired_replicas is None
    assert store.scaling_events.list(endpoint.id) == [] and not woken


def test_policy_defaults_follow_inference_endpoints() -> None:
    record = dataclasses.replace(
        _record(), min_replica=0, max_replica=2, scale_to_zero_timeout=None, scaling_measure=None
    )
    policy = policy_for(record)
    assert policy.target_pending == 1.0 and policy.scale_to_zero_after_s == 900.0
    assert policy_for(dataclasses.replace(record, scale_to_zero_timeout=5)).scale_to_zero_after_s == 300.0
    assert policy_for(dataclasses.replace(record, scale_to_zero_timeout=0)).scale_to_zero_after_s is None
    measured = policy_for(dataclasses.replace(record, scaling_measure={"hardwareUsage": 70.0}))
    assert measured.target_usage == 70.0


def _record() -> EndpointRecord:
    now = datetime.now(UTC)
    return EndpointRecord(
        namespace="default", name="chat", type="protected", accelerator="cpu", instance_type="local",
        instance_size="x1", min_replica=1, max_replica=1, scale_to_zero_timeout=None, scaling_measure=None,
        scale_to_zero_after_s=None, stabilization_s=None, warm_standby=0, vendor="local", region="local",
        tags=[], traffic=None, intent="active", id=1, generation=1, good_generation=1, state="running",
        message="", ready_replicas=1, target_replicas=1, desired_replicas=None, update_error=None,
        created_at=now, updated_at=now,
    )  # fmt: skip
