"""The autoscaler: every tick, each endpoint's signals through the policy, and its decisions applied.

Signals come from the gateway in this process (requests in flight, waiting for a slot, held
for a replica, arrivals) and from the engines' metrics (KV-cache use, waiting requests). The
policy (autoscale/policy.py) is a pure function; this module only gathers its inputs and
writes its outputs: a new count goes to `endpoints.desired_replicas` (zero is the
scaledToZero intent), every change is stored as a scaling event, and the control loop is woken
so the replicas follow at once. A user's change made meanwhile wins (a conditional write).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelport.autoscale.engine_signals import EngineLoad, EngineScraper, mean_kv_usage
from modelport.autoscale.policy import (
    DEFAULT_SCALE_TO_ZERO_S,
    DEFAULT_STABILIZATION_S,
    DEFAULT_TARGET_PENDING,
    Context,
    Decision,
    ScalerState,
    ScalingPolicy,
    Signals,
    decide,
    initial_state,
)
from modelport.control.status import target_replicas
from modelport.gateway.admission import AdmissionTable
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.routing import RoutingTable
from modelport.spec.endpoint import EndpointState, Intent
from modelport.store.records import EndpointRecord, ScalingEvent
from modelport.store.repository import NotFound, Stale, Store

log = logging.getLogger("modelport.autoscaler")


@dataclass(frozen=True)
class AutoscalerSettings:
    interval_s: float = 0.5  # a threshold crossed is acted on within this (well under 1 s)
    scrape_engines: bool = True


def policy_for(endpoint: EndpointRecord) -> ScalingPolicy:
    """The endpoint's settings as the policy reads them (defaults as Inference Endpoints)."""
    measure = endpoint.scaling_measure or {}
    if endpoint.scale_to_zero_after_s is not None:
        idle_s: float | None = endpoint.scale_to_zero_after_s
    elif endpoint.scale_to_zero_timeout is not None:
        idle_s = endpoint.scale_to_zero_timeout * 60.0 or None  # 0 minutes: never
    else:
        idle_s = DEFAULT_SCALE_TO_ZERO_S
    return ScalingPolicy(
        min_replicas=endpoint.min_replica,
        max_replicas=endpoint.max_replica,
        target_pending=float(measure.get("pendingRequests", DEFAULT_TARGET_PENDING)),
        target_usage=measure.get("hardwareUsage"),
        stabilization_s=(
            endpoint.stabilization_s if endpoint.stabilization_s is not None else DEFAULT_STABILIZATION_S
        ),
        scale_to_zero_after_s=idle_s,
    )


class Autoscaler:
    def __init__(
        self,
        store: Store,
        table: RoutingTable,
        admissions: AdmissionTable,
        notify: Callable[[], None],
        wall: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
        metrics: GatewayMetrics | None = None,
        settings: AutoscalerSettings = AutoscalerSettings(),
    ) -> None:
        self.store = store
        self.table = table
        self.admissions = admissions
        self.notify = notify
        self.wall = wall
        self.clock = clock
        self.metrics = metrics
        self.settings = settings
        self.scraper = EngineScraper() if settings.scrape_engines else None
        self._states: dict[int, ScalerState] = {}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except Exception:  # a bad tick must not stop scaling; the next one retries
                    log.exception("autoscaler tick failed")
                await asyncio.sleep(self.settings.interval_s)
        finally:
            if self.scraper is not None:
                await self.scraper.close()

    async def tick(self) -> None:
        endpoints = await asyncio.to_thread(self.store.list_endpoints)
        loads = await self._engine_loads(endpoints)
        now = self.clock()
        for endpoint in endpoints:
            scaled = endpoint.intent in (Intent.ACTIVE, Intent.SCALED_TO_ZERO)
            if not scaled or endpoint.state == EndpointState.FAILED:
                self._states.pop(endpoint.id, None)
                continue
            current = target_replicas(endpoint)  # 0 when scaled to zero
            context = Context(
                now=now,
                current=current,
                policy=policy_for(endpoint),
                signals=self._signals(endpoint, loads),
                state=self._states.get(endpoint.id) or initial_state(now, current),
            )
            decision, self._states[endpoint.id] = decide(context)
            if decision.changed:
                await asyncio.to_thread(self._apply, endpoint, decision)
        self._export_gauges(endpoints)

    def _signals(self, endpoint: EndpointRecord, loads: dict[str, EngineLoad]) -> Signals:
        admission = self.admissions.of(endpoint.namespace, endpoint.name)
        view = self.table.get(endpoint.namespace, endpoint.name)
        routes = view.routes if view is not None else ()
        engine = [loads[r.address] for r in routes if r.address in loads]
        return Signals(
            pending=admission.pending,
            arrivals=admission.arrivals,
            ready=len(routes),
            kv_usage=mean_kv_usage(engine),
            engine_waiting=int(sum(load.waiting for load in engine)) if engine else None,
        )

    async def _engine_loads(self, endpoints: list[EndpointRecord]) -> dict[str, EngineLoad]:
        if self.scraper is None:
            return {}
        addresses = []
        for endpoint in endpoints:
            view = self.table.get(endpoint.namespace, endpoint.name)
            if view is not None:
                addresses += [route.address for route in view.routes]
        return await self.scraper.scrape(addresses) if addresses else {}

    def _apply(self, endpoint: EndpointRecord, decision: Decision) -> None:
        changes: dict[str, Any]
        if decision.desired == 0:
            changes = {"intent": Intent.SCALED_TO_ZERO.value, "desired_replicas": None}
        else:
            changes = {"intent": Intent.ACTIVE.value, "desired_replicas": decision.desired}
        at = self.wall()
        event = ScalingEvent(
            endpoint_id=endpoint.id,
            at=at,
            previous=decision.previous,
            desired=decision.desired,
            cause="autoscaler",
            reason=decision.reason,
            inputs=decision.inputs,
        )
        try:
            self.store.update_endpoint(
                endpoint.id, at, if_unchanged_since=endpoint.updated_at, event=event, **changes
            )
        except (NotFound, Stale):
            return  # deleted or changed by a user since this tick read it: decide again next tick
        log.info(
            "endpoint %s/%s: %d -> %d replicas (%s)",
            endpoint.namespace,
            endpoint.name,
            decision.previous,
            decision.desired,
            decision.reason,
        )
        self.notify()

    def _export_gauges(self, endpoints: list[EndpointRecord]) -> None:
        if self.metrics is None:
            return
        for endpoint in endpoints:
            admission = self.admissions.endpoints.get((endpoint.namespace, endpoint.name))
            if admission is None:
                continue
            labels = (endpoint.namespace, endpoint.name)
            self.metrics.in_flight.labels(*labels).set(admission.in_flight)
            self.metrics.queued.labels(*labels).set(len(admission.waiters) + admission.held)
