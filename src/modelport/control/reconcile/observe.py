"""Turning what the runtime sees of each replica into its stored record: ready, exited (with
its last log lines), not healthy in time (a failed start), or failing probes after it was ready
(out of routing at once; killed after `unhealthy_probes` in a row, to be restarted in place).
Also: launches a crashed control plane left without a handle are discarded, stops it left half
done are finished, and each replica's start time goes to /metrics. Store calls run in a worker
thread."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime

from modelport.control.reconcile.actions import ReplicaStops
from modelport.control.reconcile.plan import ProbeFailures, failed_probe, is_unhealthy, unhealthy_reason
from modelport.control.reconcile.settings import LoopSettings
from modelport.control.status import STOPPING
from modelport.gateway.metrics import GatewayMetrics
from modelport.runtime.base import ReplicaHandle, ReplicaObservation, ReplicaPhase, Runtime
from modelport.store.records import EndpointRecord, ReplicaRecord
from modelport.store.repository import Store

log = logging.getLogger("modelport.control")

ERROR_LINES = 20  # of a replica's log kept in its record when it exits


class ReplicaObserver:
    """Observes the replicas each tick and remembers, per replica, what the planner and the
    unhealthy rule need across ticks (restarts when last ready, failed probes in a row)."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        now: Callable[[], datetime],
        settings: LoopSettings,
        stops: ReplicaStops,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.now = now
        self.settings = settings
        self.stops = stops
        self.metrics = metrics
        self._probe_failures: dict[str, ProbeFailures] = {}  # of replicas that were ready
        self._ready_restarts: dict[str, int] = {}  # `restarts` when last seen ready (failed starts)

    @property
    def ready_restarts(self) -> Mapping[str, int]:
        """Each replica's restart count when it was last seen ready (plan_actions counts failed
        starts from it)."""
        return self._ready_restarts

    async def observe(
        self, replicas: list[ReplicaRecord], endpoints: dict[int, EndpointRecord]
    ) -> list[ReplicaRecord]:
        for replica in replicas:
            if replica.phase == ReplicaPhase.STARTING and not replica.handle:
                replica = await self._interrupted_launch(replica)
                replicas = [replica if r.id == replica.id else r for r in replicas]
        watched = [r for r in replicas if r.phase in (ReplicaPhase.STARTING, ReplicaPhase.READY) and r.handle]
        observations = await asyncio.gather(
            *(self.runtime.observe(ReplicaHandle.from_json(r.handle)) for r in watched)
        )
        updated = {r.id: r for r in replicas}
        for replica, seen in zip(watched, observations, strict=True):
            new = self._apply_observation(replica, seen)
            if new != replica:
                await asyncio.to_thread(self.store.put_replica, new)
                updated[new.id] = new
            if new.phase == ReplicaPhase.READY and replica.phase != ReplicaPhase.READY:
                self._count_start(new, endpoints.get(new.endpoint_id), updated.values())
            if seen.phase == ReplicaPhase.EXITED and new.exited_at is not None:
                await asyncio.to_thread(self.store.runs.close, replica.id, new.exited_at)
        for replica in replicas:  # stops that a previous control plane left half done
            if replica.phase == STOPPING:
                self.stops.stop(replica)
        self._remember_ready(updated.values())
        return list(updated.values())

    def _remember_ready(self, replicas: Collection[ReplicaRecord]) -> None:
        """Note each ready replica's restart count (failed starts are counted from it) and forget
        replicas that are gone."""
        self._ready_restarts.update({r.id: r.restarts for r in replicas if r.phase == ReplicaPhase.READY})
        ids = {r.id for r in replicas}
        for memo in (self._ready_restarts, self._probe_failures):
            for gone in memo.keys() - ids:
                del memo[gone]

    def _count_start(
        self, replica: ReplicaRecord, endpoint: EndpointRecord | None, replicas: Iterable[ReplicaRecord]
    ) -> None:
        """A replica's start time in /metrics; cold when no other replica of its endpoint was ready."""
        if self.metrics is None or endpoint is None or replica.ready_at is None:
            return
        others = [r for r in replicas if r.endpoint_id == replica.endpoint_id and r.id != replica.id]
        cold = not any(r.phase == ReplicaPhase.READY for r in others)
        seconds = (replica.ready_at - replica.started_at).total_seconds()
        labels = (endpoint.namespace, endpoint.name, "true" if cold else "false")
        self.metrics.replica_starts.labels(*labels).observe(seconds)

    async def _interrupted_launch(self, replica: ReplicaRecord) -> ReplicaRecord:
        found = await self.runtime.discard(replica.id)
        log.warning("replica %s: its launch was interrupted; discarded %d process(es)", replica.id[:8], found)
        await asyncio.to_thread(self.store.runs.close, replica.id, self.now())
        exited = dataclasses.replace(
            replica,
            phase=ReplicaPhase.EXITED.value,
            exited_at=self.now(),
            last_error="launch interrupted by a control plane restart",
        )
        await asyncio.to_thread(self.store.put_replica, exited)
        return exited

    def _apply_observation(self, replica: ReplicaRecord, seen: ReplicaObservation) -> ReplicaRecord:
        now = self.now()
        if seen.phase != ReplicaPhase.STARTING:  # a probe passed, or the process is gone
            self._probe_failures.pop(replica.id, None)
        if seen.phase == ReplicaPhase.READY:
            if replica.phase == ReplicaPhase.READY:
                return replica
            log.info("replica %s is ready", replica.id[:8])
            return dataclasses.replace(
                replica, phase=ReplicaPhase.READY.value, ready_at=replica.ready_at or now
            )
        if seen.phase == ReplicaPhase.EXITED:
            code = f"exit code {seen.exit_code}" if seen.exit_code is not None else "process gone"
            lines = "\n".join(seen.last_lines[-ERROR_LINES:])
            log.warning("replica %s exited (%s)", replica.id[:8], code)
            return dataclasses.replace(
                replica, phase=ReplicaPhase.EXITED.value, exited_at=now, last_error=f"{code}\n{lines}".strip()
            )
        if replica.ready_at is not None:  # it was ready in this run: a health probe failed
            return self._failed_probe(replica, seen.handle, now)
        waited = (now - replica.started_at).total_seconds()
        if waited > self.settings.start_timeout_s:
            # counts as a failed start; the stop happens in the background
            self.stops.kill(seen.handle, replica.id, self.settings.stop_grace_s)
            return dataclasses.replace(
                replica,
                phase=ReplicaPhase.EXITED.value,
                exited_at=now,
                last_error=f"not healthy after {waited:.0f} s; stopped",
            )
        return dataclasses.replace(replica, phase=ReplicaPhase.STARTING.value)

    def _failed_probe(self, replica: ReplicaRecord, handle: ReplicaHandle, now: datetime) -> ReplicaRecord:
        """A replica that was ready failed a probe: out of routing now (it is no longer READY, so
        this tick's publish leaves it out); after enough failures, killed and marked exited, so the
        planner restarts it in place after its backoff."""
        failures = failed_probe(self._probe_failures.get(replica.id), now)
        if not is_unhealthy(failures, now, self.settings.unhealthy_probes, self.settings.interval_s):
            if failures.count == 1:
                log.warning("replica %s failed a health probe; not routed until it passes", replica.id[:8])
            self._probe_failures[replica.id] = failures
            return dataclasses.replace(replica, phase=ReplicaPhase.STARTING.value)
        del self._probe_failures[replica.id]
        reason = unhealthy_reason(failures, now)
        log.warning("replica %s %s; stopping it to restart it", replica.id[:8], reason)
        self.stops.kill(handle, replica.id, self.settings.unhealthy_stop_grace_s)
        return dataclasses.replace(replica, phase=ReplicaPhase.EXITED.value, exited_at=now, last_error=reason)
