"""Issue 19 from outside: non-LLM Hub tasks served by `modelport up`, created with the CLI and with
huggingface_hub's `create_inference_endpoint(task=...)`, answering the real clients
(`InferenceClient` task methods, the OpenAI SDK) exactly as the same model does in-process, and
refusing bad input in the API's shape with nothing left behind.

One control plane and one set of tiny random-weight models per module; each endpoint is created
once and shared by the tests that call it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from huggingface_hub import HfApi, InferenceClient, constants

from modelport.sdk.huggingface import use_modelport
from tests.support.control_plane_process import ControlPlaneProcess, replica_processes
from tests.support.task_models_media import (
    SAMPLING_RATE,
    audio_bytes,
    build_ctc,
    build_image_classifier,
    image_bytes,
)
from tests.support.task_models_text import text_classifier

TOL = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("task-models")
    return {
        "classifier": text_classifier(root / "sentiment"),
        "vit": build_image_classifier(root / "vit"),
        "ctc": build_ctc(root / "ctc"),
    }


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    env = {"MODELPORT_TORCH_THREADS": "1"}
    with ControlPlaneProcess(
        tmp_path_factory.mktemp("tasks") / "data", None, "--no-demo", env=env
    ) as control:
        yield control


@pytest.fixture(scope="module", autouse=True)
def clients_online() -> Iterator[None]:
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False  # blocks even loopback calls; nothing here reaches the Hub
    yield
    constants.HF_HUB_OFFLINE = offline


@pytest.fixture(scope="module")
def hub(cp: ControlPlaneProcess) -> Iterator[HfApi]:
    previous = use_modelport(cp.url)
    yield HfApi()
    constants.INFERENCE_ENDPOINTS_ENDPOINT = previous


def cli(cp: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_URL": cp.url, "MODELPORT_DATA_DIR": str(cp.data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def created_with_cli(cp: ControlPlaneProcess, name: str, model: Path, task: str | None = None) -> str:
    args = ["endpoints", "create", name, "--model", str(model), "--json"]
    done = cli(cp, *args, *(["--task", task] if task else []))
    assert done.returncode == 0, done.stderr
    url = cp.wait_for(name, "running", timeout=240)["status"]["url"]  # type: ignore[index]
    return str(url)


def created_with_hub(hub: HfApi, cp: ControlPlaneProcess, name: str, model: Path, task: str) -> str:
    ep = hub.create_inference_endpoint(
        name, repository=str(model), framework="pytorch", accelerator="cpu", instance_size="x1",
        instance_type="local", region="local", vendor="local", type="authenticated", namespace="default",
        token=cp.token, task=task,
    )  # fmt: skip
    ep.wait(timeout=240, refresh_every=1)
    assert ep.status == "running" and ep.task == task
    return str(ep.url)


@pytest.fixture(scope="module")
def classifier_url(cp: ControlPlaneProcess, models: dict[str, Path]) -> str:
    return created_with_cli(cp, "sentiment", models["classifier"])  # the task is found by itself


@pytest.fixture(scope="module")
def vit_url(cp: ControlPlaneProcess, hub: HfApi, models: dict[str, Path]) -> str:
    return created_with_hub(hub, cp, "vit", models["vit"], "image-classification")


@pytest.fixture(scope="module")
def asr_url(cp: ControlPlaneProcess, hub: HfApi, models: dict[str, Path]) -> str:
    return created_with_hub(hub, cp, "asr", models["ctc"], "automatic-speech-recognition")


def same_scores(got: list[Any], want: list[dict[str, Any]]) -> None:
    assert [g.label for g in got] == [w["label"] for w in want]
    assert np.allclose([g.score for g in got], [w["score"] for w in want], atol=TOL)


def usage_units(cp: ControlPlaneProcess, endpoint: str) -> dict[str, Any]:
    done = cli(cp, "usage", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# -- NLP ---------------------------------------------------------------------------------------


def test_a_text_classifier_found_by_itself_answers_as_the_pipeline_does(
    cp: ControlPlaneProcess, models: dict[str, Path], classifier_url: str
) -> None:
    from transformers import pipeline

    described = cli(cp, "endpoints", "describe", "sentiment", "--json")
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["model"]["task"] == "text-classification"

    client = InferenceClient(model=classifier_url, token=cp.token)
    reference = pipeline("text-classification", model=str(models["classifier"]))
    text = "the service was good and quick"
    same_scores(client.text_classification(text, top_k=3), reference(text, top_k=3))
    same_scores(
        client.text_classification(text, top_k=2, function_to_apply="sigmoid"),
        reference(text, top_k=2, function_to_apply="sigmoid"),
    )


def test_a_task_the_model_cannot_serve_is_refused_at_create(
    cp: ControlPlaneProcess, models: dict[str, Path]
) -> None:
    done = cli(cp, "endpoints", "create", "wrong", "--model", str(models["classifier"]), "--task",
               "image-classification", "--json")  # fmt: skip
    assert done.returncode != 0
    assert "cannot serve 'image-classification'" in done.stderr and "text-classification" in done.stderr
    assert cp.api("GET", "/v2/endpoint/default/wrong").status_code == 404


def test_bad_task_input_is_refused_in_the_api_shape(cp: ControlPlaneProcess, classifier_url: str) -> None:
    auth = cp.headers
    cases = [
        ({"inputs": "x", "parameters": {"top_k": 2, "temperature": 1.0}}, 400, "temperature"),
        ({"inputs": "x", "parameters": {"top_k": -1}}, 400, "top_k"),
        ({"text": "x"}, 400, "inputs"),
    ]
    for body, status, word in cases:
        r = httpx.post(classifier_url, json=body, headers=auth, timeout=30)
        assert r.status_code == status, r.text
        assert word in r.json()["error"]
    r = httpx.post(classifier_url, content=image_bytes(), headers={**auth, "content-type": "image/png"})
    assert r.status_code == 415 and "text" in r.json()["error"]


# -- vision --------------------------------------------------------------------------------------


def test_an_image_classifier_from_huggingface_hub_takes_raw_and_base64_images(
    cp: ControlPlaneProcess, models: dict[str, Path], vit_url: str
) -> None:
    from PIL import Image
    from transformers import pipeline

    png = image_bytes(48, 40, seed=3)
    reference = pipeline("image-classification", model=str(models["vit"]))
    want = reference(Image.open(io.BytesIO(png)).convert("RGB"), top_k=2)
    client = InferenceClient(model=vit_url, token=cp.token)
    same_scores(client.image_classification(png, top_k=2), want)  # with a parameter: base64 in JSON
    raw = httpx.post(vit_url, content=png, headers={**cp.headers, "content-type": "image/png"}, timeout=60)
    assert raw.status_code == 200, raw.text
    assert raw.json()[0]["label"] == reference(Image.open(io.BytesIO(png)).convert("RGB"))[0]["label"]

    corrupt = httpx.post(vit_url, content=png[:40], headers={**cp.headers, "content-type": "image/png"})
    assert corrupt.status_code == 400 and "cannot be decoded" in corrupt.json()["error"]
    video = httpx.post(vit_url, content=b"\x00" * 64, headers={**cp.headers, "content-type": "video/mp4"})
    assert video.status_code == 415
    url_input = httpx.post(vit_url, json={"inputs": "https://example.com/cat.png"}, headers=cp.headers)
    assert url_input.status_code == 400 and "URL" in url_input.json()["error"]


# -- audio ---------------------------------------------------------------------------------------


def test_a_speech_recognizer_answers_huggingface_hub_and_the_openai_sdk(
    cp: ControlPlaneProcess, models: dict[str, Path], asr_url: str
) -> None:
    import soundfile
    from openai import OpenAI
    from transformers import pipeline

    wav = audio_bytes(seconds=1.0, rate=SAMPLING_RATE * 2)  # resampled by the server
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    reference = pipeline("automatic-speech-recognition", model=str(models["ctc"]))
    from modelport.pipelines.media import resample

    want = reference({"raw": resample(samples, rate, SAMPLING_RATE), "sampling_rate": SAMPLING_RATE})["text"]

    client = InferenceClient(model=asr_url, token=cp.token)
    assert client.automatic_speech_recognition(wav).text == want

    openai = OpenAI(base_url=f"{asr_url}/v1", api_key=cp.token)
    transcript = openai.audio.transcriptions.create(model="asr", file=("clip.wav", wav, "audio/wav"))
    assert transcript.text == want
    verbose = openai.audio.transcriptions.create(
        model="asr", file=("clip.wav", wav, "audio/wav"), response_format="verbose_json"
    )
    assert verbose.text == want and abs(verbose.duration - 1.0) < 0.01

    truncated = httpx.post(asr_url, content=wav[:30], headers={**cp.headers, "content-type": "audio/wav"})
    assert truncated.status_code == 400 and "cannot be decoded" in truncated.json()["error"]


def test_no_replica_process_is_left_behind_by_refused_requests(cp: ControlPlaneProcess) -> None:
    # every endpoint above is still served by exactly one replica: bad input killed none of them
    names = cp.api("GET", "/v2/endpoint/default").json()["items"]
    running = [e for e in names if e["status"]["state"] == "running"]
    assert len(replica_processes(cp.data_dir)) == len(running)
