"""question-answering and text-ranking runners on tiny random-weight models, through a real
Batcher. transformers 5 has no pipeline for either, so answers are checked against the model
run directly on each input alone, with spans searched by brute force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub.inference._generated.types import QuestionAnsweringOutputElement

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import LoadOptions, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.registry import load_runner
from modelport.pipelines.runners.rerank import Ranked, ranked, rerank_request
from tests.support import task_models_text as tiny
from tests.support.runners import run_batched, warm_runner

TOL = 1e-4
CONTEXT = "alice lives in paris , the capital of france . bob works in london ."
QUESTIONS = ["where does alice live ?", "who works in london ?", "what is the capital of france ?"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qa")
    return {"qa": tiny.qa_model(root / "qa"), "rank": tiny.cross_encoder(root / "rank")}


@pytest.fixture(scope="module")
def reader(folders: dict[str, Path]) -> TaskRunner:
    return warm_runner(folders["qa"], "question-answering")


@pytest.fixture(scope="module")
def ranker(folders: dict[str, Path]) -> TaskRunner:
    return warm_runner(folders["rank"], "text-ranking")


def _model(folder: Path, cls: str) -> tuple[Any, Any]:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return tokenizer, getattr(transformers, cls).from_pretrained(folder).eval()


def _batched(runner: TaskRunner, requests: list[TaskRequest]) -> list[Any]:
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) > 1, f"the requests ran in batches of {sizes}"
    assert all(isinstance(a, TaskOutput) for a in answers), answers
    return [a.body for a in answers]


def _bad(
    runner: TaskRunner, inputs: Any, parameters: Any, match: str, param: str = "inputs"
) -> TaskInputError:
    with pytest.raises(TaskInputError, match=match) as err:
        runner.prepare(TaskRequest(inputs=inputs, parameters=parameters))
    assert err.value.param == param
    return err.value


# -- question-answering -------------------------------------------------------------------------


def reference_spans(
    folder: Path, question: str, context: str, max_answer_len: int = 15
) -> list[dict[str, Any]]:
    """Every span of the context, scored start x end over the context (and CLS) alone, best first."""
    tokenizer, model = _model(folder, "AutoModelForQuestionAnswering")
    enc = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = model(**enc)
    ctx = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]

    def probs(logits: torch.Tensor) -> list[float]:
        keep = logits.new_full(logits.shape, -10000.0)
        keep[[0, *ctx]] = logits[[0, *ctx]]
        return torch.softmax(keep, -1).tolist()

    p_start, p_end = probs(out.start_logits[0]), probs(out.end_logits[0])
    spans = [
        {
            "answer": context[offsets[s][0] : offsets[e][1]],
            "score": p_start[s] * p_end[e],
            "start": offsets[s][0],
            "end": offsets[e][1],
        }
        for s in ctx
        for e in ctx
        if s <= e < s + max_answer_len
    ]
    spans.sort(key=lambda a: a["score"], reverse=True)
    return [*spans, {"answer": "", "score": p_start[0] * p_end[0], "start": 0, "end": 0}]


def assert_answer(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
    assert got["score"] == pytest.approx(want["score"], abs=TOL)


def test_question_answering_equals_the_model_alone(reader: TaskRunner, folders: dict[str, Path]) -> None:
    exact = {"align_to_words": False}
    requests = [
        TaskRequest(inputs={"question": QUESTIONS[0], "context": CONTEXT}, parameters=exact),
        TaskRequest(inputs={"question": QUESTIONS[1], "context": CONTEXT}, parameters={**exact, "top_k": 3}),
        TaskRequest(
            inputs={"question": QUESTIONS[2], "context": CONTEXT}, parameters={**exact, "max_answer_len": 2}
        ),
        TaskRequest(inputs=[{"question": q, "context": CONTEXT} for q in QUESTIONS[:2]], parameters=exact),
    ]
    bodies = _batched(reader, requests)
    want = [reference_spans(folders["qa"], q, CONTEXT) for q in QUESTIONS]
    assert_answer(bodies[0], want[0][0])
    assert len(bodies[1]) == 3
    for got, ref in zip(bodies[1], want[1][:3], strict=True):
        assert_answer(got, ref)
    assert_answer(bodies[2], reference_spans(folders["qa"], QUESTIONS[2], CONTEXT, max_answer_len=2)[0])
    assert_answer(bodies[3][1], want[1][0])
    # InferenceClient.question_answering: QuestionAnsweringOutputElement.parse_obj(response)
    one = QuestionAnsweringOutputElement.parse_obj(bodies[0])
    assert isinstance(one, QuestionAnsweringOutputElement) and one.answer == bodies[0]["answer"]
    assert [a.start for a in QuestionAnsweringOutputElement.parse_obj(bodies[1])] == [
        a["start"] for a in bodies[1]
    ]


def test_question_answering_impossible_answer_and_words(reader: TaskRunner, folders: dict[str, Path]) -> None:
    context = "the cats sat on the mats ."  # cat ##s, mat ##s: words of two tokens
    q = {"question": "what sat ?", "context": context}
    spans = reference_spans(folders["qa"], q["question"], context)
    (with_null, words), _ = run_batched(
        reader,
        [
            reader.prepare(
                TaskRequest(q, {"handle_impossible_answer": True, "top_k": 20, "align_to_words": False})
            ),
            reader.prepare(TaskRequest(q, {"top_k": 20})),
        ],
    )
    null = next(a for a in with_null.body if a["answer"] == "")
    assert null["score"] == pytest.approx(spans[-1]["score"], abs=TOL) and (null["start"], null["end"]) == (
        0,
        0,
    )
    for a in words.body:  # aligned to words: never half of "cats" or "mats"
        assert a["start"] == 0 or context[a["start"] - 1] == " "
        assert a["end"] == len(context) or context[a["end"]] == " "
        assert a["answer"] == context[a["start"] : a["end"]]


def test_question_answering_reads_a_long_context_in_windows(reader: TaskRunner) -> None:
    long_context = " ".join([CONTEXT] * 8)  # ~130 tokens; windows hold 64
    prepared = reader.prepare(TaskRequest({"question": QUESTIONS[0], "context": long_context}, {"top_k": 5}))
    assert len(prepared.payload[0].windows) > 2
    (answer,), _ = run_batched(reader, [prepared])
    assert isinstance(answer, TaskOutput)
    scores = [a["score"] for a in answer.body]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert max(a["end"] for a in answer.body) <= len(long_context)
    assert all(long_context[a["start"] : a["end"]] == a["answer"] for a in answer.body)


def test_question_answering_bad_inputs(reader: TaskRunner) -> None:
    good = {"question": "who ?", "context": CONTEXT}
    _bad(reader, "who ?", {}, '`inputs` must be {"question"')
    _bad(reader, {"question": "who ?"}, {}, '`inputs` must be {"question"')
    _bad(reader, {"question": " ", "context": CONTEXT}, {}, "non-empty string")
    _bad(reader, [good] * 65, {}, "list of 1 to 64")
    _bad(reader, good, {"top_k": 0}, "from 1 to 20", "parameters.top_k")
    _bad(reader, good, {"doc_stride": -1}, "from 0 to 64", "parameters.doc_stride")
    _bad(reader, good, {"max_seq_len": 1000}, "from 8 to 64", "parameters.max_seq_len")
    _bad(reader, good, {"padding": True}, "not supported", "parameters.padding")
    long_q = {"question": "who " * 70, "context": CONTEXT}
    _bad(
        reader, long_q, {"max_question_len": 62}, "leaving no room for the context", "parameters.max_seq_len"
    )
    huge = {"question": "who ?", "context": "cat " * 3000}
    assert _bad(reader, huge, {}, "windows").status == 413


# -- text-ranking -------------------------------------------------------------------------------


def reference_scores(folder: Path, query: str, texts: list[str]) -> list[float]:
    tokenizer, model = _model(folder, "AutoModelForSequenceClassification")
    out = []
    with torch.no_grad():
        for text in texts:
            out.append(float(model(**tokenizer(query, text, return_tensors="pt")).logits[0, 0]))
    return out


def test_rerank_equals_the_model_alone(ranker: TaskRunner, folders: dict[str, Path]) -> None:
    texts = ["paris is the capital of france", "a cat sat on the mat", "bob works in london", "the dog ran"]
    query = "what is the capital of france ?"
    bodies = _batched(
        ranker,
        [
            TaskRequest({"query": query, "texts": texts}),
            TaskRequest({"query": query, "texts": texts}, {"raw_scores": True, "return_text": True}),
            TaskRequest({"query": "who ran ?", "texts": texts[1:]}, {"top_n": 2}),
        ],
    )
    raw = reference_scores(folders["rank"], query, texts)
    order = sorted(range(len(texts)), key=lambda i: raw[i], reverse=True)
    assert [r["index"] for r in bodies[0]] == order
    for r in bodies[0]:
        assert r["score"] == pytest.approx(float(torch.sigmoid(torch.tensor(raw[r["index"]]))), abs=TOL)
        assert "text" not in r
    for r in bodies[1]:
        assert r["score"] == pytest.approx(raw[r["index"]], abs=TOL) and r["text"] == texts[r["index"]]
    other = reference_scores(folders["rank"], "who ran ?", texts[1:])
    assert [r["index"] for r in bodies[2]] == sorted(range(3), key=lambda i: other[i], reverse=True)[:2]


def test_rerank_helpers_for_tei_and_cohere_routes(ranker: TaskRunner) -> None:
    request = rerank_request("capital ?", ["paris", "cat"], return_text=True, top_n=1)
    (answer,), _ = run_batched(ranker, [ranker.prepare(request)])
    assert isinstance(answer, TaskOutput)
    (best,) = ranked(answer)
    assert isinstance(best, Ranked) and best.text == ["paris", "cat"][best.index] and 0 < best.score < 1


def test_rerank_truncates_only_when_asked(ranker: TaskRunner) -> None:
    long_text = "cat " * 100
    inputs = {"query": "a cat ?", "texts": ["a cat", long_text]}
    err = _bad(ranker, inputs, {}, r"`inputs.texts`\[1\] is 106 tokens long.*set `truncate` to true")
    assert err.code == "input_too_long"
    prepared = ranker.prepare(TaskRequest(inputs, {"truncate": True}))
    assert prepared.input_tokens == 8 + 64
    (answer,), _ = run_batched(ranker, [prepared])
    assert isinstance(answer, TaskOutput) and len(answer.body) == 2


def test_rerank_bad_inputs(ranker: TaskRunner, folders: dict[str, Path]) -> None:
    _bad(ranker, "a query", {}, '`inputs` must be {"query"')
    _bad(ranker, {"query": "q", "texts": []}, {}, "1 to 256 strings")
    _bad(ranker, {"query": "q", "texts": ["a", 2]}, {}, "1 to 256 strings")
    _bad(
        ranker,
        {"query": "q", "texts": ["a"]},
        {"truncation_direction": "left"},
        "one of right",
        "parameters.truncation_direction",
    )
    _bad(ranker, {"query": "q", "texts": ["a"]}, {"raw_scores": 1}, "true or false", "parameters.raw_scores")
    tiny_cls = tiny.text_classifier(folders["rank"].parent / "three-labels")
    with pytest.raises(ModelLoadError, match="one output score"):
        load_runner(tiny_cls, "text-ranking", LoadOptions())
