"""The text-to-image runner on a tiny random-weight Stable Diffusion folder, through a real
Batcher: its PNG decodes to the pixels an in-process diffusers call with the same seed draws,
concurrent requests each get their own image, and bad requests are 400s that say why."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import LoadOptions, Prepared, TaskOutput, TaskRequest
from modelport.pipelines.batcher import Batcher
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.registry import load_runner
from modelport.pipelines.runners import diffusion
from tests.support.task_models_diffusion import add_safety_checker, build_tiny_sd

STEPS = 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def runner(folder: Path) -> diffusion.DiffusionRunner:
    loaded = load_runner(folder, "text-to-image", LoadOptions())
    assert isinstance(loaded, diffusion.DiffusionRunner)
    loaded.warmup()
    return loaded


@pytest.fixture(scope="module")
def reference(folder: Path) -> Any:
    """The same folder loaded the plain diffusers way, in this process."""
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _direct(pipe: Any, prompt: str, seed: int, **kwargs: Any) -> np.ndarray[Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    image = pipe(prompt, generator=generator, num_inference_steps=STEPS, **kwargs).images[0]
    return np.asarray(image)


def _pixels(output: TaskOutput) -> np.ndarray[Any, Any]:
    from PIL import Image

    assert output.media_type == "image/png"
    assert isinstance(output.body, bytes)
    with Image.open(io.BytesIO(output.body)) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def _serve(runner: diffusion.DiffusionRunner, requests: list[TaskRequest]) -> list[TaskOutput]:
    """The requests at once through a real Batcher, as the server submits them."""

    async def go() -> list[TaskOutput]:
        batcher: Batcher[Any, TaskOutput] = Batcher(
            runner.run_batch, name="text-to-image", wait_s=0.05, hold_first=True
        )
        batcher.start()
        try:
            prepared = [runner.prepare(r) for r in requests]
            return list(await asyncio.gather(*(batcher.submit(p, p.key, p.size) for p in prepared)))
        finally:
            batcher.shutdown()

    return asyncio.run(go())


def test_the_png_is_the_image_diffusers_draws_with_the_same_seed(
    runner: diffusion.DiffusionRunner, reference: Any
) -> None:
    params = {"seed": 1234, "num_inference_steps": STEPS, "width": 48, "height": 32, "guidance_scale": 6.0}
    (out,) = _serve(runner, [TaskRequest("a red cat", params)])
    got = _pixels(out)
    assert got.shape == (32, 48, 3)
    assert out.units == {"images": 1}
    want = _direct(reference, "a red cat", 1234, width=48, height=32, guidance_scale=6.0)
    assert np.array_equal(got, want)


def test_concurrent_requests_with_different_seeds_get_their_own_images(
    runner: diffusion.DiffusionRunner, reference: Any
) -> None:
    requests = [
        TaskRequest("a cat", {"seed": 7, "num_inference_steps": STEPS}),
        TaskRequest("a cat", {"seed": 8, "num_inference_steps": STEPS}),
        TaskRequest("a dog", {"seed": 7, "num_inference_steps": STEPS, "negative_prompt": "red"}),
    ]
    outs = [_pixels(o) for o in _serve(runner, requests)]
    assert not np.array_equal(outs[0], outs[1])  # the seed is the request's own
    assert np.array_equal(outs[0], _direct(reference, "a cat", 7))
    assert np.array_equal(outs[1], _direct(reference, "a cat", 8))
    assert np.array_equal(outs[2], _direct(reference, "a dog", 7, negative_prompt="red"))


def test_one_side_takes_the_default_for_the_other(runner: diffusion.DiffusionRunner, reference: Any) -> None:
    # diffusers resets both sides to its default when one is missing; the runner keeps the one sent
    (out,) = _serve(runner, [TaskRequest("a cat", {"seed": 3, "num_inference_steps": STEPS, "width": 64})])
    got = _pixels(out)
    assert got.shape == (32, 64, 3)
    assert np.array_equal(got, _direct(reference, "a cat", 3, width=64, height=32))


def test_target_size_and_scheduler(runner: diffusion.DiffusionRunner, reference: Any) -> None:
    from diffusers import EulerDiscreteScheduler

    params = {
        "seed": 5,
        "num_inference_steps": STEPS,
        "target_size": {"width": 40, "height": 24},
        "scheduler": "EulerDiscreteScheduler",
    }
    (out,) = _serve(runner, [TaskRequest("a dog", params)])
    default = reference.scheduler
    reference.scheduler = EulerDiscreteScheduler.from_config(default.config)
    try:
        want = _direct(reference, "a dog", 5, width=40, height=24)
    finally:
        reference.scheduler = default
    assert np.array_equal(_pixels(out), want)
    # the swap is undone: the next default request draws with the folder's own scheduler
    (again,) = _serve(runner, [TaskRequest("a dog", {"seed": 5, "num_inference_steps": STEPS})])
    assert np.array_equal(_pixels(again), _direct(reference, "a dog", 5))


@pytest.mark.parametrize(
    ("inputs", "parameters", "param", "says"),
    [
        ("a cat", {"strength": 0.5}, "parameters.strength", "not supported"),
        ("a cat", {"width": 4096}, "parameters.width", "from 8 to 2048"),
        ("a cat", {"height": 36}, "parameters.height", "multiple of 8"),
        ("a cat", {"num_inference_steps": 151}, "parameters.num_inference_steps", "from 1 to 150"),
        ("a cat", {"guidance_scale": float("nan")}, "parameters.guidance_scale", "number"),
        ("a cat", {"seed": -1}, "parameters.seed", "integer"),
        ("a cat", {"scheduler": "NoSuchScheduler"}, "parameters.scheduler", "must be one of"),
        ("a cat", {"target_size": {"width": 64}}, "parameters.target_size", "width` and `height"),
        (
            "a cat",
            {"target_size": {"width": 64, "height": 32}, "width": 32},
            "parameters.target_size",
            "disagree",
        ),
        ("a cat", [1, 2], "parameters", "JSON object"),
        (None, {}, "inputs", "prompt"),
        ("", {}, "inputs", "prompt"),
        ("   ", {}, "inputs", "prompt"),
        (["a cat", "a dog"], {}, "inputs", "prompt"),
        (b"\x89PNG", {}, "inputs", "prompt"),
    ],
)
def test_bad_requests_are_400s_that_say_why(
    runner: diffusion.DiffusionRunner, inputs: Any, parameters: Any, param: str, says: str
) -> None:
    with pytest.raises(TaskInputError) as err:
        runner.prepare(TaskRequest(inputs, parameters))
    assert err.value.status == 400
    assert err.value.param == param
    assert says in str(err.value)


def test_a_failing_request_fails_alone(runner: diffusion.DiffusionRunner) -> None:
    good = runner.prepare(TaskRequest("a cat", {"seed": 1, "num_inference_steps": 1}))
    # a job the checks would refuse, slipped past them: the pipeline raises on this one only
    bad = diffusion.ImageJob(prompt="a cat", seed=1, height=12, width=12, num_inference_steps=1)
    results = runner.run_batch([good, Prepared(payload=bad, parameters={}, key="x")])
    assert isinstance(results[0], TaskOutput)
    assert isinstance(results[1], ValueError)


def test_openai_images_body_maps_to_one_request_per_image(
    runner: diffusion.DiffusionRunner, reference: Any
) -> None:
    body = {"prompt": "a cat", "n": 2, "size": "48x32", "seed": 10, "response_format": "b64_json"}
    requests = diffusion.openai_image_requests({**body, "num_inference_steps": STEPS})
    assert [r.parameters["seed"] for r in requests] == [10, 11]
    outs = _serve(runner, requests)
    answer = diffusion.openai_images_response([o.body for o in outs], created=1)
    assert json.loads(json.dumps(answer))["created"] == 1
    for i, item in enumerate(answer["data"]):
        png = base64.b64decode(item["b64_json"])
        want = _direct(reference, "a cat", 10 + i, width=48, height=32)
        assert np.array_equal(_pixels(TaskOutput(body=png, media_type="image/png")), want)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "a cat", "response_format": "url"}, "response_format"),
        ({"prompt": "a cat", "n": 11}, "n"),
        ({"prompt": "a cat", "n": 0}, "n"),
        ({"prompt": "a cat", "size": "big"}, "size"),
        ({"prompt": "a cat", "quality": "hd"}, "quality"),
        ({"prompt": ""}, "prompt"),
        ({"n": 1}, "prompt"),
    ],
)
def test_openai_bodies_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TaskInputError) as err:
        diffusion.openai_image_requests(body)
    assert err.value.param == param
    assert err.value.status == 400


def test_openai_size_is_checked_by_the_runner(runner: diffusion.DiffusionRunner) -> None:
    (request,) = diffusion.openai_image_requests({"prompt": "a cat", "size": "4096x4096"})
    with pytest.raises(TaskInputError, match="2048"):
        runner.prepare(request)


def test_a_folder_without_model_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model_index\.json"):
        diffusion.load(tmp_path, "text-to-image", LoadOptions())


def test_component_code_in_the_folder_needs_trust(folder: Path, tmp_path: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["my_scheduler", "MyScheduler"]
    custom = tmp_path / "custom"
    (custom / "scheduler").mkdir(parents=True)
    (custom / "scheduler" / "my_scheduler.py").write_text("raise SystemExit('must not run')\n")
    (custom / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="--trust-remote-code"):
        diffusion.load(custom, "text-to-image", LoadOptions())


def test_pickle_only_components_are_refused(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "pickled"
    shutil.copytree(folder, copy)
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(copy / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        diffusion.load(copy, "text-to-image", LoadOptions())


def test_a_safety_checker_in_the_folder_runs_and_an_absent_one_is_none(folder: Path, tmp_path: Path) -> None:
    import shutil

    checked = add_safety_checker(shutil.copytree(folder, tmp_path / "checked"))
    runner = diffusion.load(checked, "text-to-image", LoadOptions())
    assert type(runner.pipe.safety_checker).__name__ == "StableDiffusionSafetyChecker"
    (out,) = runner.run_batch([runner.prepare(TaskRequest("a cat", {"seed": 1, "num_inference_steps": 1}))])
    assert isinstance(out, TaskOutput)
    _pixels(out)
    # declared in model_index.json but not in the folder (not pulled): loaded without one
    shutil.rmtree(checked / "safety_checker")
    shutil.rmtree(checked / "feature_extractor")
    runner = diffusion.load(checked, "text-to-image", LoadOptions())
    assert runner.pipe.safety_checker is None


def test_without_diffusers_the_error_says_what_to_install(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "diffusers", None)  # what `import diffusers` sees when absent
    with pytest.raises(ModelLoadError, match=r"pip install 'modelport\[diffusion\]'"):
        diffusion.load(folder, "text-to-image", LoadOptions())
