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
from tests.support.task_models_diffusion import build_tiny_sd
from tests.support.task_models_media import (
    SAMPLING_RATE,
    audio_bytes,
    build_audio_classifier,
    build_captioner,
    build_clip,
    build_ctc,
    build_detr,
    build_image_classifier,
    build_segformer,
    image_bytes,
)
from tests.support.task_models_text import (
    cross_encoder,
    masked_lm,
    ner_tagger,
    nli_model,
    qa_model,
    seq2seq_model,
    text_classifier,
)

TOL = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("task-models")
    return {
        "classifier": text_classifier(root / "sentiment"),
        "vit": build_image_classifier(root / "vit"),
        "ctc": build_ctc(root / "ctc"),
        "ner": ner_tagger(root / "ner"),
        "nli": nli_model(root / "nli"),
        "reranker": cross_encoder(root / "reranker"),
        "t5": seq2seq_model(root / "t5"),
        "detr": build_detr(root / "detr"),
        "audio-cls": build_audio_classifier(root / "audio-cls"),
        "sd": build_tiny_sd(root / "tiny-sd"),
        "mlm": masked_lm(root / "mlm"),
        "qa": qa_model(root / "qa"),
        "clip": build_clip(root / "clip"),
        "segformer": build_segformer(root / "segformer"),
        "captioner": build_captioner(root / "captioner"),
        "handler": handler_folder(root / "handler"),
    }


HANDLER = """
class EndpointHandler:
    def __init__(self, path):
        self.path = path

    def __call__(self, data):
        text = data["inputs"]
        if text == "fail":
            raise KeyError("no such thing")
        return {"reversed": text[::-1], "parameters": data["parameters"]}
"""


def handler_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "handler.py").write_text(HANDLER)
    (path / "requirements.txt").write_text("numpy>=1.0\n")
    return path


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


# endpoint name: (model, task asked for; None = found by itself). Created one after the other,
# every other one with the CLI and the rest with huggingface_hub, then waited for together, so
# their replicas load side by side.
MORE = {
    "ner": ("ner", None),
    "zero-shot": ("nli", "zero-shot-classification"),
    "rerank": ("reranker", None),
    "summarize": ("t5", "summarization"),
    "translate": ("t5", "translation"),
    "fill": ("mlm", "fill-mask"),
    "qa": ("qa", None),
    "detect": ("detr", None),
    "segment": ("segformer", None),
    "clip": ("clip", None),
    "caption": ("captioner", None),
    "sounds": ("audio-cls", None),
    "draw": ("sd", "text-to-image"),
}


@pytest.fixture(scope="module")
def more(cp: ControlPlaneProcess, hub: HfApi, models: dict[str, Path]) -> dict[str, str]:
    for i, (name, (model, task)) in enumerate(MORE.items()):
        if i % 2 == 0:
            args = ["endpoints", "create", name, "--model", str(models[model]), "--json"]
            done = cli(cp, *args, *(["--task", task] if task else []))
            assert done.returncode == 0, done.stderr
        else:
            hub.create_inference_endpoint(
                name, repository=str(models[model]), framework="pytorch", accelerator="cpu",
                instance_size="x1", instance_type="local", region="local", vendor="local",
                type="authenticated", namespace="default", token=cp.token, task=task,
            )  # fmt: skip
    return {name: str(cp.wait_for(name, "running", timeout=300)["status"]["url"]) for name in MORE}  # type: ignore[index]


def same_scores(got: list[Any], want: list[dict[str, Any]]) -> None:
    assert [g.label for g in got] == [w["label"] for w in want]
    assert np.allclose([g.score for g in got], [w["score"] for w in want], atol=TOL)


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


# -- more NLP, vision and audio tasks through the gateway -------------------------------------------


def test_ner_zero_shot_and_summarization_answer_as_in_process(
    cp: ControlPlaneProcess, models: dict[str, Path], more: dict[str, str]
) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    text = "alice lives in the house at the river in paris"  # words of the test vocabulary: no ties
    ner = InferenceClient(model=more["ner"], token=cp.token).token_classification(
        text, aggregation_strategy="simple"
    )
    want = pipeline("token-classification", model=str(models["ner"]), aggregation_strategy="simple")(text)
    assert [(e.entity_group, e.start, e.end) for e in ner] == [
        (w["entity_group"], w["start"], w["end"]) for w in want
    ]
    assert np.allclose([e.score for e in ner], [w["score"] for w in want], atol=TOL)

    labels = ["city", "river", "movie"]
    got = InferenceClient(model=more["zero-shot"], token=cp.token).zero_shot_classification(
        text, candidate_labels=labels, multi_label=True
    )
    ref = pipeline("zero-shot-classification", model=str(models["nli"]))(
        text, candidate_labels=labels, multi_label=True
    )
    assert [g.label for g in got] == ref["labels"]
    assert np.allclose([g.score for g in got], ref["scores"], atol=TOL)

    summary = InferenceClient(model=more["summarize"], token=cp.token).summarization(
        text, generate_parameters={"max_new_tokens": 6}
    )
    tokenizer = AutoTokenizer.from_pretrained(str(models["t5"]))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(models["t5"])).eval()
    with torch.no_grad():
        ids = model.generate(
            **tokenizer("summarize: " + text, return_tensors="pt"), max_new_tokens=6, do_sample=False
        )
    assert summary.summary_text == tokenizer.decode(ids[0], skip_special_tokens=True)


def test_rerank_on_tei_and_cohere_routes_and_tei_predict(
    cp: ControlPlaneProcess, models: dict[str, Path], more: dict[str, str], classifier_url: str
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    query, texts = "where does bob live", ["bob lives in paris", "a red book", "bob works at the park"]
    tokenizer = AutoTokenizer.from_pretrained(str(models["reranker"]))
    model = AutoModelForSequenceClassification.from_pretrained(str(models["reranker"])).eval()
    with torch.no_grad():
        logits = model(**tokenizer([query] * 3, texts, padding=True, return_tensors="pt")).logits[:, 0]
    scores = torch.sigmoid(logits).tolist()
    order = sorted(range(3), key=lambda i: scores[i], reverse=True)

    tei = httpx.post(f"{more['rerank']}/rerank", json={"query": query, "texts": texts, "return_text": True},
                     headers=cp.headers, timeout=60)  # fmt: skip
    assert tei.status_code == 200, tei.text
    assert [r["index"] for r in tei.json()] == order and tei.json()[0]["text"] == texts[order[0]]
    assert np.allclose([r["score"] for r in tei.json()], [scores[i] for i in order], atol=TOL)

    cohere = httpx.post(f"{more['rerank']}/v1/rerank", json={"model": "x", "query": query, "documents": texts,
                        "top_n": 2, "return_documents": True}, headers=cp.headers, timeout=60)  # fmt: skip
    assert cohere.status_code == 200, cohere.text
    results = cohere.json()["results"]
    assert [r["index"] for r in results] == order[:2] and results[0]["document"]["text"] == texts[order[0]]
    assert cohere.json()["usage"]["total_tokens"] > 0

    bad = httpx.post(f"{more['rerank']}/rerank", json={"query": query, "texts": []}, headers=cp.headers)
    assert bad.status_code == 422 and "1 to" in bad.json()["error"]

    from transformers import pipeline

    predicted = httpx.post(
        f"{classifier_url}/predict", json={"inputs": "a great movie"}, headers=cp.headers, timeout=60
    )
    assert predicted.status_code == 200, predicted.text
    ref = pipeline("text-classification", model=str(models["classifier"]))("a great movie", top_k=None)
    assert [p["label"] for p in predicted.json()] == [r["label"] for r in ref]
    assert np.allclose([p["score"] for p in predicted.json()], [r["score"] for r in ref], atol=TOL)


def test_object_detection_and_audio_classification_answer_as_the_pipelines_do(
    cp: ControlPlaneProcess, models: dict[str, Path], more: dict[str, str]
) -> None:
    import soundfile
    from PIL import Image
    from transformers import pipeline

    png = image_bytes(64, 48, seed=5)
    boxes = InferenceClient(model=more["detect"], token=cp.token).object_detection(png, threshold=0.0)
    ref = pipeline("object-detection", model=str(models["detr"]))(
        Image.open(io.BytesIO(png)).convert("RGB"), threshold=0.0
    )
    assert [(b.label, b.box.xmin, b.box.ymax) for b in boxes] == [
        (r["label"], r["box"]["xmin"], r["box"]["ymax"]) for r in ref
    ]
    assert np.allclose([b.score for b in boxes], [r["score"] for r in ref], atol=TOL)

    wav = audio_bytes(seconds=1.0)
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    got = InferenceClient(model=more["sounds"], token=cp.token).audio_classification(wav)
    want = pipeline("audio-classification", model=str(models["audio-cls"]))(
        {"raw": samples, "sampling_rate": rate}
    )
    same_scores(got, want)


def test_task_requests_are_metered_in_their_own_units(
    cp: ControlPlaneProcess, more: dict[str, str], asr_url: str
) -> None:
    done = cli(cp, "usage", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    by_endpoint = {item["endpoint"]: item for item in report["items"]}
    assert by_endpoint["asr"]["units"]["audio_seconds"] >= 1.0
    assert by_endpoint["detect"]["units"]["images"] >= 1
    assert by_endpoint["rerank"]["units"]["documents"] >= 3
    assert by_endpoint["sentiment"]["prompt_tokens"] > 0


# -- diffusion and custom handlers -------------------------------------------------------------------


def test_text_to_image_is_bit_identical_to_diffusers_through_both_clients(
    cp: ControlPlaneProcess, models: dict[str, Path], more: dict[str, str]
) -> None:
    import base64

    import torch
    from diffusers import DiffusionPipeline
    from openai import OpenAI

    pipe = DiffusionPipeline.from_pretrained(str(models["sd"]), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    def direct(seed: int) -> Any:
        image = pipe(
            "a red cat", generator=torch.Generator().manual_seed(seed), num_inference_steps=2
        ).images[0]
        return np.asarray(image)

    client = InferenceClient(model=more["draw"], token=cp.token)
    got = client.text_to_image("a red cat", seed=11, num_inference_steps=2)
    assert np.array_equal(np.asarray(got.convert("RGB")), direct(11))

    from PIL import Image

    openai = OpenAI(base_url=f"{more['draw']}/v1", api_key=cp.token)
    images = openai.images.generate(
        model="draw", prompt="a red cat", n=2, response_format="b64_json",
        extra_body={"seed": 20, "num_inference_steps": 2},
    )  # fmt: skip
    pixels = [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(d.b64_json or ""))).convert("RGB"))
        for d in images.data
    ]
    assert np.array_equal(pixels[0], direct(20)) and np.array_equal(pixels[1], direct(21))

    too_wide = httpx.post(
        more["draw"], json={"inputs": "x", "parameters": {"width": 4096}}, headers=cp.headers
    )
    assert too_wide.status_code == 400 and "width" in too_wide.json()["error"]
    url = httpx.post(f"{more['draw']}/v1/images/generations", json={"prompt": "x", "response_format": "url"},
                     headers=cp.headers)  # fmt: skip
    assert url.status_code == 400 and url.json()["error"]["param"] == "response_format"


def test_a_custom_handler_runs_only_when_allowed(cp: ControlPlaneProcess, models: dict[str, Path]) -> None:
    spec = {"name": "custom", "type": "protected", "model": {"repository": str(models["handler"])}}
    refused = cp.api("POST", "/v2/endpoint/default", json=spec)
    assert refused.status_code == 422 and "--trust-remote-code" in refused.json()["error"]
    spec["model"]["args"] = ["--trust-remote-code"]  # type: ignore[index]
    assert cp.api("POST", "/v2/endpoint/default", json=spec).status_code in (200, 201, 202)
    url = str(cp.wait_for("custom", "running", timeout=240)["status"]["url"])  # type: ignore[index]
    described = json.loads(cli(cp, "endpoints", "describe", "custom", "--json").stdout)
    assert described["model"]["task"] == "custom"
    ok = httpx.post(url, json={"inputs": "abc", "parameters": {"k": 1}}, headers=cp.headers, timeout=60)
    assert ok.status_code == 200 and ok.json() == {"reversed": "cba", "parameters": {"k": 1}}
    failed = httpx.post(url, json={"inputs": "fail"}, headers=cp.headers, timeout=60)
    assert failed.status_code == 500 and "KeyError" in failed.json()["error"]
    assert "Traceback" not in failed.text
    again = httpx.post(url, json={"inputs": "xy"}, headers=cp.headers, timeout=60)
    assert again.status_code == 200 and again.json()["reversed"] == "yx"


def test_fill_mask_qa_and_translation_answer_as_in_process(
    cp: ControlPlaneProcess, models: dict[str, Path], more: dict[str, str]
) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    masks = InferenceClient(model=more["fill"], token=cp.token).fill_mask("alice lives in [MASK] .", top_k=3)
    want = pipeline("fill-mask", model=str(models["mlm"]))("alice lives in [MASK] .", top_k=3)
    assert [m.token_str for m in masks] == [w["token_str"] for w in want]
    assert np.allclose([m.score for m in masks], [w["score"] for w in want], atol=TOL)

    context = "alice lives in paris and bob works in london"
    answer = InferenceClient(model=more["qa"], token=cp.token).question_answering(
        question="where does alice live", context=context
    )
    assert context[answer.start : answer.end] == answer.answer and 0.0 <= answer.score <= 1.0
    described = json.loads(cli(cp, "endpoints", "describe", "qa", "--json").stdout)
    assert described["model"]["task"] == "question-answering"

    text = "alice lives in paris"
    translated = InferenceClient(model=more["translate"], token=cp.token).translation(
        text, generate_parameters={"max_new_tokens": 5}
    )
    tokenizer = AutoTokenizer.from_pretrained(str(models["t5"]))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(models["t5"])).eval()
    with torch.no_grad():
        ids = model.generate(**tokenizer(text, return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert translated.translation_text == tokenizer.decode(ids[0], skip_special_tokens=True)


def test_segmentation_zero_shot_images_and_captions_answer_as_in_process(
    cp: ControlPlaneProcess, models: dict[str, Path], more: dict[str, str]
) -> None:
    import torch
    from huggingface_hub.inference._common import _b64_to_image
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel, pipeline

    png = image_bytes(40, 30, seed=8)
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    segments = InferenceClient(model=more["segment"], token=cp.token).image_segmentation(png)
    want = pipeline("image-segmentation", model=str(models["segformer"]))(picture)
    assert [s.label for s in segments] == [w["label"] for w in want]
    for got, expected in zip(segments, want, strict=True):
        mask = got.mask if not isinstance(got.mask, str) else _b64_to_image(got.mask)
        assert np.array_equal(np.asarray(mask.convert("L")), np.asarray(expected["mask"].convert("L")))

    labels = ["cat", "dog", "bird"]
    got = InferenceClient(model=more["clip"], token=cp.token).zero_shot_image_classification(
        png, candidate_labels=labels
    )
    ref = pipeline("zero-shot-image-classification", model=str(models["clip"]))(
        picture, candidate_labels=labels
    )
    same_scores(got, ref)

    caption = InferenceClient(model=more["caption"], token=cp.token).image_to_text(png)  # takes no parameters
    folder = str(models["captioner"])
    model = VisionEncoderDecoderModel.from_pretrained(folder).eval()
    pixels = AutoImageProcessor.from_pretrained(folder)(images=picture, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        ids = model.generate(pixel_values=pixels)  # the model's own generation defaults, as the client's call
    assert (
        caption.generated_text
        == AutoTokenizer.from_pretrained(folder).decode(ids[0], skip_special_tokens=True).strip()
    )
