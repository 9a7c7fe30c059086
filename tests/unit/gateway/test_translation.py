"""The gateway's TGI/TEI → OpenAI translation (`modelport.gateway.translation`): which calls
are translated and how, streams cut at every byte, CRLF lines, multi-byte text, streams without
a usage chunk, upstream errors per status, and embedding order. Every TGI answer is parsed by
the real clients' own models and line parsers, so a shape mistake fails here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import text_generation.errors as tg_errors
from huggingface_hub import TextGenerationOutput, TextGenerationStreamOutput
from huggingface_hub.errors import GenerationError, OverloadedError, ValidationError
from huggingface_hub.inference._common import (
    _format_text_generation_stream_output,
    _parse_text_generation_error,
)
from text_generation.types import Response, StreamResponse

from modelport.gateway.metering import Call
from modelport.gateway.relayed_response import RelayedResponse
from modelport.gateway.routing import EndpointView
from modelport.gateway.translation import TgiStream, Translation, translation_for
from modelport.gateway.upstream import UpstreamResponse
from modelport.protocol.errors import APIError
from modelport.spec.endpoint import EndpointState, EndpointType, Intent

OPENAI_ONLY = frozenset({"openai"})


def view(task: str = "text-generation") -> EndpointView:
    return EndpointView("default", "m", EndpointType.PROTECTED, Intent.ACTIVE, EndpointState.RUNNING, "",
                        task=task, apis=OPENAI_ONLY)  # fmt: skip


def translate(path: str, body: object, task: str = "text-generation") -> Translation:
    t = translation_for(Call("POST", path, "", json.dumps(body).encode()), view(task))
    assert t is not None
    return t


def sse(event: object) -> bytes:
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


def chunk(text: str, finish: str | None = None, stop_reason: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": stop_reason}
    return sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [choice]})


def usage(prompt: int, completion: int) -> bytes:
    counts = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [],
                "usage": counts})  # fmt: skip


DONE = b"data: [DONE]\n\n"


def lines(out: bytes) -> list[str]:
    """The SSE lines a client reads, as `requests.iter_lines` / httpx hand them over."""
    return [line for line in out.decode().splitlines() if line]


def tgi_events(out: bytes) -> list[StreamResponse]:
    """The `text-generation` client's parse: each data line is a StreamResponse, or an error."""
    events = []
    for line in lines(out):
        assert line.startswith("data:")
        payload = json.loads(line.removeprefix("data:"))
        if "error" in payload:
            raise tg_errors.parse_error(200, payload)
        events.append(StreamResponse(**payload))
    return events


def hub_events(out: bytes) -> list[TextGenerationStreamOutput]:
    parsed = [_format_text_generation_stream_output(line, details=True) for line in lines(out)]
    return [cast(TextGenerationStreamOutput, p) for p in parsed if p is not None]


def feed_in_pieces(stream: TgiStream, upstream: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(upstream), size):
        out += stream.feed(upstream[i : i + size])
    return out + stream.close()


VLLM_STREAM = chunk(" Grüß") + chunk(" 世界") + chunk(" 🎉", "stop", "\n") + usage(4, 3) + DONE


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(VLLM_STREAM)])
def test_a_stream_cut_anywhere_gives_the_same_events(size: int) -> None:
    out = feed_in_pieces(TgiStream(prefix="Hi", seed=7), VLLM_STREAM, size)
    events = tgi_events(out)
    assert [e.token.text for e in events] == [" Grüß", " 世界", " 🎉"]
    assert [e.generated_text for e in events] == [None, None, "Hi Grüß 世界 🎉"]  # return_full_text
    details = events[-1].details
    assert details is not None and details.generated_tokens == 3 and details.seed == 7
    assert details.finish_reason.value == "stop_sequence"  # vLLM's stop_reason is the stop string
    hub = hub_events(out)
    assert [h.index for h in hub] == [1, 2, 3]
    assert hub[-1].details is not None and hub[-1].details.finish_reason == "stop_sequence"
    text_only = [_format_text_generation_stream_output(line, details=False) for line in lines(out)]
    assert "".join(cast(list[str], text_only)) == " Grüß 世界 🎉"  # InferenceClient(stream=True)


def test_crlf_lines_and_data_without_a_space() -> None:
    upstream = (chunk("a") + chunk("b", "length") + usage(1, 2) + DONE).replace(b"\n", b"\r\n")
    events = tgi_events(feed_in_pieces(TgiStream(), upstream.replace(b"data: ", b"data:"), 5))
    assert [e.token.text for e in events] == ["a", "b"] and events[-1].generated_text == "ab"


def test_each_token_is_sent_when_its_chunk_arrives() -> None:
    stream = TgiStream()
    assert [e.token.text for e in tgi_events(stream.feed(chunk("one")))] == ["one"]
    assert stream.feed(b'data: {"choices": [{"index": 0, "te') == b""  # half a line: nothing yet
    assert [e.token.text for e in tgi_events(stream.feed(b'xt": "two", "finish_reason": null}]}\n\n'))] == [
        "two"
    ]


def test_a_stream_without_usage_still_ends_with_details() -> None:
    # llama.cpp and older vLLM ignore stream_options: [DONE] closes the generation
    out = feed_in_pieces(TgiStream(), chunk("x") + chunk("y") + chunk("", "stop") + DONE, 3)
    events = tgi_events(out)
    assert events[-1].generated_text == "xy" and events[-1].details is not None
    assert events[-1].details.finish_reason.value == "eos_token"
    assert events[-1].details.generated_tokens == 3
    assert sum(e.details is not None for e in events) == 1


@pytest.mark.parametrize(
    "error_event",
    [
        {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}},  # vLLM, llama.cpp
        {"error": "engine died", "error_type": "overloaded"},  # the gateway's own error event, TGI dialect
    ],
)
def test_an_upstream_error_event_ends_the_stream_as_a_tgi_error(error_event: dict[str, Any]) -> None:
    out = feed_in_pieces(TgiStream(), chunk("a") + sse(error_event) + DONE, 4)
    assert json.loads(lines(out)[-1].removeprefix("data:")) == {
        "error": "engine died",
        "error_type": "generation",
    }
    with pytest.raises(tg_errors.GenerationError, match="engine died"):
        tgi_events(out)
    with pytest.raises(GenerationError, match="engine died"):
        hub_events(out)


class FakeUpstream:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}


async def _body(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _nothing() -> None:
    return None


def answer(t: Translation, status: int, *pieces: bytes) -> tuple[int, Any]:
    response = t.response(cast(UpstreamResponse, FakeUpstream(status)), _body(*pieces), _nothing)

    assert isinstance(response, RelayedResponse)

    async def read() -> bytes:
        iterator = cast(AsyncIterator[bytes], response.body_iterator)
        return b"".join([piece async for piece in iterator])

    raw = asyncio.run(read())
    return response.status_code, json.loads(raw) if not t.stream or status >= 400 else raw


COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "text": " there", "logprobs": None, "finish_reason": "length", "stop_reason": None}
    ],
    "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7},
}


def test_whole_answers_for_the_generate_and_task_routes() -> None:
    params = {"max_new_tokens": 5, "details": True, "decoder_input_details": False, "seed": 11}
    status, body = answer(translate("/generate", {"inputs": "Hi", "parameters": params}), 200,
                          json.dumps(COMPLETION).encode())  # fmt: skip
    parsed = Response(**body)
    assert status == 200 and parsed.generated_text == " there"
    assert parsed.details.finish_reason.value == "length" and parsed.details.generated_tokens == 5
    assert parsed.details.seed == 11
    # text_generation.Client.generate posts to "/" and reads payload[0]
    _, listed = answer(translate("/", {"inputs": "Hi", "parameters": params, "stream": False}), 200,
                       json.dumps(COMPLETION).encode())  # fmt: skip
    assert Response(**listed[0]) == parsed
    # InferenceClient.text_generation(details=False): data[0]["generated_text"]; full text asked
    plain = {"inputs": "Hi", "parameters": {"return_full_text": True}}
    _, hub = answer(translate("/", plain), 200, json.dumps(COMPLETION).encode())
    assert hub == [{"generated_text": "Hi there"}]
    assert TextGenerationOutput.parse_obj_as_list(hub)[0].generated_text == "Hi there"


def test_streamed_answer_through_the_translation() -> None:
    t = translate("/generate_stream", {"inputs": "Hi", "parameters": {"max_new_tokens": 3}})
    status, raw = answer(t, 200, VLLM_STREAM[:9], VLLM_STREAM[9:40], VLLM_STREAM[40:])
    assert status == 200
    assert tgi_events(raw)[-1].generated_text == " Grüß 世界 🎉"  # no return_full_text: no prompt


@pytest.mark.parametrize(
    ("upstream_status", "tgi", "tg_error", "hub_error"),
    [
        (400, 422, tg_errors.ValidationError, ValidationError),
        (429, 429, tg_errors.OverloadedError, OverloadedError),
        (500, 500, tg_errors.GenerationError, GenerationError),
    ],
)
def test_upstream_errors_get_tgi_status_and_shape(
    upstream_status: int, tgi: int, tg_error: type[Exception], hub_error: type[Exception]
) -> None:
    openai_error = {"error": {"message": "max_tokens is too large", "type": "BadRequestError", "code": 400}}
    for path, stream in (("/generate", False), ("/generate_stream", True)):
        t = translate(path, {"inputs": "secret prompt", "parameters": {}})
        assert t.stream is stream
        status, body = answer(t, upstream_status, json.dumps(openai_error).encode())
        assert status == tgi and body["error"] == "max_tokens is too large"
        with pytest.raises(tg_error):
            raise tg_errors.parse_error(status, body)
        assert isinstance(_parse_text_generation_error(body["error"], body["error_type"]), hub_error)


def test_a_non_json_upstream_error_still_gets_a_tgi_body() -> None:
    status, body = answer(translate("/generate", {"inputs": "x"}), 502, b"<html>Bad Gateway</html>")
    assert status == 502 and body == {"error": "the engine answered 502", "error_type": "generation"}


def test_embeddings_come_back_in_input_order() -> None:
    t = translate("/embed", {"inputs": ["a", "b", "c"], "truncate": True})
    assert t.path == "/v1/embeddings" and json.loads(t.body) == {"model": "m", "input": ["a", "b", "c"]}
    rows = [{"object": "embedding", "index": i, "embedding": [float(i), 0.5]} for i in (2, 0, 1)]
    upstream = {
        "object": "list",
        "model": "m",
        "data": rows,
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    status, vectors = answer(t, 200, json.dumps(upstream).encode())
    assert status == 200 and vectors == [[0.0, 0.5], [1.0, 0.5], [2.0, 0.5]]
    task = translate("/", {"inputs": "a", "normalize": True}, task="feature-extraction")
    assert task.kind == "embed" and json.loads(task.body)["input"] == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": 3},
        {"inputs": "secret prompt", "parameters": "hot"},
        {"inputs": "secret prompt", "parameters": {"max_new_tokens": "many"}},
        {"inputs": "secret prompt", "parameters": {"stop": "\n"}},
        {"inputs": "secret prompt", "parameters": {"best_of": 2}},
    ],
)
def test_bad_generate_requests_are_422_without_the_prompt(body: dict[str, Any]) -> None:
    with pytest.raises(APIError) as info:
        translate("/generate", body)
    assert info.value.status == 422 and info.value.error_type == "validation"
    assert "secret" not in info.value.message


@pytest.mark.parametrize("name", ["best_of", "top_k", "seed", "temperature", "top_p", "repetition_penalty"])
def test_a_parameter_of_the_wrong_type_is_a_422_naming_it(name: str) -> None:
    with pytest.raises(APIError) as info:
        translate("/generate", {"inputs": "x", "parameters": {name: "2"}})
    assert info.value.status == 422 and info.value.param == name


def test_only_missing_apis_are_translated() -> None:
    native = EndpointView("default", "m", EndpointType.PROTECTED, Intent.ACTIVE, EndpointState.RUNNING, "")
    assert translation_for(Call("POST", "/generate", "", b'{"inputs": "x"}'), native) is None
    assert translation_for(Call("POST", "/v1/completions", "", b"{}"), view()) is None
    generate = translate("/generate", {"inputs": "x", "parameters": {"max_new_tokens": 5}})
    assert generate.path == "/v1/completions"
    body = json.loads(generate.body)
    assert body == {"model": "m", "prompt": "x", "max_tokens": 5, "stream": False, "temperature": 0.0}
    embed = translate("/", {"inputs": "x"}, task="feature-extraction")
    assert embed.path == "/v1/embeddings" and json.loads(embed.body) == {"model": "m", "input": ["x"]}


def test_sampling_parameters_and_streams() -> None:
    params = {"do_sample": True, "top_k": 5, "seed": 3, "stop": ["\n"], "repetition_penalty": 1.1}
    t = translate("/", {"inputs": "x", "parameters": params, "stream": True})
    assert t.stream and t.list_answer
    body = json.loads(t.body)
    assert body["temperature"] == 1.0 and body["top_k"] == 5 and body["stop"] == ["\n"]
    assert body["stream_options"] == {"include_usage": True}
