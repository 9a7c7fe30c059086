"""TGI/TEI ↔ OpenAI translation, checked with the real clients' own parsers."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import TextGenerationOutput, TextGenerationStreamOutput
from text_generation.types import Response, StreamResponse

from modelport.gateway.metering import Call
from modelport.gateway.routing import EndpointView
from modelport.gateway.translation import TgiStream, plan
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointState, EndpointType, Intent


def view(apis: frozenset[str], task: str = "text-generation") -> EndpointView:
    return EndpointView("default", "m", EndpointType.PROTECTED, Intent.ACTIVE, EndpointState.RUNNING, "",
                        task=task, apis=apis)  # fmt: skip


OPENAI_ONLY = frozenset({"openai"})


def call(path: str, body: object) -> Call:
    return Call("POST", path, "", json.dumps(body).encode())


def test_only_missing_apis_are_translated() -> None:
    assert plan(call("/generate", {"inputs": "x"}), view(frozenset({"openai", "tgi", "tei"}))) is None
    assert plan(call("/v1/completions", {}), view(OPENAI_ONLY)) is None
    generate = plan(
        call("/generate", {"inputs": "x", "parameters": {"max_new_tokens": 5}}), view(OPENAI_ONLY)
    )
    assert generate is not None and generate.path == "/v1/completions"
    body = json.loads(generate.body)
    assert body == {"model": "m", "prompt": "x", "max_tokens": 5, "stream": False, "temperature": 0.0}
    embed = plan(call("/", {"inputs": "x"}), view(OPENAI_ONLY, task="feature-extraction"))
    assert embed is not None and json.loads(embed.body) == {"model": "m", "input": ["x"]}


def test_sampling_parameters_and_streams() -> None:
    params = {"do_sample": True, "top_k": 5, "seed": 3, "stop": ["\n"], "repetition_penalty": 1.1}
    t = plan(call("/", {"inputs": "x", "parameters": params, "stream": True}), view(OPENAI_ONLY))
    assert t is not None and t.stream and t.list_answer
    body = json.loads(t.body)
    assert body["temperature"] == 1.0 and body["top_k"] == 5 and body["stop"] == ["\n"]
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "inputs"),
        ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, "max_new_tokens"),
        ({"inputs": "x", "parameters": {"best_of": 2}}, "best_of"),
        ({"inputs": "x", "parameters": {"stop": "a"}}, "stop"),
    ],
)
def test_bad_requests_get_422_naming_the_parameter(body: object, param: str) -> None:
    with pytest.raises(APIError) as info:
        plan(call("/generate", body), view(OPENAI_ONLY))
    assert info.value.status == 422 and info.value.param == param


def completion_chunk(text: str, finish: str | None = None) -> bytes:
    event = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def test_stream_translation_parses_with_both_clients_and_carries_details_last() -> None:
    upstream = (
        completion_chunk(" Hello")
        + completion_chunk(" world")
        + completion_chunk("!", "length")
        + b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}\n\n'
        + b"data: [DONE]\n\n"
    )
    stream = TgiStream(prefix="")
    out = b""
    for i in range(0, len(upstream), 5):
        out += stream.feed(upstream[i : i + 5])
    out += stream.close()
    events = [json.loads(line[5:]) for line in out.split(b"\n") if line.startswith(b"data:")]
    parsed = [StreamResponse(**e) for e in events]
    assert [p.token.text for p in parsed] == [" Hello", " world", "!"]
    assert parsed[-1].generated_text == " Hello world!" and parsed[-1].details is not None
    assert parsed[-1].details.generated_tokens == 3 and parsed[-1].details.finish_reason.value == "length"
    hub = [TextGenerationStreamOutput.parse_obj_as_instance(e) for e in events]
    assert hub[-1].details is not None and hub[-1].details.generated_tokens == 3


def test_stream_error_event_becomes_a_tgi_error() -> None:
    stream = TgiStream()
    out = stream.feed(completion_chunk("a") + b'data: {"error": {"message": "boom", "type": "x"}}\n\n')
    last = json.loads(out.split(b"\n\n")[-2][5:])
    assert last == {"error": "boom", "error_type": "generation"}


def test_whole_answer_shapes() -> None:
    t = plan(call("/generate", {"inputs": "Hi", "parameters": {"details": True, "return_full_text": True}}),
             view(OPENAI_ONLY))  # fmt: skip
    assert t is not None
    answer = {"choices": [{"text": " there", "finish_reason": "stop", "stop_reason": None}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 2}}  # fmt: skip
    out = t._generated(answer)
    parsed = Response(**out)
    assert parsed.generated_text == "Hi there" and parsed.details.finish_reason.value == "eos_token"
    task = plan(call("/", {"inputs": "Hi", "parameters": {"details": True}}), view(OPENAI_ONLY))
    assert task is not None
    listed = task._generated({**answer, "choices": [{**answer["choices"][0], "stop_reason": "\n"}]})
    hub = TextGenerationOutput.parse_obj_as_instance(listed[0])
    assert hub.details is not None and hub.details.finish_reason == "stop_sequence"
