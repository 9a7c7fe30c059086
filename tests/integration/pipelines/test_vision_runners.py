"""The image runners on tiny random-weight models, through a real Batcher, against the in-process
transformers pipeline on the same folder and the same decoded image (or the model itself where
transformers 5 has no pipeline)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.pipelines.base import LoadOptions, Prepared, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import decode_image
from modelport.pipelines.registry import load_runner
from tests.support import task_models_media as media

TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vision")


def _folder(models: Path, name: str, build: Any) -> Path:
    folder = models / name
    if not folder.exists():
        build(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(models: Path) -> tuple[Path, TaskRunner]:
    folder = _folder(models, "vit", media.build_image_classifier)
    runner = load_runner(folder, "image-classification", LoadOptions())
    runner.warmup()
    return folder, runner


def _pipeline(task: str, folder: Path) -> Any:
    from transformers import pipeline

    return pipeline(task, model=str(folder), device="cpu")


def assert_scored(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["score"] == pytest.approx(w["score"], abs=TOL)


def _image(data: bytes) -> Any:
    return decode_image(data)


# -- image-classification ----------------------------------------------------------------------


def test_image_classification_batch_equals_the_pipeline(classifier: tuple[Path, TaskRunner]) -> None:
    folder, runner = classifier
    png, jpeg, other = (
        media.image_bytes(seed=1),
        media.image_bytes(50, 20, "JPEG", seed=2),
        media.image_bytes(seed=3),
    )
    requests = [
        TaskRequest(inputs=png),
        TaskRequest(inputs=jpeg, parameters={"top_k": 2}),
        TaskRequest(inputs=base64.b64encode(other).decode(), parameters={"function_to_apply": "sigmoid"}),
        TaskRequest(inputs=[png, base64.b64encode(jpeg).decode()]),  # a list: answered with a list
        TaskRequest(inputs=other),
    ]
    answers, sizes = media.run_through_batcher(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) >= 3  # the default-parameter requests ran together
    pipe = _pipeline("image-classification", folder)
    assert_scored(answers[0].body, pipe(_image(png)))
    assert len(answers[0].body) == 5
    assert_scored(answers[1].body, pipe(_image(jpeg), top_k=2))
    assert_scored(answers[2].body, pipe(_image(other), function_to_apply="sigmoid"))
    assert len(answers[3].body) == 2
    assert_scored(answers[3].body[0], pipe(_image(png)))
    assert_scored(answers[3].body[1], pipe(_image(jpeg)))
    assert_scored(answers[4].body, pipe(_image(other)))
    assert answers[3].units == {"images": 2.0}
    scores = [a["score"] for a in answers[0].body]
    assert scores == sorted(scores, reverse=True)


def test_image_classification_answer_parses_as_inference_client_does(
    classifier: tuple[Path, TaskRunner],
) -> None:
    from huggingface_hub import ImageClassificationOutputElement

    _, runner = classifier
    (answer,), _ = media.run_through_batcher(
        runner, [runner.prepare(TaskRequest(inputs=media.image_bytes()))]
    )
    parsed = ImageClassificationOutputElement.parse_obj_as_list(answer.body)
    assert parsed[0].label in media.IMAGE_LABELS and 0 < parsed[0].score < 1


@pytest.mark.parametrize(
    ("request_", "status", "says"),
    [
        (TaskRequest(inputs=media.image_bytes()[:60]), 400, "cannot be decoded"),  # a cut PNG
        (TaskRequest(inputs=b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), 400, "cannot be decoded"),
        (TaskRequest(inputs="a photo of a cat, please"), 400, "base64"),  # text where an image goes
        (TaskRequest(inputs=12), 400, "raw bytes, or base64"),
        (TaskRequest(inputs=media.oversized_png()), 413, "over the limit"),
        (TaskRequest(inputs=[media.image_bytes()] * 65), 413, "limit of 64"),
        (TaskRequest(inputs=[]), 400, "empty list"),
        (TaskRequest(inputs="https://example.com/cat.png"), 400, "does not fetch"),
        (TaskRequest(inputs=media.image_bytes(), parameters={"top_n": 2}), 400, "not supported"),
        (TaskRequest(inputs=media.image_bytes(), parameters={"top_k": 0}), 400, "top_k"),
        (TaskRequest(inputs=media.image_bytes(), parameters={"function_to_apply": "max"}), 400, "one of"),
        (TaskRequest(inputs=media.image_bytes(), parameters=["top_k"]), 400, "JSON object"),
    ],
)
def test_image_classification_refuses_bad_input(
    classifier: tuple[Path, TaskRunner], request_: TaskRequest, status: int, says: str
) -> None:
    _, runner = classifier
    with pytest.raises(TaskInputError, match=says) as err:
        runner.prepare(request_)
    assert err.value.status == status


def test_a_request_that_fails_at_run_time_fails_alone(classifier: tuple[Path, TaskRunner]) -> None:
    import numpy as np

    folder, runner = classifier
    good = [runner.prepare(TaskRequest(inputs=media.image_bytes(seed=s))) for s in range(3)]
    # decoding happens in prepare, so a bad payload can only come from past it: a bare 2-D array
    # (no colour axis), which the image processor cannot read
    flat = np.zeros((4, 4), dtype=np.uint8)
    broken = Prepared(payload=[flat], parameters=good[0].parameters, key=good[0].key)
    answers, _ = media.run_through_batcher(runner, [good[0], broken, good[1], good[2]])
    assert isinstance(answers[1], Exception) and "flat list of images" in str(answers[1])
    pipe = _pipeline("image-classification", folder)
    for answer, seed in zip([answers[0], answers[2], answers[3]], range(3), strict=True):
        assert_scored(answer.body, pipe(_image(media.image_bytes(seed=seed))))


def _png_image(data: str) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(data)))
