"""The routing table the gateway reads, built from the store's endpoints and ready replicas:
per endpoint, the oldest ready replicas up to its target serve (those of its current generation
when any is ready), and up to warmStandby beyond that wait loaded. Standbys of sleep-mode engines
are put to sleep on the way and woken when they should serve (sleep_wake.py). Model revisions
come from the loop's cache: this runs on the event loop and never reads the store."""

from __future__ import annotations

from collections.abc import Sequence

from modelport.control.reconcile.revisions import RevisionCache
from modelport.control.reconcile.sleep_wake import Sleeper
from modelport.control.status import serving_count, standby_replicas, target_replicas
from modelport.gateway.access import parse_networks
from modelport.gateway.routing import ALL_APIS, EndpointView, Route, RoutingTable
from modelport.launchers.engines import NAMED_ENGINES, engine_apis
from modelport.launchers.sleep_mode import sleeps
from modelport.runtime.base import ReplicaHandle, ReplicaPhase, Runtime
from modelport.runtime.replica_token import replica_token
from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.spec.traffic import Traffic
from modelport.store.records import EndpointRecord, ReplicaRecord


class RoutePublisher:
    def __init__(
        self, table: RoutingTable, runtime: Runtime, sleeper: Sleeper, revisions: RevisionCache
    ) -> None:
        self.table = table
        self.runtime = runtime
        self.sleeper = sleeper
        self.revisions = revisions

    def publish(self, endpoints: Sequence[EndpointRecord], replicas: Sequence[ReplicaRecord]) -> None:
        views: dict[tuple[str, str], EndpointView] = {}
        for endpoint in endpoints:
            ready = [r for r in replicas if r.endpoint_id == endpoint.id and r.phase == ReplicaPhase.READY]
            current = [r for r in ready if r.generation == endpoint.generation]
            # the oldest ready replicas serve; up to warmStandby beyond the target wait, loaded
            pool = sorted(current or ready, key=lambda r: (r.ready_at or r.started_at, r.id))
            count = serving_count(len(pool), target_replicas(endpoint), standby_replicas(endpoint))
            serving = self._awake(pool[:count], pool[count:])
            revision = self.revisions.get(
                endpoint.id, serving[0].generation if serving else endpoint.generation
            )
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
            revision = self.revisions.get(replica.endpoint_id, replica.generation)
            return revision is not None and sleeps(revision)

        def address(replica: ReplicaRecord) -> str:
            return self.runtime.address(ReplicaHandle.from_json(replica.handle))

        for replica in standby:
            if sleep_mode(replica):
                self.sleeper.rest(replica.id, address(replica))
        return [r for r in serving if not sleep_mode(r) or self.sleeper.routable(r.id, address(r))]
