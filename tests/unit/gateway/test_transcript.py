"""What the gateway keeps of a request to an endpoint that opted in: the body as sent, and each
choice's completion text in every answer shape the engines give."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from modelport.gateway.transcript import CUT_MARK, MAX_TEXT_BYTES, Transcript
from modelport.ledger.audit_chain import text_digest

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def sse(*payloads: object) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"


def feed_in_pieces(t: Transcript, data: bytes, sse_: bool, size: int = 7) -> None:
    for i in range(0, len(data), size):  # events split anywhere, as TCP delivers them
        t.feed(data[i : i + size], sse_)


def test_a_chat_stream_split_anywhere_is_joined_per_choice() -> None:
    t = Transcript(b'{"messages":[{"role":"user","content":"hi \xc3\xa9"}],"stream":true}', 7)
    body = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}, {"index": 1, "delta": {"content": "Bon"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo é"}}, {"index": 1, "delta": {"content": "jour"}}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    )
    feed_in_pieces(t, body, True)
    assert json.loads(t.completion()) == ["Hello é", "Bonjour"]
    assert t.request == '{"messages":[{"role":"user","content":"hi é"}],"stream":true}'


def test_json_answers_of_chat_completions_and_tgi() -> None:
    chat = Transcript(b"{}", 1)
    feed_in_pieces(
        chat, json.dumps({"choices": [{"index": 0, "message": {"content": "four"}}]}).encode(), False
    )
    assert json.loads(chat.completion()) == ["four"]
    completions = Transcript(b"{}", 1)
    completions.feed(
        json.dumps({"choices": [{"index": 0, "text": " 4"}, {"index": 1, "text": " IV"}]}).encode(), False
    )
    assert json.loads(completions.completion()) == [" 4", " IV"]
    tgi = Transcript(b"{}", 1)
    tgi.feed(json.dumps({"generated_text": "four", "details": {"generated_tokens": 1}}).encode(), False)
    assert json.loads(tgi.completion()) == ["four"]
    tgi_list = Transcript(b"{}", 1)
    tgi_list.feed(json.dumps([{"generated_text": "four"}]).encode(), False)
    assert json.loads(tgi_list.completion()) == ["four"]


def test_a_tgi_stream_keeps_token_texts_without_special_tokens_or_the_repeated_whole() -> None:
    t = Transcript(b'{"inputs":"2+2="}', 1)
    body = sse(
        {"token": {"id": 1, "text": "fo", "special": False}, "generated_text": None},
        {"token": {"id": 2, "text": "ur", "special": False}, "generated_text": None},
        {"token": {"id": 0, "text": "</s>", "special": True}, "generated_text": "four"},
    )
    feed_in_pieces(t, body, True, size=5)
    assert json.loads(t.completion()) == ["four"]


def test_an_error_or_an_embedding_keeps_the_request_and_no_completion() -> None:
    t = Transcript(b'{"input":"a"}', 1)
    t.feed(json.dumps({"object": "list", "data": [{"embedding": [0.1, 0.2]}]}).encode(), False)
    assert t.completion() == "[]"
    broken = Transcript(b"{", 1)
    broken.feed(b'{"choices": [', False)  # cut short
    assert broken.completion() == "[]" and broken.request == "{"


def test_the_kept_record_expires_after_the_retention_and_its_digest_binds_the_request_id() -> None:
    t = Transcript(b'{"prompt":"x"}', 2.5)
    t.feed(json.dumps({"choices": [{"index": 0, "text": "y"}]}).encode(), False)
    kept = t.kept("req-1", "default", "chat", AT)
    assert kept.expires_at == AT + timedelta(days=2.5)
    assert kept.digest == text_digest("req-1", '{"prompt":"x"}', '["y"]')
    assert kept.digest != text_digest("req-2", '{"prompt":"x"}', '["y"]')  # same texts, other request


def test_an_over_long_body_is_kept_cut_and_marked() -> None:
    t = Transcript(b"a" * (MAX_TEXT_BYTES + 10), 1)
    assert t.request.endswith(CUT_MARK) and len(t.request) == MAX_TEXT_BYTES + len(CUT_MARK)
