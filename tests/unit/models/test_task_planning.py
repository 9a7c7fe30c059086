"""Planning task models that are not LLMs: diffusers pipelines, encoders and encoder-decoders.

Expected figures by hand from task_plan.py's model (a = activation bytes, 2 on a GPU):
- BERT-base classifier: one input of 512 positions takes 512 × (4 × 768 + 2 × 3072) × a
  = 9,437,184 B at 16 bits; a batch of 32, 301,989,888 B. No KV cache.
- Whisper-tiny: the encoder's 1500 × (4 × 384 + 2 × 1536) × 2 = 13,824,000 B plus the decoder's
  cache 2 × 4 × 384 × (448 + 1500) × 2 = 11,968,512 B: 25,792,512 B per input.
- SD-1.5: 1,066,233,000 parameters; per 512×512 image at 16 bits the guided latents
  2 × 4 × 64 × 64 × 4 = 131,072 B and 512 × 512 × 3 KiB × 2 = 1,610,612,736 B.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelport.models.architecture import Tower
from modelport.models.hardware import find_option, local_cpu_option
from modelport.models.inspect import SOURCE_SAFETENSORS, ModelInspectError, inspect_model
from modelport.models.planner import PlanRequest, check_fit, plan, plan_to_dict
from modelport.models.task_plan import DIFFUSION, ENCODER, LLM, SEQ2SEQ_KIND, TASK_GPU_OVERHEAD
from tests.support.model_headers import SMALL_LLAMA, llama_tensors, write_hub_folder
from tests.support.task_headers import (
    BERT_CLASSIFIER,
    SD_PARAMS,
    VIT_CLASSIFIER,
    WHISPER_TINY,
    write_diffusers,
    write_encoder,
)

SD_TOTAL = sum(SD_PARAMS.values())  # 1,066,233,000
IMAGE_512_16BIT = 131_072 + 1_610_612_736
T4 = find_option("nvidia-t4", "x1")  # no bf16: task weights load in fp16
L4 = find_option("nvidia-l4", "x1")
CPU = local_cpu_option(memory_bytes=24 * 2**30)


def test_a_diffusers_folder_is_the_sum_of_its_components(tmp_path: Path) -> None:
    total = write_diffusers(tmp_path)
    info = inspect_model(tmp_path)
    assert info.workload == DIFFUSION
    assert info.tasks == ("text-to-image",)
    assert info.parameter_source == SOURCE_SAFETENSORS
    assert {c.name: (c.class_name, c.parameters, c.bytes, c.scheme) for c in info.components} == {
        "unet": ("UNet2DConditionModel", 859_520_000, 859_520_000 * 4, "fp32"),
        "vae": ("AutoencoderKL", 83_653_000, 83_653_000 * 4, "fp32"),
        "text_encoder": ("CLIPTextModel", 123_060_000, 123_060_000 * 4, "fp32"),
    }  # the unet's fp16 variant file beside the plain one is not counted
    assert info.parameters.total == SD_TOTAL and info.checkpoint_bytes == total == SD_TOTAL * 4
    assert info.checkpoint_scheme == "fp32"
    assert info.diffusion is not None
    assert (info.diffusion.native_side, info.diffusion.vae_scale, info.diffusion.latent_channels) == (
        512,
        8,
        4,
    )


def test_variant_only_and_pickle_only_components_are_said(tmp_path: Path) -> None:
    write_diffusers(tmp_path)
    unet = tmp_path / "unet"
    (unet / "diffusion_pytorch_model.safetensors").unlink()  # only the fp16 variant remains
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").rename(tmp_path / "vae" / "model.bin")
    info = inspect_model(tmp_path)
    parts = {c.name: c for c in info.components}
    assert set(parts) == {"unet", "text_encoder"}
    assert parts["unet"].scheme == "fp16" and parts["unet"].parameters == 1000
    assert any(n.startswith("unet: only fp16 variant weights") for n in info.notes)
    assert "vae: only pickle weights (model.bin), not counted" in info.notes


def test_a_diffusers_folder_without_weights_cannot_be_planned(tmp_path: Path) -> None:
    tmp_path.joinpath("model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelInspectError, match="names no component with safetensors weights"):
        inspect_model(tmp_path)


def test_a_diffusion_pipeline_fits_on_weights_plus_one_image(tmp_path: Path) -> None:
    write_diffusers(tmp_path)
    info = inspect_model(tmp_path)
    fit = check_fit(info, T4, PlanRequest())
    assert fit.fits and fit.workload == DIFFUSION and fit.batch == 1
    assert fit.memory.weights == SD_TOTAL * 2  # loaded in fp16 on a GPU
    assert fit.memory.overhead == TASK_GPU_OVERHEAD
    assert fit.memory.kv_per_sequence == IMAGE_512_16BIT
    assert fit.max_sequences == (fit.memory.usable - SD_TOTAL * 2 - TASK_GPU_OVERHEAD) // IMAGE_512_16BIT
    assert fit.vllm_flags == [] and fit.builtin_flags == [] and fit.throughput is None
    assert fit.reason.startswith("a batch of 1 × 512×512 images takes 1.6 GB")
    # the CPU runs a pipeline in fp32: the checkpoint's own bytes, 4 activation bytes per element
    on_cpu = check_fit(info, CPU, PlanRequest())
    assert on_cpu.memory.weights == SD_TOTAL * 4
    assert on_cpu.memory.kv_per_sequence == 131_072 + 512 * 512 * 3072 * 4


def test_the_image_size_is_the_pipelines_own_unless_asked(tmp_path: Path) -> None:
    write_diffusers(tmp_path, sample_size=128)  # an SDXL-sized unet: 1024×1024 by default
    info = inspect_model(tmp_path)
    fit = check_fit(info, L4, PlanRequest())
    assert fit.memory.kv_per_sequence == 2 * 4 * 128 * 128 * 4 + 1024 * 1024 * 3072 * 2
    huge = check_fit(info, T4, PlanRequest(resolution=(2048, 2048)))
    assert not huge.fits
    assert huge.reason.startswith("no room for a batch of 1 × 2048×2048 images: ")
    assert huge.reason.endswith("on 1× T4 16GB")  # no --max-batch advice: images are drawn one at a time


def test_an_encoder_classifier_has_no_kv_cache_and_no_context_flags(tmp_path: Path) -> None:
    write_encoder(tmp_path, BERT_CLASSIFIER, 110_000_000)
    info = inspect_model(tmp_path)
    assert info.workload == ENCODER and info.tasks == ("text-classification",)
    assert info.towers == (Tower("text", 12, 768, 3072, 512),)
    assert not any("Llama-shaped" in n for n in info.notes)  # counted from the headers, no formula
    fit = check_fit(info, L4, PlanRequest(concurrency=64))
    assert fit.fits and fit.batch == 32 and fit.context == 512
    assert fit.memory.weights == 220_000_000 and fit.memory.kv_per_sequence == 9_437_184
    assert fit.reason.startswith("a batch of 32 × 512-position inputs takes 302 MB (9 MB each)")
    assert fit.vllm_flags == [] and fit.builtin_flags == []
    assert "weights loaded as bf16" in fit.notes
    on_cpu = check_fit(info, CPU, PlanRequest(batch=8))
    assert on_cpu.batch == 8 and on_cpu.memory.weights == 440_000_000  # the checkpoint's fp32
    assert on_cpu.memory.kv_per_sequence == 2 * 9_437_184


def test_fill_mask_adds_the_vocabulary_logits(tmp_path: Path) -> None:
    write_encoder(tmp_path, {**BERT_CLASSIFIER, "architectures": ["BertForMaskedLM"]}, 110_000_000)
    info = inspect_model(tmp_path)
    assert info.tasks[0] == "fill-mask" and info.workload == ENCODER
    assert check_fit(info, L4, PlanRequest()).memory.kv_per_sequence == 9_437_184 + 512 * 30522 * 2


def test_a_vit_without_vocabulary_or_positions_is_planned_on_its_patches(tmp_path: Path) -> None:
    write_encoder(tmp_path, VIT_CLASSIFIER, 86_000_000)
    info = inspect_model(tmp_path)  # no vocab_size: an LLM's facts cannot be read from it
    assert info.workload == ENCODER and info.tasks == ("image-classification",)
    assert info.towers == (Tower("vision", 12, 768, 3072, 197),)
    assert check_fit(info, L4, PlanRequest()).memory.kv_per_sequence == 197 * 9216 * 2


def test_a_task_model_without_weights_or_formula_is_not_planned(tmp_path: Path) -> None:
    tmp_path.joinpath("config.json").write_text(json.dumps(VIT_CLASSIFIER))
    tmp_path.joinpath("pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelInspectError, match="pull its safetensors weights"):
        inspect_model(tmp_path)


def test_whisper_gets_the_encoders_activations_and_a_decoder_cache(tmp_path: Path) -> None:
    write_encoder(tmp_path, WHISPER_TINY, 37_760_000)
    info = inspect_model(tmp_path)
    assert info.workload == SEQ2SEQ_KIND and info.tasks == ("automatic-speech-recognition",)
    assert [t.name for t in info.towers] == ["encoder", "decoder"]
    fit = check_fit(info, L4, PlanRequest())
    assert fit.memory.kv_per_sequence == 13_824_000 + 11_968_512
    assert fit.reason.startswith("a batch of 32 × 1,500-position inputs with 448-token answers")


def test_an_encoder_whose_batch_does_not_fit_says_which_batch_does(tmp_path: Path) -> None:
    big = {
        **BERT_CLASSIFIER,
        "model_type": "xlm-roberta",
        "architectures": ["XLMRobertaForSequenceClassification"],
        "hidden_size": 4096,
        "intermediate_size": 16384,
        "max_position_embeddings": 16384,  # planned at 8,192
    }
    write_encoder(tmp_path, big, 1_000_000_000)
    info = inspect_model(tmp_path)
    fit = check_fit(info, T4, PlanRequest())
    item = 8192 * (4 * 4096 + 2 * 16384) * 2
    most = (fit.memory.usable - 2_000_000_000 - TASK_GPU_OVERHEAD) // item
    assert fit.context == 8192 and fit.memory.kv_per_sequence == item and fit.max_sequences == most == 14
    assert not fit.fits
    assert fit.reason.startswith("no room for a batch of 32 × 8,192-position inputs: 11.4 GB left after")
    assert fit.reason.endswith("; it holds a batch of 14 (add --max-batch 14 to the model's args)")
    assert check_fit(info, T4, PlanRequest(batch=14)).fits


def test_weights_too_big_for_the_device_read_as_an_llms(tmp_path: Path) -> None:
    write_encoder(tmp_path, BERT_CLASSIFIER, 8_000_000_000)
    fit = check_fit(inspect_model(tmp_path), T4, PlanRequest())
    assert not fit.fits and fit.reason == "weights 16.0 GB + overhead 1.1 GB > 14.5 GB usable on 1× T4 16GB"
    assert fit.summary == "needs 17.1 GB > 14.5 GB"


def test_a_plan_of_a_task_model_has_no_context_to_cap_and_lists_its_parts(tmp_path: Path) -> None:
    write_encoder(tmp_path, BERT_CLASSIFIER, 110_000_000)
    result = plan(inspect_model(tmp_path), PlanRequest(context=100_000), [T4, L4, CPU])
    assert result.context == 512 and result.kv_bytes_per_token == 0
    assert not any("capped" in n for n in result.notes)
    assert "encoder models have no context or KV cache to plan: sized for a batch instead" in result.notes
    assert result.cheapest is not None and result.cheapest.option.is_cpu
    data = plan_to_dict(result)
    assert data["workload"] == ENCODER and data["tasks"] == ["text-classification"]
    assert data["towers"] == [{"name": "text", "layers": 12, "hidden_size": 768, "positions": 512}]
    assert data["batch"] == {"size": 32, "item": "512-position inputs", "bytes_per_item": 18_874_368}
    assert data["rows"][0]["workload"] == ENCODER and data["rows"][0]["batch"] == 32


def test_llms_and_models_of_no_known_task_are_still_planned_as_llms(tmp_path: Path) -> None:
    write_hub_folder(tmp_path / "llama", SMALL_LLAMA, llama_tensors(SMALL_LLAMA))
    llama = inspect_model(tmp_path / "llama")
    assert llama.tasks == ("text-generation",) and llama.workload == LLM and llama.towers == ()
    fit = check_fit(llama, CPU, PlanRequest(context=1024))
    assert fit.builtin_flags[:2] == ["--max-model-len", "1024"]
    unknown = {k: v for k, v in SMALL_LLAMA.items() if k != "architectures"}
    unknown["model_type"] = "somethingnew"
    write_hub_folder(tmp_path / "unknown", unknown, llama_tensors(SMALL_LLAMA))
    assert inspect_model(tmp_path / "unknown").workload == LLM


def test_a_custom_handler_over_a_classifier_is_planned_as_the_classifier(tmp_path: Path) -> None:
    write_encoder(tmp_path, BERT_CLASSIFIER, 110_000_000)
    tmp_path.joinpath("handler.py").write_text("class EndpointHandler: ...\n")
    info = inspect_model(tmp_path)
    assert info.tasks == ("custom", "text-classification") and info.workload == ENCODER


def test_a_config_without_transformer_sizes_gets_a_flat_allowance_per_input(tmp_path: Path) -> None:
    segformer = {"architectures": ["SegformerForSemanticSegmentation"], "model_type": "segformer"}
    write_encoder(tmp_path, {**segformer, "hidden_sizes": [32, 64, 160, 256]}, 3_700_000)
    info = inspect_model(tmp_path)
    assert info.workload == ENCODER and info.towers == ()
    fit = check_fit(info, L4, PlanRequest())
    assert fit.fits and fit.memory.kv_per_sequence == 32 * 2**20
    assert fit.reason.startswith("a batch of 32 × inputs of unknown size takes 1.1 GB")
