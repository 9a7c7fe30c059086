"""The audio runners on tiny random-weight wav2vec2 models, through a real Batcher, against the
in-process transformers pipeline on the same folder and the same decoded samples."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.pipelines.base import Prepared, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import decode_audio
from modelport.pipelines.runners.audio import Transcription, min_samples, transcription, transcription_request
from tests.support import task_models_media as media
from tests.support.runners import reference_pipeline, run_batched, warm_runner

TOL = 1e-4
RATE = media.SAMPLING_RATE


@pytest.fixture(scope="module")
def ctc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TaskRunner, Any]:
    folder = media.build_ctc(tmp_path_factory.mktemp("audio") / "ctc")
    runner = warm_runner(folder, "automatic-speech-recognition")
    return folder, runner, reference_pipeline("automatic-speech-recognition", folder)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TaskRunner, Any]:
    folder = media.build_audio_classifier(tmp_path_factory.mktemp("audio") / "cls")
    runner = warm_runner(folder, "audio-classification")
    return folder, runner, reference_pipeline("audio-classification", folder)


def samples(data: bytes) -> Any:
    return decode_audio(data, RATE)


def assert_scored(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["score"] == pytest.approx(w["score"], abs=TOL)


# -- automatic-speech-recognition ----------------------------------------------------------------


def test_speech_recognition_batch_equals_the_pipeline(ctc: tuple[Path, TaskRunner, Any]) -> None:
    _, runner, pipe = ctc
    wav = media.audio_bytes(0.5, seed=1)
    flac = media.audio_bytes(0.8, fmt="FLAC", hz=220, seed=2)
    resampled = media.audio_bytes(0.6, rate=8000, seed=3)  # 8 kHz: resampled to the model's 16 kHz
    requests = [
        TaskRequest(inputs=wav),
        TaskRequest(inputs=flac),
        TaskRequest(inputs=base64.b64encode(resampled).decode()),
        TaskRequest(inputs=[flac, wav]),
    ]
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) == 4  # one padded forward for clips of three lengths
    for answer, clip in zip(answers[:3], [wav, flac, resampled], strict=True):
        assert answer.body == {"text": pipe(samples(clip))["text"].strip()}
    assert answers[3].body == [answers[1].body, answers[0].body]
    assert answers[0].units == {"audio_seconds": 0.5}
    assert answers[3].units == {"audio_seconds": 1.3}
    assert answers[2].units == {"audio_seconds": 0.6}


def test_speech_recognition_timestamps(ctc: tuple[Path, TaskRunner, Any]) -> None:
    from huggingface_hub import AutomaticSpeechRecognitionOutput

    _, runner, pipe = ctc
    clip = media.audio_bytes(0.7, seed=4)
    prepared = [
        runner.prepare(TaskRequest(inputs=clip, parameters={"return_timestamps": True})) for _ in range(2)
    ]
    answers, _ = run_batched(runner, prepared)
    want = pipe(samples(clip), return_timestamps="word")
    body = answers[0].body
    assert body["text"] == want["text"].strip()
    assert len(body["chunks"]) > 1
    assert [c["text"] for c in body["chunks"]] == [c["text"] for c in want["chunks"]]
    for got, expected in zip(body["chunks"], want["chunks"], strict=True):
        assert got["timestamp"] == pytest.approx(list(expected["timestamp"]))
    parsed = AutomaticSpeechRecognitionOutput.parse_obj_as_instance(body)
    assert parsed.chunks is not None and parsed.chunks[0].timestamp[1] <= 0.7
    assert answers[1].body == body


def test_openai_transcription_helper(ctc: tuple[Path, TaskRunner, Any]) -> None:
    _, runner, pipe = ctc
    clip = media.audio_bytes(1.25, seed=5)
    request = transcription_request(runner, clip, timestamps=True)
    (answer,), _ = run_batched(runner, [runner.prepare(request)])
    result = transcription(answer)
    assert isinstance(result, Transcription)
    assert result.text == pipe(samples(clip))["text"].strip()
    assert result.duration == 1.25
    assert result.segments and result.segments[-1].end <= 1.25
    with pytest.raises(TaskInputError, match="CTC") as err:
        transcription_request(runner, clip, temperature=0.7)
    assert err.value.param == "temperature"
    assert transcription_request(runner, clip, temperature=0.0).parameters == {}


def test_shortest_clip_is_the_conv_encoders_receptive_field(ctc: tuple[Path, TaskRunner, Any]) -> None:
    folder, runner, _ = ctc
    from transformers import AutoConfig

    shortest = min_samples(AutoConfig.from_pretrained(folder))
    assert shortest == 10 + (4 - 1) * 5  # kernels (10, 4), strides (5, 4)
    import io

    import soundfile

    def clip(n: int) -> bytes:
        buf = io.BytesIO()
        soundfile.write(buf, np.full(n, 0.1, dtype=np.float32), RATE, format="WAV")
        return buf.getvalue()

    runner.prepare(TaskRequest(inputs=clip(shortest)))
    with pytest.raises(TaskInputError, match="at least"):
        runner.prepare(TaskRequest(inputs=clip(shortest - 1)))


@pytest.mark.parametrize(
    ("request_", "status", "says"),
    [
        (
            TaskRequest(inputs=media.audio_bytes()[:30]),
            400,
            "cannot be decoded",
        ),  # a WAV cut inside its header
        (TaskRequest(inputs=b"RIFF" + b"\x00" * 100), 400, "cannot be decoded"),
        (TaskRequest(inputs="say hello to the model"), 400, "base64"),  # text where audio goes
        (TaskRequest(inputs={"audio": "x"}), 400, "raw bytes, or base64"),
        (TaskRequest(inputs=b""), 400, "empty"),
        (TaskRequest(inputs=media.audio_bytes(), parameters={"language": "en"}), 400, "not supported"),
        (
            TaskRequest(inputs=media.audio_bytes(), parameters={"return_timestamps": "word"}),
            400,
            "true or false",
        ),
        (
            TaskRequest(
                inputs=media.audio_bytes(), parameters={"generation_parameters": {"max_new_tokens": 5}}
            ),
            400,
            "CTC model",
        ),
    ],
)
def test_speech_recognition_refuses_bad_input(
    ctc: tuple[Path, TaskRunner, Any], request_: TaskRequest, status: int, says: str
) -> None:
    _, runner, _ = ctc
    with pytest.raises(TaskInputError, match=says) as err:
        runner.prepare(request_)
    assert err.value.status == status


def test_a_clip_that_fails_at_run_time_fails_alone(ctc: tuple[Path, TaskRunner, Any]) -> None:
    _, runner, pipe = ctc
    clips = [media.audio_bytes(0.3 + 0.1 * s, seed=s) for s in range(3)]
    good = [runner.prepare(TaskRequest(inputs=c)) for c in clips]
    # decoding happens in prepare, so a bad payload can only come from past it: samples that are
    # not numbers, which the feature extractor cannot normalise
    broken = Prepared(
        payload=[np.array(["x"] * 400)], parameters=good[0].parameters, key=good[0].key, size=400
    )
    answers, _ = run_batched(runner, [good[0], broken, good[1], good[2]])
    assert isinstance(answers[1], Exception)
    for answer, clip in zip([answers[0], answers[2], answers[3]], clips, strict=True):
        assert answer.body == {"text": pipe(samples(clip))["text"].strip()}


# -- audio-classification ------------------------------------------------------------------------


def test_audio_classification_batch_equals_the_pipeline(classifier: tuple[Path, TaskRunner, Any]) -> None:
    from huggingface_hub import AudioClassificationOutputElement

    _, runner, pipe = classifier
    a, b = media.audio_bytes(0.4, seed=6), media.audio_bytes(0.9, fmt="FLAC", seed=7)
    requests = [
        TaskRequest(inputs=a),
        TaskRequest(inputs=b),
        TaskRequest(inputs=[b, a]),
        TaskRequest(inputs=a, parameters={"top_k": 2}),
        TaskRequest(inputs=b, parameters={"top_k": 3, "function_to_apply": "sigmoid"}),
        TaskRequest(inputs=a, parameters={"function_to_apply": "none"}),
    ]
    answers, sizes = run_batched(runner, [runner.prepare(r) for r in requests])
    assert max(sizes) == 3
    assert_scored(answers[0].body, pipe(samples(a)))
    assert len(answers[0].body) == len(media.AUDIO_LABELS)
    assert_scored(answers[1].body, pipe(samples(b)))
    assert_scored(answers[2].body[0], pipe(samples(b)))
    assert_scored(answers[2].body[1], pipe(samples(a)))
    assert_scored(answers[3].body, pipe(samples(a), top_k=2))
    assert_scored(answers[4].body, pipe(samples(b), top_k=3, function_to_apply="sigmoid"))
    assert_scored(answers[5].body, pipe(samples(a), function_to_apply="none"))
    parsed = AudioClassificationOutputElement.parse_obj_as_list(answers[3].body)
    assert [p.label for p in parsed] == [x["label"] for x in answers[3].body]
    assert answers[2].units == {"audio_seconds": 1.3}


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (TaskRequest(inputs=media.audio_bytes()[:40]), "cannot be decoded"),
        (TaskRequest(inputs=media.image_bytes()), "cannot be decoded"),  # an image where audio goes
        (TaskRequest(inputs=media.audio_bytes(), parameters={"top_k": -1}), "top_k"),
        (TaskRequest(inputs=media.audio_bytes(), parameters={"function_to_apply": "relu"}), "one of"),
        (TaskRequest(inputs=media.audio_bytes(), parameters={"candidate_labels": ["a"]}), "not supported"),
    ],
)
def test_audio_classification_refuses_bad_input(
    classifier: tuple[Path, TaskRunner, Any], request_: TaskRequest, says: str
) -> None:
    _, runner, _ = classifier
    with pytest.raises(TaskInputError, match=says):
        runner.prepare(request_)
