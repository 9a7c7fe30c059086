"""summarization, translation and text2text-generation on a tiny random-weight T5, through a
real Batcher: batched answers equal the model's own generate on each text alone (transformers 5
has no pipeline for these tasks), with the generate parameters honoured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub.inference._generated.types import SummarizationOutput, TranslationOutput

from modelport.pipelines.base import Prepared, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskBackendError, TaskInputError
from tests.support import task_models_text as tiny
from tests.support.runners import run_batched, warm_runner

TEXTS = ["the cat sat on the mat", "a dog", "the big red dog sat on a small blue mat .", "le chat est petit"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.seq2seq_model(tmp_path_factory.mktemp("seq2seq") / "t5")


@pytest.fixture(scope="module")
def runners(folder: Path) -> dict[str, TaskRunner]:
    out = {}
    for task in ("summarization", "translation", "text2text-generation"):
        out[task] = warm_runner(folder, task)
    return out


@pytest.fixture(scope="module")
def model(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModelForSeq2SeqLM.from_pretrained(folder).eval()


def alone(model: tuple[Any, Any], text: str, **generate: Any) -> str:
    tokenizer, m = model
    with torch.no_grad():
        out = m.generate(**tokenizer(text, return_tensors="pt"), **generate)
    return str(tokenizer.decode(out[0], skip_special_tokens=True))


def _run(runner: TaskRunner, requests: list[TaskRequest], shared: bool = True) -> list[Any]:
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) > 1 or not shared, f"the requests ran in batches of {sizes}"
    assert all(isinstance(a, TaskOutput) for a in answers), answers
    return [a.body for a in answers]


def test_greedy_summaries_batched_equal_generate_alone(runners: dict[str, TaskRunner], model: Any) -> None:
    runner = runners["summarization"]
    bodies = _run(runner, [TaskRequest(t, {"max_new_tokens": 8}) for t in TEXTS])
    for body, t in zip(bodies, TEXTS, strict=True):  # T5's config names the prefix "summarize: "
        assert body == [{"summary_text": alone(model, "summarize: " + t, max_new_tokens=8)}]
    assert len({b[0]["summary_text"] for b in bodies}) > 1, (
        "the tiny model says the same for all: proves little"
    )
    # InferenceClient.summarization: SummarizationOutput.parse_obj_as_list(response)[0]
    assert SummarizationOutput.parse_obj_as_list(bodies[0])[0].summary_text == bodies[0][0]["summary_text"]


def test_generate_parameters_are_honoured(runners: dict[str, TaskRunner], model: Any) -> None:
    runner = runners["text2text-generation"]
    beams = {"num_beams": 3, "max_new_tokens": 6, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2}
    bodies = _run(
        runner,
        [
            TaskRequest(TEXTS[0], {"generate_parameters": beams}),
            TaskRequest(TEXTS[2], beams),  # the same, at the top as the older API sent them
            TaskRequest(TEXTS[:2], {"generate_parameters": beams}),
        ],
    )
    assert bodies[0] == [{"generated_text": alone(model, TEXTS[0], **beams)}]
    assert bodies[1] == [{"generated_text": alone(model, TEXTS[2], **beams)}]
    assert bodies[2] == [{"generated_text": alone(model, t, **beams)} for t in TEXTS[:2]]
    short, floor = _run(
        runner,
        [
            TaskRequest(TEXTS[0], {"generate_parameters": {"max_new_tokens": 2}}),
            TaskRequest(TEXTS[0], {"generate_parameters": {"min_new_tokens": 9, "max_new_tokens": 10}}),
        ],
        shared=False,
    )
    assert len(short[0]["generated_text"].split()) <= 2
    assert short[0]["generated_text"] == alone(model, TEXTS[0], max_new_tokens=2)
    assert floor[0]["generated_text"] == alone(model, TEXTS[0], min_new_tokens=9, max_new_tokens=10)
    sampled = _run(
        runner,
        [TaskRequest(TEXTS[0], {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 5})],
        False,
    )
    assert isinstance(sampled[0][0]["generated_text"], str)


def test_requests_generating_differently_do_not_share_a_batch(runners: dict[str, TaskRunner]) -> None:
    runner = runners["text2text-generation"]
    a = runner.prepare(TaskRequest(TEXTS[0], {"max_new_tokens": 3}))
    b = runner.prepare(TaskRequest(TEXTS[0], {"max_new_tokens": 4}))
    c = runner.prepare(TaskRequest(TEXTS[1], {"generate_parameters": {"max_new_tokens": 3}}))
    assert a.key != b.key and a.key == c.key


def test_translation_answers_translation_text(runners: dict[str, TaskRunner], model: Any) -> None:
    runner = runners["translation"]
    (body,) = _run(
        runner, [TaskRequest(TEXTS[0], {"max_new_tokens": 5, "clean_up_tokenization_spaces": True})], False
    )
    # InferenceClient.translation: TranslationOutput.parse_obj_as_list(response)[0]
    assert TranslationOutput.parse_obj_as_list(body)[0].translation_text == alone(
        model, TEXTS[0], max_new_tokens=5
    )
    with pytest.raises(TaskInputError, match="fixed language pair") as err:
        runner.prepare(TaskRequest(TEXTS[0], {"src_lang": "en", "tgt_lang": "fr"}))
    assert err.value.param == "parameters.src_lang"
    with pytest.raises(TaskInputError, match="not supported for summarization"):
        runners["summarization"].prepare(TaskRequest(TEXTS[0], {"src_lang": "en"}))


def test_long_inputs_are_refused_unless_truncation_is_asked(
    runners: dict[str, TaskRunner], model: Any
) -> None:
    runner = runners["text2text-generation"]
    long_text = "the cat " * 40  # 81 tokens, the limit is 48
    with pytest.raises(TaskInputError, match=r"81 tokens long.*limit of 48.*truncation") as err:
        runner.prepare(TaskRequest(long_text))
    assert err.value.code == "input_too_long"
    prepared = runner.prepare(TaskRequest(long_text, {"truncation": "longest_first", "max_new_tokens": 4}))
    assert prepared.input_tokens == 48
    (answer,), _ = run_batched(runner, [prepared])
    tokenizer, m = model
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=48)
    want = tokenizer.decode(m.generate(**enc, max_new_tokens=4)[0], skip_special_tokens=True)
    assert isinstance(answer, TaskOutput) and answer.body == [{"generated_text": want}]


@pytest.mark.parametrize(
    ("parameters", "match", "param"),
    [
        (
            {"generate_parameters": {"seed": 1}},
            "'seed' is not supported",
            "parameters.generate_parameters.seed",
        ),
        (
            {"generate_parameters": {"num_beams": 9}},
            "from 1 to 8",
            "parameters.generate_parameters.num_beams",
        ),
        ({"generate_parameters": []}, "must be a JSON object", "parameters.generate_parameters"),
        ({"temperature": 0, "do_sample": True}, "above 0", "parameters.temperature"),
        ({"max_new_tokens": 5000}, "from 1 to 1024", "parameters.max_new_tokens"),
        ({"min_new_tokens": 5, "max_new_tokens": 2}, "above `max_new_tokens`", "parameters.min_new_tokens"),
        (
            {"max_new_tokens": 4, "generate_parameters": {"max_new_tokens": 5}},
            "given twice",
            "parameters.generate_parameters.max_new_tokens",
        ),
        ({"truncation": "yes"}, "do_not_truncate, longest_first", "parameters.truncation"),
        ({"stream": True}, "not supported", "parameters.stream"),
    ],
)
def test_bad_parameters(
    runners: dict[str, TaskRunner], parameters: dict[str, Any], match: str, param: str
) -> None:
    with pytest.raises(TaskInputError, match=match) as err:
        runners["summarization"].prepare(TaskRequest(TEXTS[0], parameters))
    assert err.value.param == param and err.value.status == 400


def test_bad_inputs(runners: dict[str, TaskRunner]) -> None:
    for bad in (None, 3, {"text": "x"}, [], ["ok", 2]):
        with pytest.raises(TaskInputError, match="must be a string") as err:
            runners["summarization"].prepare(TaskRequest(bad))
        assert err.value.param == "inputs"


def test_a_request_that_breaks_the_batch_fails_alone(runners: dict[str, TaskRunner], model: Any) -> None:
    runner = runners["summarization"]
    good = [runner.prepare(TaskRequest(t, {"max_new_tokens": 4})) for t in TEXTS[:2]]
    broken = Prepared([None], good[0].parameters, key=good[0].key, size=1)  # what prepare would never let by
    answers, sizes = run_batched(runner, [good[0], broken, good[1]])
    assert sizes[0] == 3 and isinstance(answers[1], ValueError | TaskBackendError)
    for answer, text in zip((answers[0], answers[2]), TEXTS[:2], strict=True):
        assert isinstance(answer, TaskOutput)
        assert answer.body == [{"summary_text": alone(model, "summarize: " + text, max_new_tokens=4)}]
