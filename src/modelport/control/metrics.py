"""What the control plane adds to its /metrics at each scrape: every endpoint's desired, target
and ready replica counts (from the store), the usage log's write failures, drops and queue, and
each replica engine's own metrics (the pages the autoscaler last read), re-exported with
namespace, endpoint and replica labels."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from modelport.gateway.routing import RoutingTable
from modelport.observe.usage_log import UsageLog
from modelport.store.repository import Store

log = logging.getLogger(__name__)
STALE_S = 60.0  # an engine page older than this is not re-exported


class ControlCollector(Collector):
    def __init__(
        self,
        store: Store,
        table: RoutingTable,
        pages: Callable[[], Mapping[str, tuple[float, str]]],
        usage: UsageLog | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.pages = pages
        self.usage = usage

    def collect(self) -> Iterator[Metric]:
        replicas = GaugeMetricFamily(
            "modelport_endpoint_replicas",
            "Replicas per endpoint: desired (the autoscaler's count, or the minimum), target (what "
            "the control loop runs now) and ready (serving)",
            labels=["namespace", "endpoint", "kind"],
        )
        for e in self.store.list_endpoints():
            desired = e.desired_replicas if e.desired_replicas is not None else e.min_replica
            counts = {"desired": desired, "target": e.target_replicas, "ready": e.ready_replicas}
            for kind, value in counts.items():
                replicas.add_metric([e.namespace, e.name, kind], float(value))
        yield replicas
        if self.usage is not None:
            yield from _usage(self.usage)
        yield from self._engines()

    def _engines(self) -> Iterator[Metric]:
        pages = self.pages()
        now = time.monotonic()
        merged: dict[str, Metric] = {}
        for view in list(self.table.endpoints.values()):
            for route in view.routes:
                seen = pages.get(route.address)
                if seen is None or now - seen[0] > STALE_S:
                    continue
                extra = {"namespace": view.namespace, "endpoint": view.name, "replica": route.replica_id}
                try:
                    _relabel(text_string_to_metric_families(seen[1]), extra, merged)
                except ValueError as exc:
                    log.debug("replica %s: unreadable metrics page (%s)", route.replica_id[:8], exc)
        yield from merged.values()


def _usage(usage: UsageLog) -> Iterator[Metric]:
    """Whether usage and audit records reach the store: a write that fails or a record dropped
    must show here, not only in the log."""
    failures = CounterMetricFamily(
        "modelport_usage_write_failures",
        "Batches of usage and audit records the store refused (each then written request by request)",
    )
    failures.add_metric([], float(usage.write_failures))
    yield failures
    dropped = CounterMetricFamily(
        "modelport_usage_records_dropped",
        "Requests whose usage and audit records were not written: rejected (the store refused the "
        "request's own row; logged with its metadata) or queue_full (the oldest, while the store "
        "was unreachable)",
        labels=["reason"],
    )
    for reason, count in usage.dropped.items():
        dropped.add_metric([reason], float(count))
    yield dropped
    yield GaugeMetricFamily(
        "modelport_usage_records_pending",
        "Usage and audit records waiting to be written to the store",
        value=float(usage.pending),
    )


def _relabel(families: Iterable[Metric], extra: dict[str, str], merged: dict[str, Metric]) -> None:
    """Each family's samples, with `extra` labels, added to the family of that name in `merged`."""
    for family in families:
        out = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
        for s in family.samples:
            out.add_sample(s.name, {**s.labels, **extra}, s.value, s.timestamp)
