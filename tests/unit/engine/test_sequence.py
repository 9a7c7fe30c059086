from __future__ import annotations

from modelport.engine.sampling import SamplingParams
from modelport.engine.sequence import FinishReason, IncrementalDetokenizer, Sequence


class CharTokenizer:
    """Token id i decodes to chr(i): enough to test text handling without a real tokenizer."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


def make(params: SamplingParams, eos: frozenset[int] = frozenset({0})) -> Sequence:
    return Sequence(
        "r", 0, [65], params, eos, 100, IncrementalDetokenizer(CharTokenizer()), None, lambda o: None
    )


def feed(seq: Sequence, text: str) -> str:
    out = ""
    for ch in text:
        delta = seq.append(ord(ch), None)
        out += delta.text
        if delta.finish_reason is not None:
            break
    return out


def test_stop_string_spanning_tokens_is_cut_and_never_streamed() -> None:
    seq = make(SamplingParams(max_tokens=50, stop=["END"]))
    assert feed(seq, "abcENDxyz") == "abc"
    assert seq.finish_reason is FinishReason.STOP and seq.stop_reason == "END"


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    seq = make(SamplingParams(max_tokens=6, stop=["XYZ"]))
    assert feed(seq, "abXYab") == "abXYab"
    assert seq.finish_reason is FinishReason.LENGTH


def test_eos_stops_unless_ignored() -> None:
    seq = make(SamplingParams(max_tokens=10))
    assert seq.append(0, None).finish_reason is FinishReason.STOP
    seq = make(SamplingParams(max_tokens=10, ignore_eos=True))
    assert seq.append(0, None).finish_reason is None


def test_stop_token_ids() -> None:
    seq = make(SamplingParams(max_tokens=10, stop_token_ids=[66]))
    out = seq.append(66, None)
    assert out.finish_reason is FinishReason.STOP and out.stop_reason == 66


def test_token_slice_spans_prompt_and_output() -> None:
    seq = make(SamplingParams(max_tokens=10, ignore_eos=True))  # prompt [65]
    for tok in (66, 67, 68):
        seq.append(tok, None)
    assert [seq.token_slice(s, n) for s, n in ((0, 1), (0, 4), (1, 2), (3, 1))] == [
        [65],
        [65, 66, 67, 68],
        [66, 67],
        [68],
    ]
    assert seq.token_slice(0, 4) == seq.all_ids
