"""The image runners on tiny random-weight models, through a real Batcher, against the in-process
transformers pipeline on the same folder and the same decoded image (or the model itself where
transformers 5 has no pipeline)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from modelport.pipelines.base import Prepared, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import decode_image
from tests.support import task_models_media as media
from tests.support.runners import reference_pipeline, run_batched, warm_runner

TOL = 1e-4


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
    runner = warm_runner(folder, "image-classification")
    return folder, runner


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
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) >= 3  # the default-parameter requests ran together
    pipe = reference_pipeline("image-classification", folder)
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
    (answer,), _ = run_batched(runner, [runner.prepare(TaskRequest(inputs=media.image_bytes()))])
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
    answers, _ = run_batched(runner, [good[0], broken, good[1], good[2]])
    assert isinstance(answers[1], Exception) and "flat list of images" in str(answers[1])
    pipe = reference_pipeline("image-classification", folder)
    for answer, seed in zip([answers[0], answers[2], answers[3]], range(3), strict=True):
        assert_scored(answer.body, pipe(_image(media.image_bytes(seed=seed))))


def _png_image(data: str) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(data)))


# -- zero-shot-image-classification --------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(models: Path) -> tuple[Path, TaskRunner]:
    folder = _folder(models, "clip", media.build_clip)
    runner = warm_runner(folder, "zero-shot-image-classification")
    return folder, runner


def test_zero_shot_image_classification_equals_the_pipeline(clip: tuple[Path, TaskRunner]) -> None:
    from huggingface_hub import ZeroShotImageClassificationOutputElement

    folder, runner = clip
    a, b = media.image_bytes(seed=4), media.image_bytes(24, 36, "JPEG", seed=5)
    animals = ["cat", "dog", "bird"]
    requests = [
        TaskRequest(inputs=a, parameters={"candidate_labels": animals}),
        TaskRequest(inputs=b, parameters={"candidate_labels": animals}),
        TaskRequest(
            inputs=a, parameters={"candidate_labels": "cat, car"}
        ),  # comma-separated, as the API takes
        TaskRequest(
            inputs=b, parameters={"candidate_labels": animals, "hypothesis_template": "a picture of {} ."}
        ),
    ]
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) == 2  # the same labels batch together; other labels or templates run apart
    pipe = reference_pipeline("zero-shot-image-classification", folder)
    assert_scored(answers[0].body, pipe(_image(a), candidate_labels=animals))
    assert_scored(answers[1].body, pipe(_image(b), candidate_labels=animals))
    assert_scored(answers[2].body, pipe(_image(a), candidate_labels=["cat", "car"]))
    assert_scored(
        answers[3].body,
        pipe(_image(b), candidate_labels=animals, hypothesis_template="a picture of {} ."),
    )
    assert sum(x["score"] for x in answers[0].body) == pytest.approx(1.0)
    assert len(ZeroShotImageClassificationOutputElement.parse_obj_as_list(answers[0].body)) == 3


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ({}, "candidate_labels` is required"),
        ({"candidate_labels": []}, "list of 1 to"),
        ({"candidate_labels": ["cat", 3]}, "list of 1 to"),
        (
            {"candidate_labels": ["cat", "dog"], "hypothesis_template": "a photo of {x}"},
            "where the label goes",
        ),
        ({"candidate_labels": ["cat", "dog"], "hypothesis_template": "a photo"}, "where the label goes"),
        ({"candidate_labels": ["cat", "dog"], "multi_label": True}, "not supported"),
    ],
)
def test_zero_shot_image_classification_refuses_bad_parameters(
    clip: tuple[Path, TaskRunner], parameters: dict[str, Any], says: str
) -> None:
    _, runner = clip
    with pytest.raises(TaskInputError, match=says):
        runner.prepare(TaskRequest(inputs=media.image_bytes(), parameters=parameters))


# -- object-detection ----------------------------------------------------------------------------


def test_object_detection_equals_the_pipeline(models: Path) -> None:
    from huggingface_hub import ObjectDetectionOutputElement

    folder = _folder(models, "detr", media.build_detr)
    runner = warm_runner(folder, "object-detection")
    a, b = media.image_bytes(40, 30, seed=6), media.image_bytes(30, 50, "JPEG", seed=7)
    requests = [
        TaskRequest(inputs=a, parameters={"threshold": 0.1}),
        TaskRequest(inputs=b, parameters={"threshold": 0.1}),
        TaskRequest(inputs=a),
        TaskRequest(inputs=a, parameters={"threshold": 1.0}),
    ]
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) == 2
    pipe = reference_pipeline("object-detection", folder)
    for answer, image, threshold in [(answers[0], a, 0.1), (answers[1], b, 0.1), (answers[2], a, None)]:
        want = pipe(_image(image), **({} if threshold is None else {"threshold": threshold}))
        assert_scored(answer.body, want)
        assert [g["box"] for g in answer.body] == [w["box"] for w in want]
    assert answers[0].body  # the threshold let some through
    assert answers[3].body == []
    parsed = ObjectDetectionOutputElement.parse_obj_as_list(answers[0].body)
    assert all(0 <= p.box.xmin <= p.box.xmax <= 40 for p in parsed)
    with pytest.raises(TaskInputError, match="number from 0"):
        runner.prepare(TaskRequest(inputs=a, parameters={"threshold": 1.5}))


# -- image-segmentation --------------------------------------------------------------------------


def _mask_array(mask: Any) -> Any:
    import numpy as np

    return np.asarray(mask.convert("L"))


def test_semantic_segmentation_equals_the_pipeline(models: Path) -> None:
    import numpy as np
    from huggingface_hub.inference._common import _b64_to_image

    folder = _folder(models, "segformer", media.build_segformer)
    runner = warm_runner(folder, "image-segmentation")
    a, b = media.image_bytes(40, 30, seed=8), media.image_bytes(20, 24, seed=9)
    prepared = [runner.prepare(TaskRequest(inputs=x)) for x in (a, b)]
    prepared.append(runner.prepare(TaskRequest(inputs=a, parameters={"subtask": "semantic"})))
    answers, _ = run_batched(runner, prepared)
    pipe = reference_pipeline("image-segmentation", folder)
    for answer, image in zip(answers, (a, b, a), strict=True):
        want = pipe(_image(image))
        assert [s["label"] for s in answer.body] == [w["label"] for w in want]
        for got, expected in zip(answer.body, want, strict=True):
            assert got["score"] is None
            mask = _b64_to_image(got["mask"])  # as InferenceClient.image_segmentation reads it
            assert mask.size == _image(image).size
            assert np.array_equal(_mask_array(mask), _mask_array(expected["mask"]))
    for parameters, says in [
        ({"subtask": "panoptic"}, "does not do panoptic"),
        ({"threshold": 0.5}, "applies to instance and panoptic"),
        ({"mask_threshold": 0.5}, "applies to instance and panoptic"),
        ({"subtask": "everything"}, "one of"),
    ]:
        with pytest.raises(TaskInputError, match=says):
            runner.prepare(TaskRequest(inputs=a, parameters=parameters))


def test_panoptic_segmentation_equals_the_pipeline(models: Path) -> None:
    import numpy as np

    folder = _folder(models, "detr-panoptic", media.build_detr_panoptic)
    runner = warm_runner(folder, "image-segmentation")
    image = media.image_bytes(40, 30, seed=6)
    loose = {"threshold": 0.1, "mask_threshold": 0.1, "overlap_mask_area_threshold": 0.0}
    requests = [
        TaskRequest(inputs=image, parameters={"subtask": "panoptic", **loose}),
        TaskRequest(inputs=image, parameters={"subtask": "instance", "threshold": 0.1}),
        TaskRequest(inputs=image),
    ]
    answers, _ = run_batched(runner, [runner.prepare(r) for r in requests])
    pipe = reference_pipeline("image-segmentation", folder)
    wants = [
        pipe(_image(image), subtask="panoptic", **loose),
        pipe(_image(image), subtask="instance", threshold=0.1),
        pipe(_image(image)),
    ]
    assert answers[0].body
    for answer, want in zip(answers, wants, strict=True):
        assert_scored(answer.body, want)
        for got, expected in zip(answer.body, want, strict=True):
            decoded = _png_image(got["mask"])
            assert np.array_equal(_mask_array(decoded), _mask_array(expected["mask"]))


# -- image-to-text -------------------------------------------------------------------------------


def test_image_to_text_equals_generate_on_the_model(models: Path) -> None:
    import torch
    from huggingface_hub import ImageToTextOutput
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    folder = _folder(models, "captioner", media.build_captioner)
    runner = warm_runner(folder, "image-to-text")
    a, b = media.image_bytes(seed=10), media.image_bytes(50, 30, "JPEG", seed=11)
    requests = [
        TaskRequest(inputs=a, parameters={"max_new_tokens": 6}),
        TaskRequest(inputs=b, parameters={"max_new_tokens": 6}),
        TaskRequest(inputs=[b, a], parameters={"generation_parameters": {"max_new_tokens": 6}}),
        TaskRequest(inputs=a, parameters={"generation_parameters": {"num_beams": 2, "max_new_tokens": 4}}),
    ]
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) == 2
    model = VisionEncoderDecoderModel.from_pretrained(folder).eval()
    images, tok = AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)

    def caption(data: bytes, **kwargs: Any) -> str:
        pixels = images(images=_image(data), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            ids = model.generate(pixel_values=pixels, **kwargs)
        return str(tok.decode(ids[0], skip_special_tokens=True)).strip()

    assert answers[0].body == [{"generated_text": caption(a, max_new_tokens=6)}]
    assert answers[1].body == [{"generated_text": caption(b, max_new_tokens=6)}]
    assert answers[2].body == [answers[1].body, answers[0].body]
    assert answers[3].body == [{"generated_text": caption(a, num_beams=2, max_new_tokens=4)}]
    assert answers[0].body[0]["generated_text"]
    parsed = ImageToTextOutput.parse_obj_as_list(answers[0].body)[0]  # what image_to_text returns
    assert parsed.generated_text == answers[0].body[0]["generated_text"]
    for parameters, says in [
        ({"max_new_tokens": 0}, "integer from 1 to 64"),
        ({"max_new_tokens": 65}, "integer from 1 to 64"),
        ({"generation_parameters": {"num_beam_groups": 2}}, "num_beam_groups"),
        ({"generation_parameters": {"temperature": "hot"}}, "temperature"),
        ({"generation_parameters": "greedy"}, "JSON object"),
        ({"max_new_tokens": 3, "generation_parameters": {"max_new_tokens": 3}}, "given twice"),
        ({"prompt": "a photo of"}, "not supported"),
    ]:
        with pytest.raises(TaskInputError, match=says):
            runner.prepare(TaskRequest(inputs=a, parameters=parameters))
