"""Carrying out the planner's actions through the runtime: start, restart and launch a replica
(the host and placement rules checked again before each launch), stop one after a drain, kill
one that cannot answer, and the endpoint changes the planner decides (failed, rolled back,
promoted, removed). Stops and kills run as background tasks; the loop is woken when one ends.
Store calls run in a worker thread."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from modelport import envs
from modelport.control.reconcile.host_refusal import HostRefusals
from modelport.control.reconcile.plan import (
    Action,
    MarkFailed,
    Promote,
    RemoveEndpoint,
    RestartReplica,
    RollBack,
    StartReplica,
    StopReplica,
)
from modelport.control.reconcile.settings import LoopSettings
from modelport.control.status import STOPPING
from modelport.gateway.routing import RoutingTable
from modelport.launchers.engines import Places, launch_spec
from modelport.ledger.billing import ReplicaRun
from modelport.placement.fit import Deployment, engine_plan
from modelport.placement.residency import launch_refused, placement_refusal
from modelport.placement.resources import spec_from_records
from modelport.runtime.base import ReplicaHandle, ReplicaPhase, Runtime
from modelport.spec.endpoint import EndpointState
from modelport.spec.host_code import launch_refusal
from modelport.store.records import EndpointRecord, ReplicaRecord
from modelport.store.repository import Store

log = logging.getLogger("modelport.control")


class ReplicaStops:
    """The replicas being stopped in the background: drained stops, and kills (no drain)."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        table: RoutingTable,
        now: Callable[[], datetime],
        settings: LoopSettings,
        notify: Callable[[], None],
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.table = table
        self.now = now
        self.settings = settings
        self.notify = notify
        self._stops: dict[str, asyncio.Task[None]] = {}
        # replicas stopped without a drain (unhealthy, never ready): restarted once these finish
        self._kills: dict[str, asyncio.Task[None]] = {}

    def stop(self, replica: ReplicaRecord) -> None:
        """Drain the replica, stop its process and forget it, in the background (once)."""
        if replica.id not in self._stops:
            self._stops[replica.id] = asyncio.create_task(self._stop(replica))

    def kill(self, handle: ReplicaHandle, replica_id: str, grace_s: float) -> None:
        """Stop a replica's process in the background, without a drain; its restart waits for it."""
        if replica_id not in self._kills:
            self._kills[replica_id] = asyncio.create_task(self._stop_process(handle, replica_id, grace_s))

    def killing(self, replica_id: str) -> bool:
        """Whether the replica's old process is still being stopped (it is not restarted yet)."""
        return replica_id in self._kills

    async def finish(self) -> None:
        """Wait for the stops and kills in progress."""
        pending = [*self._stops.values(), *self._kills.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _stop(self, replica: ReplicaRecord) -> None:
        try:
            if not await self.table.drained(replica.id, self.settings.drain_timeout_s):
                log.warning(
                    "replica %s still busy after %.0f s; stopping it",
                    replica.id[:8],
                    self.settings.drain_timeout_s,
                )
            if replica.handle:
                await self.runtime.stop(ReplicaHandle.from_json(replica.handle), self.settings.stop_grace_s)
            else:  # stopped mid-launch (e.g. `up` exiting): whatever started under its id goes too
                await self.runtime.discard(replica.id)
            await asyncio.to_thread(self.store.runs.close, replica.id, self.now())
            await asyncio.to_thread(self.store.delete_replica, replica.id)
            log.info("stopped replica %s", replica.id[:8])
        except Exception:
            log.exception("stopping replica %s failed; retrying on a later tick", replica.id[:8])
        finally:
            self._stops.pop(replica.id, None)
            self.notify()

    async def _stop_process(self, handle: ReplicaHandle, replica_id: str, grace_s: float) -> None:
        try:
            await self.runtime.stop(handle, grace_s)
            # closed before the restart opens the replica's next run (runs close by replica id)
            await asyncio.to_thread(self.store.runs.close, replica_id, self.now())
        except Exception:
            log.exception("stopping replica %s failed; its restart goes ahead", replica_id[:8])
        finally:
            self._kills.pop(replica_id, None)
            self.notify()


class ActionRunner:
    """Executes plan actions: replicas through the runtime, endpoint changes in the store."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        table: RoutingTable,
        now: Callable[[], datetime],
        stops: ReplicaStops,
        host: HostRefusals,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.table = table
        self.now = now
        self.stops = stops
        self.host = host

    async def execute(
        self, action: Action, endpoints: dict[int, EndpointRecord], replicas: dict[str, ReplicaRecord]
    ) -> None:
        now = self.now()
        match action:
            case StartReplica(endpoint_id, generation):
                await self._start(endpoints[endpoint_id], generation)
            case RestartReplica(replica_id):
                if not self.stops.killing(replica_id):  # else its old process is still being stopped
                    await self._restart(replicas[replica_id])
            case StopReplica(replica_id):
                await self._begin_stop(replicas[replica_id])
            case MarkFailed(endpoint_id, message):
                log.warning("endpoint %s failed: %s", endpoints[endpoint_id].name, message.splitlines()[0])
                await asyncio.to_thread(
                    self.store.update_endpoint,
                    endpoint_id,
                    now,
                    state=EndpointState.FAILED.value,
                    message=message,
                )
            case RollBack(endpoint_id, to_generation, message):
                log.warning("endpoint %s: %s", endpoints[endpoint_id].name, message.splitlines()[0])
                await asyncio.to_thread(
                    self.store.update_endpoint,
                    endpoint_id,
                    now,
                    generation=to_generation,
                    update_error=message,
                )
            case Promote(endpoint_id, generation):
                log.info("endpoint %s now serves generation %d", endpoints[endpoint_id].name, generation)
                await asyncio.to_thread(
                    self.store.update_endpoint,
                    endpoint_id,
                    now,
                    good_generation=generation,
                    update_error=None,
                )
            case RemoveEndpoint(endpoint_id):
                await asyncio.to_thread(self.store.delete_endpoint, endpoint_id)

    async def _start(self, endpoint: EndpointRecord, generation: int) -> None:
        now = self.now()
        replica = ReplicaRecord(
            id=uuid.uuid4().hex,
            endpoint_id=endpoint.id,
            generation=generation,
            runtime=self.runtime.name,
            handle={},
            phase=ReplicaPhase.STARTING.value,
            restarts=0,
            last_error=None,
            started_at=now,
            ready_at=None,
            exited_at=None,
        )
        await self._launch(replica, endpoint)
        log.info("started replica %s of %s (generation %d)", replica.id[:8], endpoint.name, generation)

    async def _restart(self, replica: ReplicaRecord) -> None:
        endpoint = await asyncio.to_thread(self.store.get_endpoint_by_id, replica.endpoint_id)
        restarted = dataclasses.replace(
            replica,
            handle={},
            phase=ReplicaPhase.STARTING.value,
            restarts=replica.restarts + 1,
            started_at=self.now(),
            ready_at=None,
            exited_at=None,
        )
        await self._launch(restarted, endpoint)
        log.info("restarted replica %s of %s (restart %d)", replica.id[:8], endpoint.name, restarted.restarts)

    async def _launch(self, replica: ReplicaRecord, endpoint: EndpointRecord) -> None:
        # recorded before the process exists: a control plane that dies in between finds a record
        # without a handle on its next start, and discards whatever runs under that replica id
        await asyncio.to_thread(self.store.put_replica, replica)
        try:
            revision = await asyncio.to_thread(
                self.store.get_revision, replica.endpoint_id, replica.generation
            )
            # the installation's region or allowed hosts may have changed since the create
            spec = spec_from_records(endpoint, revision)
            refused = placement_refusal(spec, envs.REGION.get(), os.environ)
            if refused is not None:
                entry = launch_refused(endpoint, replica.id, refused[1], self.now())
                await asyncio.to_thread(self.store.audit.append, [entry])
                raise RuntimeError(refused[1])
            host_refusal = launch_refusal(spec, self.host.allow_custom_commands)
            if host_refusal is not None:  # the tick's check (HostRefusals.check) raced an API change
                await self.host.fail(endpoint, host_refusal, [])
                raise RuntimeError(host_refusal)
            plan = await asyncio.to_thread(engine_plan, Deployment.of_records(endpoint, revision))
            places = Places(envs.engines_dir(), envs.data_dir() / "engine-cache")
            handle = await self.runtime.start(launch_spec(replica.id, endpoint.name, revision, plan, places))
            launched = dataclasses.replace(replica, handle=handle.to_json())
        except Exception as exc:  # e.g. the command cannot be executed: a failed start, retried with backoff
            launched = dataclasses.replace(
                replica, phase=ReplicaPhase.EXITED.value, exited_at=self.now(), last_error=str(exc)
            )
        await asyncio.to_thread(self.store.put_replica, launched)
        if launched.handle:  # billed from the process's creation
            run = run_of(replica, endpoint, ReplicaHandle.from_json(launched.handle))
            await asyncio.to_thread(self.store.runs.open, run)

    async def _begin_stop(self, replica: ReplicaRecord) -> None:
        self.table.withdraw(replica.id)
        if replica.phase == ReplicaPhase.EXITED or not replica.handle:
            await asyncio.to_thread(self.store.delete_replica, replica.id)
            return
        await asyncio.to_thread(self.store.put_replica, dataclasses.replace(replica, phase=STOPPING))
        self.stops.stop(replica)


def run_of(replica: ReplicaRecord, endpoint: EndpointRecord, handle: ReplicaHandle) -> ReplicaRun:
    """The billing run of a replica's process: from the process's own creation time."""
    return ReplicaRun(
        replica_id=replica.id,
        namespace=endpoint.namespace,
        endpoint=endpoint.name,
        instance_type=endpoint.instance_type,
        instance_size=endpoint.instance_size,
        pid=handle.pid,
        started_at=datetime.fromtimestamp(handle.create_time, UTC),
        ended_at=None,
    )
