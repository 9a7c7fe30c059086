"""Prometheus metrics of one engine, vLLM-style names under the ``modelport:`` prefix."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)


class EngineMetrics:
    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        r = self.registry
        self.running = Gauge(
            "modelport:num_requests_running", "Sequences in the running batch.", labels, registry=r
        ).labels(model_name)
        self.waiting = Gauge(
            "modelport:num_requests_waiting", "Sequences waiting for admission.", labels, registry=r
        ).labels(model_name)
        self.kv_usage = Gauge(
            "modelport:kv_cache_usage_perc", "Fraction of KV cache blocks in use (0-1).", labels, registry=r
        ).labels(model_name)
        self.kv_blocks = Gauge(
            "modelport:kv_cache_blocks_total", "KV cache blocks in the pool.", labels, registry=r
        ).labels(model_name)
        self.kv_bytes = Gauge(
            "modelport:kv_cache_bytes", "Bytes allocated for the KV cache pool.", labels, registry=r
        ).labels(model_name)
        self.weight_bytes = Gauge(
            "modelport:model_weight_bytes", "Bytes of model weights in memory.", labels, registry=r
        ).labels(model_name)
        self.prompt_tokens = Counter(
            "modelport:prompt_tokens", "Prefill tokens processed.", labels, registry=r
        ).labels(model_name)
        self.generation_tokens = Counter(
            "modelport:generation_tokens", "Tokens generated.", labels, registry=r
        ).labels(model_name)
        self.preemptions = Counter(
            "modelport:num_preemptions", "Sequences preempted for lack of KV blocks.", labels, registry=r
        ).labels(model_name)
        self.requests = Counter(
            "modelport:request_success",
            "Finished sequences by reason.",
            ["model_name", "finished_reason"],
            registry=r,
        )
        self.model_name = model_name
        self.ttft = Histogram(
            "modelport:time_to_first_token_seconds",
            "Time to first token.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.tpot = Histogram(
            "modelport:time_per_output_token_seconds",
            "Time per output token after the first.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.e2e = Histogram(
            "modelport:e2e_request_latency_seconds",
            "End-to-end sequence latency.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.queue_time = Histogram(
            "modelport:request_queue_time_seconds",
            "Time waiting before first admission.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(model_name)

    def finished(self, reason: str) -> None:
        self.requests.labels(self.model_name, reason).inc()
