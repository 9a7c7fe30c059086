"""The gateway's Prometheus metrics (served at /metrics of the control plane)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "modelport_gateway_requests_total",
            "Requests answered by the gateway, by endpoint called, endpoint that served and status",
            ["namespace", "endpoint", "served_by", "status"],
            registry=r,
        )
        self.policy = Counter(
            "modelport_gateway_policy_total",
            "Requests a traffic policy sent to another endpoint",
            ["namespace", "endpoint", "policy", "target"],
            registry=r,
        )
        self.refused = Counter(
            "modelport_gateway_refused_total",
            "Requests refused before reaching a replica, by reason",
            ["namespace", "endpoint", "reason"],
            registry=r,
        )
        self.tokens = Counter(
            "modelport_gateway_tokens_total",
            "Tokens metered from upstream usage",
            ["namespace", "endpoint", "kind"],
            registry=r,
        )
        self.units = Counter(
            "modelport_gateway_units_total",
            "Work that is not tokens, as replicas reported it (x-modelport-units): audio_seconds, "
            "images, documents, pixels",
            ["namespace", "endpoint", "unit"],
            registry=r,
        )
        self.in_flight = Gauge(
            "modelport_gateway_in_flight",
            "Requests in flight per endpoint",
            ["namespace", "endpoint"],
            registry=r,
        )
        self.queued = Gauge(
            "modelport_gateway_queued",
            "Requests waiting for a concurrency slot per endpoint",
            ["namespace", "endpoint"],
            registry=r,
        )
        self.latency = Histogram(
            "modelport_gateway_request_seconds",
            "Time from request to the end of the answer",
            ["namespace", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_byte = Histogram(
            "modelport_gateway_first_byte_seconds",
            "Time from request to the first byte of the replica's answer",
            ["namespace", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "modelport_gateway_overhead_seconds",
            "The gateway's own processing per request: access, limits, routing before the upstream "
            "call (part=before), and the handling of every relayed chunk (part=relay); waits for a "
            "replica or a concurrency slot excluded",
            ["namespace", "endpoint", "part"],
            buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "modelport_gateway_time_per_output_token_seconds",
            "Time per output token after the first (streamed answers with more than one token)",
            ["namespace", "endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.replica_starts = Histogram(
            "modelport_replica_start_seconds",
            "From a replica's launch to its health route answering; cold=true when its endpoint had "
            "no ready replica (a start a request may be waiting for)",
            ["namespace", "endpoint", "cold"],
            buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.scale_events = Counter(
            "modelport_scale_events_total",
            "Changes of an endpoint's desired replica count, by who made them (autoscaler, request, user)",
            ["namespace", "endpoint", "cause"],
            registry=r,
        )
        self.replica_lost = Counter(
            "modelport_gateway_replica_lost_total",
            "Replicas taken out of rotation because they failed mid-answer",
            ["namespace", "endpoint"],
            registry=r,
        )
