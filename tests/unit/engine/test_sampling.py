from __future__ import annotations

import pytest
import torch

from modelport.engine.sampling import InvalidSamplingParams, SampleRow, SamplingParams, make_generator, sample


def row(params: SamplingParams, seed: int | None = 0, out: list[int] | None = None) -> SampleRow:
    return SampleRow(params, make_generator(seed), [1, 2], out or [], [])


def test_greedy_picks_argmax() -> None:
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]])
    res = sample(logits, [row(SamplingParams(temperature=0)), row(SamplingParams(temperature=0))])
    assert res.token_ids == [1, 0]


def test_seeded_sampling_is_reproducible_regardless_of_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 50)
    p = SamplingParams(temperature=1.0)
    alone = [sample(logits.clone(), [row(p, seed=7)]).token_ids[0] for _ in range(3)]
    batched = sample(torch.cat([torch.randn(1, 50), logits]), [row(p, seed=99), row(p, seed=7)]).token_ids[1]
    assert alone == [alone[0]] * 3 and batched == alone[0]


def test_top_k_one_is_greedy() -> None:
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    for seed in range(10):
        assert sample(logits.clone(), [row(SamplingParams(top_k=1), seed)]).token_ids == [2]


def test_top_p_and_min_p_cut_the_tail() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    picks = {sample(logits.clone(), [row(SamplingParams(top_p=0.7), s)]).token_ids[0] for s in range(60)}
    assert picks <= {0, 1}
    picks = {sample(logits.clone(), [row(SamplingParams(min_p=0.6), s)]).token_ids[0] for s in range(60)}
    assert picks == {0, 1} or picks <= {0, 1}


def test_penalties_push_away_seen_tokens() -> None:
    logits = torch.tensor([[2.0, 1.9, 0.0]])
    p = SamplingParams(temperature=0, frequency_penalty=1.0)
    assert sample(logits.clone(), [row(p, out=[0])]).token_ids == [1]
    p = SamplingParams(temperature=0, repetition_penalty=2.0)
    assert sample(logits.clone(), [SampleRow(p, None, [0], [], [])]).token_ids == [1]


def test_logit_bias_and_logprobs() -> None:
    logits = torch.tensor([[1.0, 0.0, 0.0]])
    res = sample(logits.clone(), [row(SamplingParams(temperature=0, logit_bias={2: 100.0}, logprobs=2))])
    assert res.token_ids == [2]
    assert res.logprobs is not None and res.top_logprobs is not None
    assert res.top_logprobs[0][0][0] == 0  # logprobs are the model's, before the bias
    assert len(res.top_logprobs[0]) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("top_p", 0.0),
        ("max_tokens", 0),
        ("top_k", -1),
        ("presence_penalty", 3.0),
        ("logprobs", 21),
        ("min_p", 1.5),
    ],
)
def test_validation_names_the_field(field: str, value: float) -> None:
    params = SamplingParams(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(InvalidSamplingParams) as info:
        params.validate(100)
    assert info.value.param in {field, "top_logprobs"}
