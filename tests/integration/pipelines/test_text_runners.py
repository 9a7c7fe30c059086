"""The classification-family text runners (text-classification, zero-shot-classification,
token-classification, fill-mask) on tiny random-weight models, through a real Batcher, against
transformers' own pipeline on the same folder and input; answers parsed by huggingface_hub's
InferenceClient types the way InferenceClient 2.4 parses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub.inference._generated.types import (
    FillMaskOutputElement,
    TextClassificationOutputElement,
    TokenClassificationOutputElement,
    ZeroShotClassificationOutputElement,
)

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import LoadOptions, Prepared, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskBackendError, TaskInputError
from modelport.pipelines.registry import load_runner
from tests.support import task_models_text as tiny
from tests.support.runners import reference_pipeline, run_batched, warm_runner

TOL = 1e-4
TEXTS = [
    "alice lives in paris",
    "the movie was great and the story was good",
    "bob works in london , carol lives in berlin",
    "a cat sat on the mat",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text")
    return {
        "cls": tiny.text_classifier(root / "cls"),
        "nli": tiny.nli_model(root / "nli"),
        "ner": tiny.ner_tagger(root / "ner"),
        "mlm": tiny.masked_lm(root / "mlm"),
    }


@pytest.fixture(scope="module")
def classifier(folders: dict[str, Path]) -> TaskRunner:
    return warm_runner(folders["cls"], "text-classification")


@pytest.fixture(scope="module")
def zero_shot(folders: dict[str, Path]) -> TaskRunner:
    return warm_runner(folders["nli"], "zero-shot-classification")


@pytest.fixture(scope="module")
def tagger(folders: dict[str, Path]) -> TaskRunner:
    return warm_runner(folders["ner"], "token-classification")


@pytest.fixture(scope="module")
def filler(folders: dict[str, Path]) -> TaskRunner:
    return warm_runner(folders["mlm"], "fill-mask")


def _batched(runner: TaskRunner, requests: list[TaskRequest], shared: bool = True) -> list[Any]:
    """Bodies of the answers, after checking the requests really shared a batch (when `shared`:
    requests whose parameters change the computation run apart)."""
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) > 1 or not shared, f"the requests ran in batches of {sizes}"
    for answer in answers:
        assert isinstance(answer, TaskOutput), answer
    return [a.body for a in answers]


def assert_scored(got: list[dict[str, Any]], want: list[dict[str, Any]], key: str = "label") -> None:
    assert [g[key] for g in got] == [w[key] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["score"] == pytest.approx(float(w["score"]), abs=TOL)


def _bad(
    runner: TaskRunner, inputs: Any, parameters: Any, match: str, param: str = "inputs"
) -> TaskInputError:
    with pytest.raises(TaskInputError, match=match) as err:
        runner.prepare(TaskRequest(inputs=inputs, parameters=parameters))
    assert err.value.param == param and 400 <= err.value.status < 500
    return err.value


# -- text-classification ------------------------------------------------------------------------


def test_text_classification_equals_the_pipeline(classifier: TaskRunner, folders: dict[str, Path]) -> None:
    pipe = reference_pipeline("text-classification", folders["cls"])
    pair = {"text": "alice lives in paris", "text_pair": "alice lives in france"}
    requests = [
        TaskRequest(inputs=TEXTS[0]),
        TaskRequest(inputs=TEXTS[1], parameters={"top_k": 2}),
        TaskRequest(inputs=TEXTS[2], parameters={"function_to_apply": "sigmoid"}),
        TaskRequest(inputs=TEXTS[3], parameters={"function_to_apply": "none", "top_k": None}),
        TaskRequest(inputs=TEXTS[:3]),  # a list of texts: one answer per text
        TaskRequest(inputs=pair),  # an NLI-style pair
        TaskRequest(inputs=[pair, {"text": "the cat", "text_pair": "a dog"}]),
    ]
    bodies = _batched(classifier, requests)
    assert_scored(bodies[0][0], pipe(TEXTS[0], top_k=None))
    assert_scored(bodies[1][0], pipe(TEXTS[1], top_k=2))
    assert_scored(bodies[2][0], pipe(TEXTS[2], top_k=None, function_to_apply="sigmoid"))
    assert_scored(bodies[3][0], pipe(TEXTS[3], top_k=None, function_to_apply="none"))
    assert len(bodies[4]) == 3
    for got, text in zip(bodies[4], TEXTS[:3], strict=True):
        assert_scored(got, pipe(text, top_k=None))
    assert_scored(bodies[5][0], pipe(pair, top_k=None))
    assert_scored(bodies[6][1], pipe({"text": "the cat", "text_pair": "a dog"}, top_k=None))
    # InferenceClient.text_classification: parse_obj_as_list(response)[0]
    parsed = TextClassificationOutputElement.parse_obj_as_list(bodies[1])[0]
    assert [e.label for e in parsed] == [e["label"] for e in bodies[1][0]] and len(parsed) == 2
    assert sum(e["score"] for e in bodies[0][0]) == pytest.approx(1.0, abs=1e-5)


def test_text_classification_counts_tokens(classifier: TaskRunner) -> None:
    prepared = classifier.prepare(TaskRequest(inputs=["the cat", "a dog sat"]))
    assert prepared.input_tokens == 4 + 5 and prepared.many  # [CLS] ... [SEP] each


def test_text_classification_bad_inputs(classifier: TaskRunner) -> None:
    _bad(classifier, 42, {}, "must be a string")
    _bad(classifier, [], {}, "list of 1 to 64")
    _bad(classifier, ["x"] * 65, {}, "list of 1 to 64")
    _bad(classifier, {"text": "a", "other": "b"}, {}, "text_pair")
    _bad(classifier, ["a", {"text": "b", "text_pair": "c"}], {}, "mixes single texts and text pairs")
    _bad(classifier, "a", {"top_k": 0}, "from 1 to 1000", "parameters.top_k")
    _bad(
        classifier,
        "a",
        {"function_to_apply": "tanh"},
        "sigmoid, softmax, none",
        "parameters.function_to_apply",
    )
    err = _bad(
        classifier, "a", {"temperature": 1}, "not supported for text-classification", "parameters.temperature"
    )
    assert err.code == "unsupported_parameter"
    _bad(classifier, "a", ["top_k"], "must be a JSON object", "parameters")
    err = _bad(classifier, "cat " * 70, {}, "72 tokens long, over this model's limit of 64")
    assert err.code == "input_too_long"
    assert _bad(classifier, "a" * 100_001, {}, "over the limit of 100000").status == 413


def test_a_request_that_breaks_the_batch_fails_alone(classifier: TaskRunner) -> None:
    good = [classifier.prepare(TaskRequest(inputs=t)) for t in TEXTS[:3]]
    # past prepare's length check (as a bug would be): the position table has 64 rows
    broken = Prepared([("cat " * 80, None)], good[0].parameters, key=False, size=82, input_tokens=82)
    answers, sizes = run_batched(classifier, [good[0], broken, good[1], good[2]])
    assert sizes[0] == 4  # they were one batch, then each alone
    assert isinstance(answers[1], TaskBackendError)
    assert [isinstance(a, TaskOutput) for a in answers] == [True, False, True, True]


# -- zero-shot-classification -------------------------------------------------------------------


def test_zero_shot_equals_the_pipeline(zero_shot: TaskRunner, folders: dict[str, Path]) -> None:
    pipe = reference_pipeline("zero-shot-classification", folders["nli"])
    labels = ["city", "movie", "cat"]
    template = "this is about {} ."
    requests = [
        TaskRequest(inputs=TEXTS[0], parameters={"candidate_labels": labels}),
        TaskRequest(inputs=TEXTS[1], parameters={"candidate_labels": labels, "multi_label": True}),
        TaskRequest(
            inputs=TEXTS[2], parameters={"candidate_labels": "city, movie", "hypothesis_template": template}
        ),
        TaskRequest(
            inputs=TEXTS[3], parameters={"candidate_labels": ["cat"]}
        ),  # one label: entail vs contradict
        TaskRequest(inputs=TEXTS[:2], parameters={"candidate_labels": labels}),
    ]
    bodies = _batched(zero_shot, requests)

    def want(text: str, **kwargs: Any) -> list[dict[str, Any]]:
        out = pipe(text, **kwargs)
        return [{"label": label, "score": s} for label, s in zip(out["labels"], out["scores"], strict=True)]

    assert_scored(bodies[0], want(TEXTS[0], candidate_labels=labels))
    assert_scored(bodies[1], want(TEXTS[1], candidate_labels=labels, multi_label=True))
    assert_scored(bodies[2], want(TEXTS[2], candidate_labels=["city", "movie"], hypothesis_template=template))
    assert_scored(bodies[3], want(TEXTS[3], candidate_labels=["cat"]))
    assert_scored(bodies[4][1], want(TEXTS[1], candidate_labels=labels))
    # InferenceClient.zero_shot_classification: parse_obj_as_list(response)
    parsed = ZeroShotClassificationOutputElement.parse_obj_as_list(bodies[0])
    assert [e.label for e in parsed] == [e["label"] for e in bodies[0]]
    assert sum(e.score for e in parsed) == pytest.approx(1.0, abs=1e-5)


def test_zero_shot_bad_inputs(zero_shot: TaskRunner, folders: dict[str, Path]) -> None:
    p = "parameters.candidate_labels"
    _bad(zero_shot, "a cat", {}, "candidate_labels` is required", p)
    _bad(zero_shot, "a cat", {"candidate_labels": []}, "list of 1 to 32", p)
    _bad(zero_shot, "a cat", {"candidate_labels": [str(i) for i in range(33)]}, "list of 1 to 32", p)
    t = "parameters.hypothesis_template"
    _bad(zero_shot, "a cat", {"candidate_labels": ["x"], "hypothesis_template": "no slot"}, "must contain", t)
    _bad(zero_shot, "a cat", {"candidate_labels": ["x"], "hypothesis_template": "{0} {1}"}, "must contain", t)
    _bad(
        zero_shot,
        "a cat",
        {"candidate_labels": ["x"], "multi_label": "yes"},
        "true or false",
        "parameters.multi_label",
    )
    _bad(zero_shot, {"text": "a"}, {"candidate_labels": ["x"]}, "must be a string")
    with pytest.raises(ModelLoadError, match="entailment"):
        load_runner(folders["cls"], "zero-shot-classification", LoadOptions())


def test_zero_shot_cuts_a_long_text_not_the_hypothesis(zero_shot: TaskRunner) -> None:
    (answer,), _ = run_batched(
        zero_shot,
        [zero_shot.prepare(TaskRequest(inputs="cat " * 200, parameters={"candidate_labels": ["a", "b"]}))],
    )
    assert isinstance(answer, TaskOutput) and answer.input_tokens == 2 * 64


# -- token-classification -----------------------------------------------------------------------


def test_token_classification_equals_the_pipeline(tagger: TaskRunner, folders: dict[str, Path]) -> None:
    pipe = reference_pipeline("token-classification", folders["ner"])
    strategies = ["none", "simple", "first", "average", "max"]
    requests = [TaskRequest(inputs=TEXTS[2], parameters={"aggregation_strategy": s}) for s in strategies]
    requests += [
        TaskRequest(inputs=TEXTS[0]),  # the Inference API's default: simple
        TaskRequest(inputs=TEXTS[3]),
        TaskRequest(inputs=TEXTS[:2], parameters={"ignore_labels": []}),
    ]
    bodies = _batched(tagger, requests)
    for body, strategy in zip(bodies, strategies, strict=False):
        want = pipe(TEXTS[2], aggregation_strategy=strategy)
        key = "entity" if strategy == "none" else "entity_group"
        assert_scored(body, want, key)
        assert [(b["word"], b["start"], b["end"]) for b in body] == [
            (w["word"], w["start"], w["end"]) for w in want
        ]
        parsed = TokenClassificationOutputElement.parse_obj_as_list(body)
        assert [getattr(p, key) for p in parsed] == [w[key] for w in want]
    assert bodies[1], "the tiny tagger found no entity: the comparison above proved little"
    assert_scored(bodies[5], pipe(TEXTS[0], aggregation_strategy="simple"), "entity_group")
    assert_scored(bodies[6], pipe(TEXTS[3], aggregation_strategy="simple"), "entity_group")
    assert_scored(
        bodies[7][1], pipe(TEXTS[1], aggregation_strategy="simple", ignore_labels=[]), "entity_group"
    )


def test_token_classification_stride_reads_past_the_limit(
    tagger: TaskRunner, folders: dict[str, Path]
) -> None:
    pipe = reference_pipeline("token-classification", folders["ner"])
    long_text = " ".join(["alice lives in paris"] * 30)  # 120 words, past the 64-token limit
    cut, whole = _batched(
        tagger,
        [TaskRequest(inputs=long_text), TaskRequest(inputs=long_text, parameters={"stride": 8})],
        shared=False,
    )
    assert max(e["end"] for e in whole) > max(e["end"] for e in cut)
    want = pipe(long_text, aggregation_strategy="simple", stride=8)
    assert_scored(whole, want, "entity_group")


def test_token_classification_bad_inputs(tagger: TaskRunner) -> None:
    a = "parameters.aggregation_strategy"
    _bad(tagger, "a", {"aggregation_strategy": "mean"}, "none, simple, first, average, max", a)
    _bad(tagger, "a", {"stride": 4, "aggregation_strategy": "none"}, "other than", "parameters.stride")
    _bad(tagger, "a", {"stride": 1000}, "from 0 to 30", "parameters.stride")
    _bad(tagger, "a", {"ignore_labels": 3}, "non-empty strings", "parameters.ignore_labels")
    _bad(tagger, ["a", 1], {}, "must be a string")


# -- fill-mask ----------------------------------------------------------------------------------


def test_fill_mask_equals_the_pipeline(filler: TaskRunner, folders: dict[str, Path]) -> None:
    pipe = reference_pipeline("fill-mask", folders["mlm"])
    one, two = "alice lives in [MASK] .", "the [MASK] sat on the [MASK]"
    targets = ["paris", "london", "cat", "zebra"]  # zebra: not a word, its first piece stands in
    requests = [
        TaskRequest(inputs=one),
        TaskRequest(inputs=one, parameters={"top_k": 2}),
        TaskRequest(inputs=one, parameters={"targets": targets, "top_k": 10}),
        TaskRequest(inputs=two),
        TaskRequest(inputs=[one, "a [MASK] ran"]),
    ]
    bodies = _batched(filler, requests)
    fields = ("token", "token_str", "sequence")

    def same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
        assert_scored(got, want, "token")
        assert [[g[f] for f in fields] for g in got] == [[w[f] for f in fields] for w in want]

    same(bodies[0], pipe(one))
    same(bodies[1], pipe(one, top_k=2))
    same(bodies[2], pipe(one, targets=targets, top_k=10))
    assert len(bodies[2]) == 4
    for got, want in zip(bodies[3], pipe(two), strict=True):  # one list per mask
        same(got, want)
    same(bodies[4][1], pipe("a [MASK] ran"))
    parsed = FillMaskOutputElement.parse_obj_as_list(bodies[0])
    assert [p.token for p in parsed] == [b["token"] for b in bodies[0]] and len(parsed) == 5


def test_fill_mask_bad_inputs(filler: TaskRunner) -> None:
    _bad(filler, "no mask here", {}, r"has no mask token: put \[MASK\]")
    _bad(filler, ["a [MASK]", "none"], {}, r"`inputs`\[1\] has no mask token")
    _bad(filler, "a [MASK]", {"top_k": 101}, "from 1 to 100", "parameters.top_k")
    _bad(filler, "a [MASK]", {"targets": []}, "non-empty strings", "parameters.targets")
    _bad(filler, "a [MASK]", {"targets": [" "]}, "no word this model knows", "parameters.targets")


# -- loading --------------------------------------------------------------------------------------


def test_loading_refuses_pickle_weights_and_table_qa(folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(folders["cls"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin"):
        load_runner(pickled, "text-classification", LoadOptions())
    with pytest.raises(ModelLoadError, match="pandas"):
        load_runner(folders["cls"], "table-question-answering", LoadOptions())
