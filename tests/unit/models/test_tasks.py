"""Which tasks a model folder serves, from its files alone; and the check of an asked task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelport.models.tasks import ModelTasks, TaskMismatch, canonical, detect_tasks, resolve_task


def folder(tmp_path: Path, config: dict[str, object] | None = None, **files: str) -> Path:
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    for name, text in files.items():
        (tmp_path / name.replace("__", ".")).write_text(text)
    return tmp_path


def c(arch: str, model_type: str, **extra: object) -> dict[str, object]:
    return {"architectures": [arch], "model_type": model_type, **extra}


EMBED = ("feature-extraction", "sentence-similarity")
SEQ2SEQ = ("text2text-generation", "summarization", "translation")
NLI = {"0": "contradiction", "1": "neutral", "2": "entailment"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (c("LlamaForCausalLM", "llama"), ("text-generation",)),
        (c("GPT2LMHeadModel", "gpt2"), ("text-generation",)),
        (c("BertForSequenceClassification", "bert", id2label={"0": "N", "1": "P"}), ("text-classification",)),
        (c("RobertaForSequenceClassification", "roberta", id2label=NLI),
         ("text-classification", "zero-shot-classification")),
        (c("BertForSequenceClassification", "bert", id2label={"0": "L"}),
         ("text-ranking", "text-classification")),
        (c("BertForTokenClassification", "bert"), ("token-classification",)),
        (c("BertForQuestionAnswering", "bert"), ("question-answering",)),
        (c("BertForMaskedLM", "bert"), ("fill-mask", *EMBED)),
        (c("BertModel", "bert"), EMBED),
        (c("T5ForConditionalGeneration", "t5"), SEQ2SEQ),
        (c("MarianMTModel", "marian"), ("translation", "text2text-generation")),
        (c("ViTForImageClassification", "vit"), ("image-classification",)),
        (c("CLIPModel", "clip"), ("zero-shot-image-classification",)),
        (c("DetrForObjectDetection", "detr"), ("object-detection",)),
        (c("SegformerForSemanticSegmentation", "segformer"), ("image-segmentation",)),
        (c("VisionEncoderDecoderModel", "vision-encoder-decoder"), ("image-to-text",)),
        (c("Wav2Vec2ForCTC", "wav2vec2"), ("automatic-speech-recognition",)),
        (c("WhisperForConditionalGeneration", "whisper"), ("automatic-speech-recognition",)),
        (c("Wav2Vec2ForSequenceClassification", "wav2vec2"), ("audio-classification",)),
        (c("ASTForAudioClassification", "audio-spectrogram-transformer"), ("audio-classification",)),
        (c("SomethingNew", "new-thing"), ()),
    ],
)  # fmt: skip
def test_tasks_from_the_config_head(
    tmp_path: Path, config: dict[str, object], expected: tuple[str, ...]
) -> None:
    assert detect_tasks(folder(tmp_path, config)).tasks == expected


def test_a_diffusers_pipeline_generates_images(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert detect_tasks(tmp_path).tasks == ("text-to-image",)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    assert detect_tasks(tmp_path).tasks == ()


def test_sentence_transformers_and_handler_and_card(tmp_path: Path) -> None:
    path = folder(tmp_path, {"architectures": ["BertModel"], "model_type": "bert"}, modules__json="[]")
    assert detect_tasks(path).tasks == ("feature-extraction", "sentence-similarity")
    (tmp_path / "handler.py").write_text("class EndpointHandler: ...\n")
    assert detect_tasks(path).tasks[0] == "custom"


def test_the_model_card_pipeline_tag_comes_first(tmp_path: Path) -> None:
    card = "---\nlicense: mit\npipeline_tag: zero-shot-classification\n---\n# model\n"
    config = {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}
    found = detect_tasks(folder(tmp_path, config, README__md=card))
    assert found.tasks == ("zero-shot-classification", "text-classification")
    assert found.evidence == "README.md pipeline_tag"


def test_resolve_checks_the_asked_task_and_names_the_alternatives() -> None:
    found = ModelTasks(("text-classification", "zero-shot-classification"), "config.json (X)")
    assert resolve_task(None, found, "m") == "text-classification"
    assert resolve_task("sentiment-analysis", found, "m") == "text-classification"
    assert resolve_task("zero-shot-classification", found, "m") == "zero-shot-classification"
    with pytest.raises(
        TaskMismatch, match=r"cannot serve 'image-classification'.*text-classification, zero-shot"
    ):
        resolve_task("image-classification", found, "m")
    with pytest.raises(TaskMismatch, match="does not serve the task 'video-generation'"):
        resolve_task("video-generation", found, "m")
    with pytest.raises(TaskMismatch, match="cannot tell which task"):
        resolve_task(None, ModelTasks((), "no config.json"), "m")


def test_aliases() -> None:
    assert canonical("NER") == "token-classification"
    assert canonical("sentence-embeddings") == "feature-extraction"
    assert canonical("rerank") == "text-ranking"
