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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime

from modelport import envs
from modelport.control.reconcile.host_refusal import host_refused, refused_status
from modelport.control.reconcile.plan import (
    Action,
    MarkFailed,
    ProbeFailures,
    Promote,
    RemoveEndpoint,
    RestartReplica,
    RollBack,
    StartReplica,
    StopReplica,
    failed_probe,
    is_unhealthy,
    plan_actions,
    unhealthy_reason,
)
from modelport.control.reconcile.sleep_wake import Sleeper
from modelport.control.status import (
    STOPPING,
    serving_count,
    standby_replicas,
    status_changes,
    target_replicas,
)
from modelport.gateway.access import parse_networks
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.routing import ALL_APIS, EndpointView, Route, RoutingTable
from modelport.launchers.engines import NAMED_ENGINES, Places, engine_apis, launch_spec
from modelport.launchers.sleep_mode import is_sleeping, put_to_sleep, sleeps, wake_up
from modelport.ledger.billing import ReplicaRun
from modelport.placement.fit import Deployment, engine_plan
from modelport.placement.residency import launch_refused, placement_refusal
from modelport.placement.resources import spec_from_records
from modelport.runtime.base import ReplicaHandle, ReplicaObservation, ReplicaPhase, Runtime
from modelport.runtime.replica_token import replica_token
from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.spec.host_code import launch_refusal
from modelport.spec.traffic import Traffic
from modelport.store import session
from modelport.store.records import EndpointRecord, ModelRevision, ReplicaRecord
from modelport.store.repository import NotFound, Stale, Store

log = logging.getLogger("modelport.control")

ERROR_LINES = 20


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    interval_s: float = 0.5
    # while a replica starts, its health is polled this often: a cold start's last step is
    # "ready → routed", and a request held at zero waits for exactly that
    starting_poll_s: float = 0.1
    drain_timeout_s: float = 60.0  # longest wait for in-flight requests before stopping a replica
    stop_grace_s: float = 30.0  # SIGTERM → SIGKILL
    start_timeout_s: float = 900.0  # a replica not healthy by then is stopped and counts as a failed start
    # failed probes in a row after which a replica that was ready is killed and restarted
    unhealthy_probes: int = dataclasses.field(default_factory=envs.unhealthy_probes)
    unhealthy_stop_grace_s: float = 1.0  # SIGTERM → SIGKILL for it: it is not serving anyway
    # `modelport up --allow-custom-commands`: checked before each launch (spec/host_code.py)
    allow_custom_commands: bool = False


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
        self._stops: dict[str, asyncio.Task[None]] = {}
        # replicas stopped without a drain (unhealthy, never ready): restarted once these finish
        self._kills: dict[str, asyncio.Task[None]] = {}
        self._probe_failures: dict[str, ProbeFailures] = {}  # of replicas that were ready
        self._ready_restarts: dict[str, int] = {}  # `restarts` when last seen ready (failed starts)
        self._revisions: dict[tuple[int, int], ModelRevision] = {}
        self._host_refusals: dict[tuple[int, int], str | None] = {}  # of (endpoint, generation)
        self._starting = False  # a replica is starting: tick at the faster poll
        self.sleeper = Sleeper(put_to_sleep, wake_up, is_sleeping, self.notify)

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
        replicas = await self._observe(replicas, {e.id: e for e in endpoints})
        endpoints = await self._refuse_host_code(endpoints, replicas)
        # publish before acting: a replica that just became ready takes traffic before the
        # replicas it replaces are withdrawn, so routes never go empty during a rollout
        self._publish(endpoints, replicas)
        for action in plan_actions(endpoints, replicas, self.now(), self._ready_restarts):
            await self._execute(action, {e.id: e for e in endpoints}, {r.id: r for r in replicas})
        endpoints, replicas = await self._read()
        await asyncio.to_thread(self._write_status, endpoints, replicas)
        self._publish(endpoints, replicas)
        self._starting = any(r.phase == ReplicaPhase.STARTING for r in replicas)

    async def shutdown(self, stop_replicas: bool) -> None:
        """Finish stops in progress; with stop_replicas, stop every replica and forget it."""
        if stop_replicas:
            _, replicas = await self._read()
            for replica in replicas:
                self.table.withdraw(replica.id)
                if replica.id not in self._stops:
                    self._stops[replica.id] = asyncio.create_task(self._stop(replica))
        await self.sleeper.close()
        pending = [*self._stops.values(), *self._kills.values()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- steps ---------------------------------------------------------------------------
    async def _read(self) -> tuple[list[EndpointRecord], list[ReplicaRecord]]:
        """Endpoints and replicas from the store, with the model revisions they use now in the
        cache (`_revision` never reads the store: it runs on the event loop)."""
        endpoints, replicas, revisions = await asyncio.to_thread(self._load, set(self._revisions))
        self._revisions.update(revisions)
        return endpoints, replicas

    def _load(
        self, cached: Collection[tuple[int, int]]
    ) -> tuple[list[EndpointRecord], list[ReplicaRecord], dict[tuple[int, int], ModelRevision]]:
        """In a worker thread: the rows, and the revisions of their generations not in `cached`."""
        endpoints, replicas = self.store.list_endpoints(), self.store.list_replicas()
        wanted = {(e.id, e.generation) for e in endpoints} | {(r.endpoint_id, r.generation) for r in replicas}
        revisions = {}
        for key in wanted - set(cached):
            with contextlib.suppress(NotFound):  # removed meanwhile: the next read looks again
                revisions[key] = self.store.get_revision(*key)
        return endpoints, replicas, revisions

    async def _observe(
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
            if replica.phase == STOPPING and replica.id not in self._stops:
                self._stops[replica.id] = asyncio.create_task(self._stop(replica))
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

    async def _refuse_host_code(
        self, endpoints: list[EndpointRecord], replicas: Sequence[ReplicaRecord]
    ) -> list[EndpointRecord]:
        """Fail, before anything is planned, each endpoint this installation may no longer run
        (custom commands turned off since its create): none of its replicas is launched, and the
        planner drains and stops those adopted from the last run. A failed endpoint is not checked
        again until an update or resume clears it, so each refusal is audited once."""
        checked = []
        for endpoint in endpoints:
            live = [r.id for r in replicas if r.endpoint_id == endpoint.id and r.phase != STOPPING]
            runs = endpoint.intent == Intent.ACTIVE or (endpoint.intent == Intent.SCALED_TO_ZERO and live)
            if runs and endpoint.state != EndpointState.FAILED:
                why = self._host_refusal(endpoint)
                if why is not None:
                    endpoint = await self._fail_refused(endpoint, why, live)
            checked.append(endpoint)
        return checked

    def _host_refusal(self, endpoint: EndpointRecord) -> str | None:
        """launch_refusal for the endpoint's current generation (a revision is immutable and the
        switch fixed for this run, so the answer is kept)."""
        key = (endpoint.id, endpoint.generation)
        if key not in self._host_refusals:
            revision = self._revision(*key)
            if revision is None:
                return None
            spec = spec_from_records(endpoint, revision)
            self._host_refusals[key] = launch_refusal(spec, self.settings.allow_custom_commands)
        return self._host_refusals[key]

    async def _fail_refused(self, endpoint: EndpointRecord, why: str, live: list[str]) -> EndpointRecord:
        """The endpoint failed for the host rules and its audit record, in one transaction."""
        message = refused_status(why, len(live))

        def write() -> EndpointRecord:
            with self.store.engine.connect() as conn, session.shared(conn) as transaction:
                failed = self.store.update_endpoint(
                    endpoint.id,
                    self.now(),
                    if_unchanged_since=endpoint.updated_at,
                    state=EndpointState.FAILED.value,
                    message=message,
                )
                self.store.audit.append([host_refused(endpoint, why, live, self.now())], conn)
                transaction.commit()  # else closing the connection rolls both back
            return failed

        try:
            failed = await asyncio.to_thread(write)
        except (NotFound, Stale):  # changed by the API meanwhile: the next tick checks it afresh
            return endpoint
        log.warning("endpoint %s failed: %s", endpoint.name, message)
        return failed

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
            self._kill(seen.handle, replica.id, self.settings.stop_grace_s)
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
        self._kill(handle, replica.id, self.settings.unhealthy_stop_grace_s)
        return dataclasses.replace(replica, phase=ReplicaPhase.EXITED.value, exited_at=now, last_error=reason)

    def _kill(self, handle: ReplicaHandle, replica_id: str, grace_s: float) -> None:
        """Stop a replica's process in the background, without a drain; its restart waits for it."""
        if replica_id not in self._kills:
            self._kills[replica_id] = asyncio.create_task(self._stop_process(handle, replica_id, grace_s))

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

    async def _execute(
        self, action: Action, endpoints: dict[int, EndpointRecord], replicas: dict[str, ReplicaRecord]
    ) -> None:
        now = self.now()
        match action:
            case StartReplica(endpoint_id, generation):
                await self._start(endpoints[endpoint_id], generation)
            case RestartReplica(replica_id):
                if replica_id not in self._kills:  # else its old process is still being stopped
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
            host_refusal = launch_refusal(spec, self.settings.allow_custom_commands)
            if host_refusal is not None:  # the tick's check (_refuse_host_code) raced an API change
                await self._fail_refused(endpoint, host_refusal, [])
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
            run = _run_of(replica, endpoint, ReplicaHandle.from_json(launched.handle))
            await asyncio.to_thread(self.store.runs.open, run)

    async def _begin_stop(self, replica: ReplicaRecord) -> None:
        self.table.withdraw(replica.id)
        if replica.phase == ReplicaPhase.EXITED or not replica.handle:
            await asyncio.to_thread(self.store.delete_replica, replica.id)
            return
        await asyncio.to_thread(self.store.put_replica, dataclasses.replace(replica, phase=STOPPING))
        if replica.id not in self._stops:
            self._stops[replica.id] = asyncio.create_task(self._stop(replica))

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

    def _write_status(self, endpoints: Sequence[EndpointRecord], replicas: Sequence[ReplicaRecord]) -> None:
        for endpoint in endpoints:
            changes = status_changes(endpoint, [r for r in replicas if r.endpoint_id == endpoint.id])
            if changes:
                # conditional: an API change since this tick read the row wins; the next tick re-derives
                with contextlib.suppress(NotFound, Stale):
                    self.store.update_endpoint(
                        endpoint.id, self.now(), if_unchanged_since=endpoint.updated_at, **changes
                    )

    def _publish(self, endpoints: Sequence[EndpointRecord], replicas: Sequence[ReplicaRecord]) -> None:
        views: dict[tuple[str, str], EndpointView] = {}
        for endpoint in endpoints:
            ready = [r for r in replicas if r.endpoint_id == endpoint.id and r.phase == ReplicaPhase.READY]
            current = [r for r in ready if r.generation == endpoint.generation]
            # the oldest ready replicas serve; up to warmStandby beyond the target wait, loaded
            pool = sorted(current or ready, key=lambda r: (r.ready_at or r.started_at, r.id))
            count = serving_count(len(pool), target_replicas(endpoint), standby_replicas(endpoint))
            serving = self._awake(pool[:count], pool[count:])
            revision = self._revision(endpoint.id, serving[0].generation if serving else endpoint.generation)
            traffic = Traffic.model_validate(endpoint.traffic or {})
            views[(endpoint.namespace, endpoint.name)] = EndpointView(
                namespace=endpoint.namespace,
                name=endpoint.name,
                type=EndpointType(endpoint.type),
                intent=Intent(endpoint.intent),
                state=EndpointState(endpoint.state),
                message=endpoint.message,
                routes=tuple(
                    Route(
                        r.id,
                        self.runtime.address(ReplicaHandle.from_json(r.handle)),
                        r.generation,
                        replica_token(r.id),
                    )
                    for r in serving
                ),
                task=revision.task if revision else None,
                apis=engine_apis(revision) if revision else ALL_APIS,
                traffic=traffic,
                networks=parse_networks(traffic.allow_networks),
                model_name=endpoint.name if revision and revision.image_kind in NAMED_ENGINES else None,
                model=revision.repository if revision else None,
                revision=revision.revision if revision else None,
            )
        self.table.publish(views)
        self.sleeper.forget({r.id for r in replicas})

    def _awake(self, serving: list[ReplicaRecord], standby: list[ReplicaRecord]) -> list[ReplicaRecord]:
        """Standbys of sleep-mode engines sleep; of those that should serve, the awake ones do."""

        def sleep_mode(replica: ReplicaRecord) -> bool:
            revision = self._revision(replica.endpoint_id, replica.generation)
            return revision is not None and sleeps(revision)

        def address(replica: ReplicaRecord) -> str:
            return self.runtime.address(ReplicaHandle.from_json(replica.handle))

        for replica in standby:
            if sleep_mode(replica):
                self.sleeper.rest(replica.id, address(replica))
        return [r for r in serving if not sleep_mode(r) or self.sleeper.routable(r.id, address(r))]

    def _revision(self, endpoint_id: int, generation: int) -> ModelRevision | None:
        """A generation's model revision, as `_read` cached it (revisions are immutable); None for
        one the store did not have."""
        return self._revisions.get((endpoint_id, generation))


def _run_of(replica: ReplicaRecord, endpoint: EndpointRecord, handle: ReplicaHandle) -> ReplicaRun:
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
