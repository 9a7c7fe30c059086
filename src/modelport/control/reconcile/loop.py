"""The control loop: observe replicas, plan, act through the runtime, write status, publish routes.

One tick every `interval_s` (sooner when the API changes something). Each tick reads the
store fresh, so a control plane restarted after a crash carries on from the stored replica
handles: live replicas are re-adopted, dead ones restarted, half-stopped ones stopped. A
replica is stopped by first withdrawing it from the routing table, then waiting for its
in-flight requests to finish, then asking the runtime to stop it; only then is its record
removed. A replica that was ready and fails a health probe leaves routing at once; after
`unhealthy_probes` failures in a row it is killed (no drain: it cannot answer) and restarted in
place like one that exited. Store calls run in a worker thread so the gateway sharing this
event loop never waits on the database.

This module drives the tick and wires its parts: observe.py (runtime observations → replica
records), host_refusal.py (the host rules before planning), plan.py (pure), actions.py (the
plan carried out), control/status.py (pure, written here) and publish.py (the routing table).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from modelport.control.reconcile.actions import ActionRunner, ReplicaStops
from modelport.control.reconcile.host_refusal import HostRefusals
from modelport.control.reconcile.observe import ReplicaObserver
from modelport.control.reconcile.plan import plan_actions
from modelport.control.reconcile.publish import RoutePublisher
from modelport.control.reconcile.revisions import RevisionCache, RevisionKey
from modelport.control.reconcile.settings import LoopSettings
from modelport.control.reconcile.sleep_wake import Sleeper
from modelport.control.status import status_changes
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.routing import RoutingTable
from modelport.launchers.sleep_mode import is_sleeping, put_to_sleep, wake_up
from modelport.runtime.base import ReplicaPhase, Runtime
from modelport.store.records import EndpointRecord, ModelRevision, ReplicaRecord
from modelport.store.repository import NotFound, Stale, Store

__all__ = ["ControlLoop", "LoopSettings"]

log = logging.getLogger("modelport.control")


class ControlLoop:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        table: RoutingTable,
        now: Callable[[], datetime],
        settings: LoopSettings = LoopSettings(),
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.runtime = runtime
        self.table = table
        self.now = now
        self.settings = settings
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting = False  # a replica is starting: tick at the faster poll
        self.revisions = RevisionCache()
        self.sleeper = Sleeper(put_to_sleep, wake_up, is_sleeping, self.notify)
        self.stops = ReplicaStops(store, runtime, table, now, settings, self.notify)
        self.host = HostRefusals(store, now, self.revisions, settings.allow_custom_commands)
        self.observer = ReplicaObserver(store, runtime, now, settings, self.stops, metrics)
        self.actions = ActionRunner(store, runtime, table, now, self.stops, self.host)
        self.publisher = RoutePublisher(table, runtime, self.sleeper, self.revisions)

    # -- driving -------------------------------------------------------------------------
    def notify(self) -> None:
        """Ask for a tick now; safe to call from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.tick()
            except Exception:  # a bad tick must not stop reconciling; the next one retries
                log.exception("control loop tick failed")
            wait_s = self.settings.starting_poll_s if self._starting else self.settings.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
            self._wake.clear()

    async def tick(self) -> None:
        endpoints, replicas = await self._read()
        replicas = await self.observer.observe(replicas, {e.id: e for e in endpoints})
        endpoints = await self.host.check(endpoints, replicas)
        # publish before acting: a replica that just became ready takes traffic before the
        # replicas it replaces are withdrawn, so routes never go empty during a rollout
        self.publisher.publish(endpoints, replicas)
        for action in plan_actions(endpoints, replicas, self.now(), self.observer.ready_restarts):
            await self.actions.execute(action, {e.id: e for e in endpoints}, {r.id: r for r in replicas})
        endpoints, replicas = await self._read()
        await asyncio.to_thread(self._write_status, endpoints, replicas)
        self.publisher.publish(endpoints, replicas)
        self._starting = any(r.phase == ReplicaPhase.STARTING for r in replicas)

    async def shutdown(self, stop_replicas: bool) -> None:
        """Finish stops in progress; with stop_replicas, stop every replica and forget it."""
        if stop_replicas:
            _, replicas = await self._read()
            for replica in replicas:
                self.table.withdraw(replica.id)
                self.stops.stop(replica)
        await self.sleeper.close()
        await self.stops.finish()

    # -- the store, in worker threads ----------------------------------------------------
    async def _read(self) -> tuple[list[EndpointRecord], list[ReplicaRecord]]:
        """Endpoints and replicas from the store, with the model revisions they use now in the
        cache (its readers never read the store: they run on the event loop)."""
        endpoints, replicas, revisions = await asyncio.to_thread(self._load, self.revisions.keys())
        self.revisions.add(revisions)
        return endpoints, replicas

    def _load(
        self, cached: Collection[RevisionKey]
    ) -> tuple[list[EndpointRecord], list[ReplicaRecord], dict[RevisionKey, ModelRevision]]:
        """In a worker thread: the rows, and the revisions of their generations not in `cached`."""
        endpoints, replicas = self.store.list_endpoints(), self.store.list_replicas()
        wanted = {(e.id, e.generation) for e in endpoints} | {(r.endpoint_id, r.generation) for r in replicas}
        revisions = {}
        for key in wanted - set(cached):
            with contextlib.suppress(NotFound):  # removed meanwhile: the next read looks again
                revisions[key] = self.store.get_revision(*key)
        return endpoints, replicas, revisions

    def _write_status(self, endpoints: Sequence[EndpointRecord], replicas: Sequence[ReplicaRecord]) -> None:
        for endpoint in endpoints:
            changes = status_changes(endpoint, [r for r in replicas if r.endpoint_id == endpoint.id])
            if changes:
                # conditional: an API change since this tick read the row wins; the next tick re-derives
                with contextlib.suppress(NotFound, Stale):
                    self.store.update_endpoint(
                        endpoint.id, self.now(), if_unchanged_since=endpoint.updated_at, **changes
                    )
