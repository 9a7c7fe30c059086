"""Work that is not tokens: the replica's `x-modelport-units` header parsed by the Meter (unknown
names, negative, non-finite and overlong values ignored), media bodies estimated at 0 prompt
tokens and passed on untouched, which task routes have an output allowance, and the units
counted in the metrics and kept in the usage record."""

from __future__ import annotations

import json

import pytest

from modelport.gateway.limits import Limiter
from modelport.gateway.metering import (
    GENERATING_TASKS,
    MAX_UNITS_HEADER,
    Meter,
    generates,
    parse_units,
    prepare,
)
from modelport.gateway.metrics import GatewayMetrics
from modelport.gateway.routing import Route
from modelport.gateway.stages.admit import Admitted
from modelport.gateway.stages.forward import Forwarded
from modelport.gateway.stages.record import Outcome, Recorder
from modelport.gateway.stages.relay import Relayed
from modelport.gateway.stages.route import Target

from .neighbours import NOW, UsageRecords, context, endpoint

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # not UTF-8, not JSON


@pytest.mark.parametrize(
    ("header", "units"),
    [
        ("audio_seconds=3.25,images=1", {"audio_seconds": 3.25, "images": 1.0}),
        (" documents = 4 , pixels=262144 ", {"documents": 4.0, "pixels": 262144.0}),
        ("audio_seconds=1,audio_seconds=2", {"audio_seconds": 2.0}),  # the last one
        ("images=1,frames=30,tokens=9", {"images": 1.0}),  # names it does not count are ignored
        ("images=-1,audio_seconds=2", {"audio_seconds": 2.0}),
        ("images=nan,pixels=inf,documents=1e999", None),  # non-finite (1e999 overflows to inf)
        ("images=one,=3,images", None),
        ("", None),
        (None, None),
        ("images=1," + "x" * MAX_UNITS_HEADER, None),  # too long: ignored whole, not parsed
    ],
)
def test_the_units_header_is_parsed_strictly(header: str | None, units: dict[str, float] | None) -> None:
    assert parse_units(header) == units


def test_the_meter_reads_units_beside_the_token_headers_and_relays_the_body_untouched() -> None:
    headers = {"x-prompt-tokens": "12", "x-modelport-units": "audio_seconds=3.25"}
    meter = Meter(sse=False, strip_usage=False, headers=headers)
    body = json.dumps({"text": "hello"}).encode()
    assert meter.feed(body) == body and meter.finish() == b""
    assert (meter.prompt_tokens, meter.units) == (12, {"audio_seconds": 3.25})
    assert Meter(sse=False, strip_usage=False, headers={"x-prompt-tokens": "3"}).units is None


@pytest.mark.parametrize("path", ["/", "/predict", "/v1/audio/transcriptions"])
def test_a_media_body_is_passed_on_untouched_and_estimated_at_no_prompt_tokens(path: str) -> None:
    call = prepare("POST", path, "", PNG, task="image-classification", media=True)
    assert call.body is PNG and call.prompt_estimate == 0 and call.output_allowance == 0
    assert call.reserve == 0 and not call.stream
    # the same bytes as text (no media type said) are estimated as before: ceil(bytes / 3)
    assert prepare("POST", path, "", PNG, task="image-classification").prompt_estimate == -(-len(PNG) // 3)


def test_only_text_generating_tasks_have_an_output_allowance_on_the_task_routes() -> None:
    body = json.dumps({"inputs": "abc"}).encode()
    for task in GENERATING_TASKS:
        assert prepare("POST", "/", "", body, task=task).output_allowance == 100, task
    for task in ("image-classification", "automatic-speech-recognition", "text-to-image",
                 "token-classification", "feature-extraction", "text-classification"):  # fmt: skip
        call = prepare("POST", "/", "", body, task=task)
        assert (call.generates, call.output_allowance, call.prompt_estimate) == (False, 0, 1), task
    assert generates("/predict", "summarization") and not generates("/predict", "zero-shot-classification")
    assert not generates("/v1/audio/transcriptions", "text-generation")
    assert not generates("/v1/images/generations", "text-generation")
    assert not generates("/v1/rerank", "text-generation")
    assert generates("/v1/chat/completions", "image-classification")  # the route decides elsewhere
    assert generates("/", None)  # an endpoint without a task: text generation, as before


def test_units_are_counted_in_the_metrics_and_kept_in_the_usage_record() -> None:
    usage, metrics = UsageRecords(), GatewayMetrics()
    recorder = Recorder(Limiter(), metrics, usage, lambda: 1.0, lambda: NOW)  # type: ignore[arg-type]
    call = prepare("POST", "/", "", PNG, task="image-classification", media=True)
    view = endpoint("chat", task="image-classification")

    class Answer:
        status_code = 200

    forwarded = Forwarded(Answer(), Route("r1", "http://r", 1), view, None, 0.5, 0.0)  # type: ignore[arg-type]
    admitted = Admitted(call, None, None)
    for units in ({"images": 1.0, "pixels": 65536.0}, {"images": 2.0}, None):
        relayed = Relayed(200, 0, 0, False, 0.0, units)
        recorder.record(Outcome(context("/"), 200, Target(view), admitted, True, forwarded, relayed))
    assert [r.units for r in usage.records] == [{"images": 1.0, "pixels": 65536.0}, {"images": 2.0}, None]
    assert [r.prompt_tokens for r in usage.records] == [0, 0, 0]  # media: nothing estimated either

    def sample(unit: str) -> float | None:
        labels = {"namespace": "default", "endpoint": "chat", "unit": unit}
        return metrics.registry.get_sample_value("modelport_gateway_units_total", labels)

    assert (sample("images"), sample("pixels"), sample("audio_seconds")) == (3.0, 65536.0, None)
