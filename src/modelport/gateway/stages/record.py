"""The end of every admitted request, however it ended: its key charged (the reservation settled
with what it used), the metrics, and one usage record (with its texts for an endpoint that keeps
them). When the engine never reported a prompt that a replica took (a stream cut short, a client
that left before the answer began, a first-byte deadline), the gateway's estimate is charged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from modelport.gateway.context import RequestContext
from modelport.gateway.limits import Limiter
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.stages.admit import Admitted
from modelport.gateway.stages.forward import Forwarded
from modelport.gateway.stages.relay import Relayed
from modelport.gateway.stages.route import Target
from modelport.observe.usage_log import UsageLog
from modelport.store.records import UsageRecord


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a request, assembled from its stages' results."""

    ctx: RequestContext
    status: int
    target: Target | None = None  # where it was sent (None: refused before routing)
    admitted: Admitted | None = None  # None: refused before its tokens were reserved
    reached_replica: bool = False  # a replica took it (it may have worked on it)
    forwarded: Forwarded | None = None  # a replica's answer began
    relayed: Relayed | None = None  # ... and was relayed (or began to be)


class Recorder:
    def __init__(
        self,
        limiter: Limiter,
        metrics: GatewayMetrics,
        usage: UsageLog,
        clock: Callable[[], float],
        wall: Callable[[], datetime],
    ) -> None:
        self.limiter = limiter
        self.metrics = metrics
        self.usage = usage
        self.clock = clock
        self.wall = wall

    def refused_as_unknown(self, outcome: Outcome) -> None:
        """A request refused as if its endpoint did not exist (401/403/404): counted under the
        labels `-` (any name may be probed) and not recorded; a reservation it held (admitted,
        then the endpoint went away) is given back whole."""
        self.metrics.refused.labels("-", "-", str(outcome.status)).inc()
        if outcome.admitted is not None and outcome.admitted.reservation is not None:
            self.limiter.settle(outcome.admitted.reservation, 0, self.clock(), self.wall())

    def record(self, outcome: Outcome) -> None:
        """Charge, measure and record one request. Call it once per request."""
        ctx, admitted, forwarded, relayed = outcome.ctx, outcome.admitted, outcome.forwarded, outcome.relayed
        now = self.clock()
        latency = now - ctx.started
        prompt = relayed.prompt_tokens if relayed else 0
        completion = relayed.completion_tokens if relayed else 0
        answered_ok = forwarded is None or forwarded.response.status_code < 400
        if not prompt and outcome.reached_replica and answered_ok and admitted is not None:
            prompt = admitted.call.prompt_estimate  # the engine took the prompt but never said
        if admitted is not None and admitted.reservation is not None:
            self.limiter.settle(admitted.reservation, prompt + completion, now, self.wall())
        elif ctx.principal is not None:
            self.limiter.charge(ctx.principal, prompt + completion, now, self.wall())
        target = outcome.target
        served_by = target.view.name if target is not None else ctx.endpoint
        labels = (ctx.namespace, ctx.endpoint)
        self.metrics.requests.labels(*labels, served_by, str(outcome.status)).inc()
        self.metrics.latency.labels(*labels).observe(latency)
        if forwarded is not None:
            self.metrics.first_byte.labels(*labels).observe(forwarded.first_byte_s)
            if relayed is not None and relayed.sse and completion > 1:
                per_token = (latency - forwarded.first_byte_s) / (completion - 1)
                self.metrics.time_per_output_token.labels(*labels).observe(per_token)
            self.metrics.overhead.labels(*labels, "before").observe(forwarded.before_s)
            self.metrics.overhead.labels(*labels, "relay").observe(relayed.relay_s if relayed else 0.0)
        if prompt:
            self.metrics.tokens.labels(*labels, "prompt").inc(prompt)
        if completion:
            self.metrics.tokens.labels(*labels, "completion").inc(completion)
        units = relayed.units if relayed is not None else None
        for unit, amount in (units or {}).items():
            self.metrics.units.labels(*labels, unit).inc(amount)
        kept = admitted.transcript if admitted is not None else None
        text = kept.kept(ctx.request_id, ctx.namespace, ctx.endpoint, ctx.started_at) if kept else None
        model = forwarded.view.model if forwarded is not None else None
        revision = forwarded.view.revision if forwarded is not None else None
        self.usage.record(
            UsageRecord(
                request_id=ctx.request_id,
                key_id=ctx.principal.key_id if ctx.principal else None,
                namespace=ctx.namespace,
                endpoint=ctx.endpoint,
                served_by=served_by,
                policy=target.policy if target is not None else None,
                replica_id=forwarded.route.replica_id if forwarded is not None else None,
                path=ctx.path[:256],
                status=outcome.status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_ms=latency * 1000,
                first_byte_ms=forwarded.first_byte_s * 1000 if forwarded is not None else None,
                started_at=ctx.started_at,
                client=ctx.client,
                model=model[:512] if model else None,
                revision=revision[:128] if revision else None,
                units=units,
            ),
            text,
        )
