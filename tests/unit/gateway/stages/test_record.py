"""The end of a request (gateway/stages/record.py over a real Limiter and metrics): what its
key is charged, which metrics it counts and the one usage record built from its Outcome."""

from __future__ import annotations

import json
from typing import Any

from modelport.gateway.limits import Limiter
from modelport.gateway.metering import prepare
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.routing import Route
from modelport.gateway.stages.admit import Admitted
from modelport.gateway.stages.forward import Forwarded
from modelport.gateway.stages.record import Outcome, Recorder
from modelport.gateway.stages.relay import Relayed
from modelport.gateway.stages.route import Target
from modelport.gateway.transcript import Transcript

from ..neighbours import NOW, UsageRecords, context, endpoint, keyring, principal

BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 9}
)


class Answer:
    """An upstream answer's status, as the record reads it."""

    def __init__(self, status: int) -> None:
        self.status_code = status


class Setup:
    def __init__(self, **limits: Any) -> None:
        self.ring, self.key_id, key = keyring(**limits)
        self.who = principal(self.ring, key)
        self.limiter = Limiter()
        self.usage = UsageRecords()
        self.metrics = GatewayMetrics()
        self.recorder = Recorder(self.limiter, self.metrics, self.usage, lambda: 2.5, lambda: NOW)  # type: ignore[arg-type]
        self.call = prepare("POST", "/v1/chat/completions", "", BODY.encode())
        reservation = self.limiter.admit(self.who, self.call.reserve, 0.0, NOW)
        assert not isinstance(reservation, type(None))
        self.admitted = Admitted(self.call, reservation, None)  # type: ignore[arg-type]

    def forwarded(self, status: int = 200) -> Forwarded:
        served = endpoint("backup", model="org/model", revision="abc123")
        return Forwarded(Answer(status), Route("replica-7", "http://r", 1), served, None, 0.5, 0.0002)  # type: ignore[arg-type]

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(
            name, {"namespace": "default", "endpoint": "chat", **labels}
        )
        return value or 0.0

    def used(self) -> int:
        return self.limiter.budgets[self.key_id].used if self.key_id in self.limiter.budgets else 0


def test_a_relayed_answer_is_charged_what_the_engine_reported_and_recorded_once() -> None:
    s = Setup(token_budget=10_000)
    relayed = Relayed(200, 7, 5, True, 0.0003)
    target = Target(endpoint("backup"), "fallback")
    s.recorder.record(Outcome(context(who=s.who), 200, target, s.admitted, True, s.forwarded(), relayed))
    [record] = s.usage.records
    assert (record.key_id, record.served_by, record.policy, record.replica_id) == (
        s.key_id,
        "backup",
        "fallback",
        "replica-7",
    )
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (200, 7, 5)
    assert (record.latency_ms, record.first_byte_ms, record.model, record.revision) == (
        2500,
        500,
        "org/model",
        "abc123",
    )
    assert (record.request_id, record.client, record.started_at, record.path) == (
        "req-1",
        "127.0.0.1",
        NOW,
        "/v1/chat/completions",
    )
    assert s.limiter.reserved == {} and s.used() == 12  # the reservation became the real charge
    assert s.sample("modelport_gateway_requests_total", served_by="backup", status="200") == 1
    assert s.sample("modelport_gateway_tokens_total", kind="prompt") == 7
    assert s.sample("modelport_gateway_overhead_seconds_sum", part="before") == 0.0002
    assert s.sample("modelport_gateway_overhead_seconds_sum", part="relay") == 0.0003
    assert s.sample("modelport_gateway_time_per_output_token_seconds_sum") == (2.5 - 0.5) / 4


def test_a_prompt_a_replica_took_but_never_reported_is_charged_at_its_estimate() -> None:
    """A client that left while waiting for the first byte, a first-byte deadline, a cut stream."""
    for forwarded, relayed in ((None, None), ("answer", Relayed(200, 0, 2, True, 0.0))):
        s = Setup(token_budget=10_000)
        answer = s.forwarded() if forwarded else None
        s.recorder.record(
            Outcome(context(who=s.who), 499, Target(endpoint()), s.admitted, True, answer, relayed)
        )
        assert s.usage.records[0].prompt_tokens == s.call.prompt_estimate > 0
        assert s.used() == s.call.prompt_estimate + (relayed.completion_tokens if relayed else 0)


def test_nothing_is_charged_for_a_request_no_replica_kept_or_one_it_refused() -> None:
    s = Setup(token_budget=10_000)
    s.recorder.record(Outcome(context(who=s.who), 502, Target(endpoint()), s.admitted, False))
    s2 = Setup(token_budget=10_000)
    refused = Relayed(429, 0, 0, False, 0.0)
    s2.recorder.record(
        Outcome(context(who=s2.who), 429, Target(endpoint()), s2.admitted, True, s2.forwarded(429), refused)
    )
    for setup in (s, s2):
        assert (
            setup.usage.records[0].prompt_tokens == 0 and setup.used() == 0 and setup.limiter.reserved == {}
        )
    assert s.sample("modelport_gateway_overhead_seconds_count", part="before") == 0  # never forwarded


def test_a_request_refused_before_routing_is_recorded_as_the_endpoint_called() -> None:
    s = Setup()
    s.recorder.record(Outcome(context(who=s.who), 429))
    [record] = s.usage.records
    assert (record.served_by, record.policy, record.replica_id, record.first_byte_ms) == (
        "chat",
        None,
        None,
        None,
    )


def test_a_request_refused_as_unknown_is_counted_under_dashes_and_its_reservation_returned() -> None:
    s = Setup(token_budget=10_000)
    s.recorder.refused_as_unknown(Outcome(context(who=s.who), 404, None, s.admitted))
    assert s.usage.records == [] and s.limiter.reserved == {} and s.used() == 0
    labels = {"namespace": "-", "endpoint": "-", "reason": "404"}
    assert s.metrics.registry.get_sample_value("modelport_gateway_refused_total", labels) == 1


def test_the_texts_of_an_endpoint_that_keeps_them_go_with_the_record() -> None:
    s = Setup()
    transcript = Transcript(BODY.encode(), 2)
    admitted = Admitted(s.call, None, transcript)
    s.recorder.record(
        Outcome(
            context(), 200, Target(endpoint()), admitted, True, s.forwarded(), Relayed(200, 1, 1, False, 0)
        )
    )
    [text] = s.usage.texts
    assert text is not None and text.request == BODY and text.request_id == "req-1"
