"""Usage metering on relayed bodies, and the usage chunk added for metering taken out again."""

from __future__ import annotations

import json
import math

from modelport.gateway import translation
from modelport.gateway.metering import DEFAULT_OUTPUT_ALLOWANCE, EMBEDDING_TASKS, Meter, prepare


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


CHUNK = {"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


def test_streams_that_did_not_ask_for_usage_get_it_added_for_metering() -> None:
    call = prepare("POST", "/v1/chat/completions", "", json.dumps({"stream": True, "messages": []}).encode())
    assert call.stream and call.strip_usage
    assert json.loads(call.body)["stream_options"] == {"include_usage": True}
    asked = prepare(
        "POST", "/v1/completions", "", b'{"stream": true, "stream_options": {"include_usage": true}}'
    )
    assert asked.stream and not asked.strip_usage
    plain = prepare("POST", "/v1/chat/completions", "", b'{"messages": []}')
    assert not plain.stream and plain.body == b'{"messages": []}'
    assert prepare("POST", "/generate_stream", "", b'{"inputs": "x"}').stream


def test_stream_usage_is_metered_and_stripped_byte_for_byte_otherwise() -> None:
    body = sse(CHUNK) + sse(CHUNK) + sse(USAGE) + b"data: [DONE]\n\n"
    meter = Meter(sse=True, strip_usage=True)
    out = b""
    for i in range(0, len(body), 7):  # split anywhere, even inside an event
        out += meter.feed(body[i : i + 7])
    out += meter.finish()
    assert out == sse(CHUNK) + sse(CHUNK) + b"data: [DONE]\n\n"
    assert (meter.prompt_tokens, meter.completion_tokens) == (7, 3)


def test_usage_chunk_is_kept_when_the_client_asked() -> None:
    body = sse(CHUNK) + sse(USAGE) + b"data: [DONE]\n\n"
    meter = Meter(sse=True, strip_usage=False)
    assert meter.feed(body) + meter.finish() == body
    assert meter.completion_tokens == 3


def test_a_stream_cut_short_is_charged_the_token_events_relayed() -> None:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    quote = {"choices": [{"index": 0, "delta": {"content": '"'}}]}
    legacy = {"choices": [{"index": 0, "text": "yo", "finish_reason": None}]}
    tgi = {"token": {"id": 5, "text": " a", "special": False}, "generated_text": None}
    meter = Meter(sse=True, strip_usage=True)
    for event in (role, CHUNK, quote, legacy, tgi):
        meter.feed(sse(event))
    meter.feed(sse(CHUNK)[:-3])  # an event the client never got whole
    assert (meter.prompt_tokens, meter.completion_tokens) == (0, 4)  # the role chunk is no token
    meter.feed(sse(CHUNK)[-3:] + sse(USAGE))  # the engine's own count arrives: it wins
    assert (meter.prompt_tokens, meter.completion_tokens) == (7, 3)


def test_token_events_pass_as_soon_as_they_are_complete() -> None:
    meter = Meter(sse=True, strip_usage=True)
    assert meter.feed(sse(CHUNK)[:-1]) == b""  # not complete yet
    assert meter.feed(b"\n") == sse(CHUNK)


def test_json_answers_and_tgi_details_are_metered() -> None:
    meter = Meter(sse=False, strip_usage=False)
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}).encode()
    assert meter.feed(body[:10]) + meter.feed(body[10:]) == body
    meter.finish()
    assert (meter.prompt_tokens, meter.completion_tokens) == (5, 2)
    tgi = Meter(sse=False, strip_usage=False, headers={"x-prompt-tokens": "4"})
    tgi.feed(json.dumps([{"generated_text": "x", "details": {"generated_tokens": 6}}]).encode())
    tgi.finish()
    assert (tgi.prompt_tokens, tgi.completion_tokens) == (4, 6)
    stream = Meter(sse=True, strip_usage=False)
    stream.feed(
        b'data:{"token": {"text": "a"}, "details": {"finish_reason": "length", "generated_tokens": 9}}\n\n'
    )
    assert stream.completion_tokens == 9


def test_openai_calls_are_renamed_to_the_one_model_a_named_engine_serves() -> None:
    body = json.dumps({"model": "dummy", "messages": [], "stream": True}).encode()
    call = prepare("POST", "/v1/chat/completions", "", body, model_name="chat")
    sent = json.loads(call.body)
    assert sent["model"] == "chat" and sent["stream_options"] == {"include_usage": True}
    assert call.stream and call.strip_usage
    plain = prepare("POST", "/v1/completions", "", b'{"model": "x", "prompt": "hi"}', model_name="chat")
    assert json.loads(plain.body) == {"model": "chat", "prompt": "hi"} and not plain.stream


def test_bodies_are_left_alone_when_nothing_needs_changing() -> None:
    same = b'{"model": "chat", "prompt": "hi"}'
    assert prepare("POST", "/v1/completions", "", same, model_name="chat").body == same
    assert prepare("POST", "/v1/completions", "", b'{"model": "x"}').body == b'{"model": "x"}'  # any name
    tgi = b'{"inputs": "hi", "model": "x"}'
    assert prepare("POST", "/generate", "", tgi, model_name="chat").body == tgi  # translated elsewhere
    broken = prepare("POST", "/v1/completions", "", b'{"model": ', model_name="chat")
    assert broken.body == b'{"model": ' and not broken.stream  # the engine answers the mistake


def estimate(path: str, body: object, task: str = "text-generation") -> tuple[int, int]:
    call = prepare("POST", path, "", json.dumps(body).encode(), task=task)
    return call.prompt_estimate, call.output_allowance


def test_prompt_tokens_are_estimated_conservatively_from_the_request() -> None:
    # ceil(utf-8 bytes / 3) over the texts, 4 per message and 3 per chat for the template
    chat = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 7}
    assert estimate("/v1/chat/completions", chat) == (4 + 3 + 5, 7)  # "user" + "hello there": 15 bytes
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "é" * 6}]}]}
    assert estimate("/v1/chat/completions", parts)[0] == 4 + 3 + math.ceil((4 + 4 + 12) / 3)
    assert estimate("/v1/completions", {"prompt": [[1, 2, 3], [4, 5]], "max_tokens": 2}) == (5, 4)  # ids
    assert estimate("/generate", {"inputs": "x" * 30, "parameters": {"max_new_tokens": 9}}) == (10, 9)
    assert prepare("POST", "/v1/completions", "", b"not json " * 10).prompt_estimate == 30
    unknown = {"question": "a" * 9, "stop": True}  # an API it does not know: all its texts count
    assert estimate("/v1/custom", unknown)[0] == 3


def test_output_allowance_is_the_requests_own_limit_times_its_choices_or_the_apis_default() -> None:
    assert estimate("/v1/chat/completions", {"messages": [], "max_completion_tokens": 5, "n": 3})[1] == 15
    assert estimate("/v1/completions", {"prompt": "x", "max_tokens": 4, "best_of": 2})[1] == 8
    assert estimate("/v1/completions", {"prompt": ["a", "b", "c"], "max_tokens": 4})[1] == 12  # 3 prompts
    assert estimate("/v1/completions", {"prompt": [[1], [2]], "max_tokens": 4, "n": 2})[1] == 16
    assert estimate("/generate", {"inputs": "x", "parameters": {"max_new_tokens": 3, "best_of": 2}})[1] == 6
    assert estimate("/v1/chat/completions", {"messages": []})[1] == DEFAULT_OUTPUT_ALLOWANCE
    assert estimate("/v1/completions", {"prompt": "x", "max_tokens": None})[1] == 16
    assert estimate("/generate_stream", {"inputs": "x", "parameters": {"max_new_tokens": -1}})[1] == 100
    # embeddings produce nothing: their reservation is the prompt alone
    assert estimate("/v1/embeddings", {"input": ["abc", "def"]}) == (2, 0)
    assert estimate("/", {"inputs": "abc"}, task="feature-extraction") == (1, 0)
    assert estimate("/", {"inputs": "abc"}) == (1, 100)  # text-generation's task route
    assert prepare("GET", "/v1/models", "", b"").reserve == 0


def test_metering_knows_the_embedding_tasks_the_translation_does() -> None:
    assert EMBEDDING_TASKS == translation.EMBEDDING_TASKS
