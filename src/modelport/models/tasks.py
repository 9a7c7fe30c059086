"""Which Hub tasks a model folder can serve, found from its files alone.

Order of evidence: a custom `handler.py` (the managed convention), diffusers' `model_index.json`,
a sentence-transformers `modules.json`, the model card's `pipeline_tag` (README front matter, as
the Hub reads it), then `config.json`'s `architectures` and `model_type`. The first task of the
answer is the default; the rest are the other tasks the same weights serve (an NLI classifier
also serves zero-shot classification). Pure reads, no imports of torch or transformers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Names clients and the Hub use for the same task.
ALIASES = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "sentence-embeddings": "feature-extraction",
    "rerank": "text-ranking",
    "reranking": "text-ranking",
    "text-to-audio": "text-to-speech",
    "conversational": "text-generation",
    "asr": "automatic-speech-recognition",
}
EMBEDDING = ("feature-extraction", "sentence-similarity")
SEQ2SEQ = ("text2text-generation", "summarization", "translation")
GENERATION = "text-generation"
# Tasks whose answers are generated tokens (the gateway allows output tokens for them)
GENERATING = frozenset({GENERATION, *SEQ2SEQ})
# Every task modelport's builtin image serves
SERVED = frozenset(
    {
        GENERATION,
        *EMBEDDING,
        *SEQ2SEQ,
        "text-classification",
        "token-classification",
        "fill-mask",
        "zero-shot-classification",
        "question-answering",
        "text-ranking",
        "image-classification",
        "zero-shot-image-classification",
        "object-detection",
        "image-segmentation",
        "image-to-text",
        "automatic-speech-recognition",
        "audio-classification",
        "text-to-image",
        "custom",
    }
)

_SEQ2SEQ_TYPES = {"t5", "mt5", "bart", "mbart", "pegasus", "marian", "m2m_100", "nllb", "longt5", "umt5"}
_PLAIN_ENCODERS = {"bert", "roberta", "xlm-roberta", "mpnet", "nomic_bert", "distilbert", "modernbert",
                   "new", "gte"}  # fmt: skip
_AUDIO_ENCODERS = {"wav2vec2", "hubert", "wavlm", "whisper", "data2vec-audio", "unispeech", "unispeech-sat",
                   "sew", "sew-d", "wav2vec2-conformer", "audio-spectrogram-transformer"}  # fmt: skip
_NLI_LABELS = {"entailment", "contradiction"}
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---", re.S)
_PIPELINE_TAG = re.compile(r"^pipeline_tag:\s*['\"]?([a-z0-9-]+)['\"]?\s*$", re.M)


@dataclass(frozen=True)
class ModelTasks:
    tasks: tuple[str, ...]  # what the folder can serve; the first is the default
    evidence: str  # where that came from, for messages

    @property
    def default(self) -> str | None:
        return self.tasks[0] if self.tasks else None


class TaskMismatch(ValueError):
    """The task asked for is not one this model serves; the message names the ones it does."""


def canonical(task: str) -> str:
    return ALIASES.get(task.strip().lower(), task.strip().lower())


def detect_tasks(folder: Path) -> ModelTasks:
    if (folder / "handler.py").is_file():
        inner = detect_tasks_without_handler(folder)
        return ModelTasks(("custom", *inner.tasks), "handler.py")
    return detect_tasks_without_handler(folder)


def detect_tasks_without_handler(folder: Path) -> ModelTasks:
    index = _read_json(folder / "model_index.json")
    if index is not None:
        name = str(index.get("_class_name", ""))
        if name.endswith("Pipeline") and ("Img2Img" not in name and "Inpaint" not in name):
            return ModelTasks(("text-to-image",), f"model_index.json ({name})")
        return ModelTasks((), f"model_index.json ({name or 'no _class_name'})")
    if (folder / "modules.json").is_file():
        return ModelTasks(EMBEDDING, "modules.json (sentence-transformers)")
    config = _read_json(folder / "config.json")
    card = _card_tag(folder / "README.md")
    from_config = tasks_from_config(config) if config is not None else ()
    if card and card in SERVED:
        rest = tuple(t for t in from_config if t != card)
        return ModelTasks((card, *rest), "README.md pipeline_tag")
    if config is None:
        return ModelTasks((), "no config.json")
    archs = ", ".join(config.get("architectures") or []) or f"model_type {config.get('model_type')!r}"
    return ModelTasks(from_config, f"config.json ({archs})")


def tasks_from_config(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The tasks a transformers config's head serves."""
    archs = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", ""))
    found: list[str] = []
    for arch in archs:
        for task in _tasks_of_architecture(arch, model_type, config):
            if task not in found:
                found.append(task)
    if not found and model_type in _PLAIN_ENCODERS:
        found.extend(EMBEDDING)
    return tuple(found)


def _tasks_of_architecture(arch: str, model_type: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    if arch.endswith(("ForCausalLM", "LMHeadModel")) and model_type not in _SEQ2SEQ_TYPES:
        return (GENERATION,)
    if (
        arch.endswith(("ForSequenceClassification", "ForAudioClassification"))
        and model_type in _AUDIO_ENCODERS
    ):
        return ("audio-classification",)
    if arch.endswith("ForSequenceClassification"):
        labels = {str(v).lower() for v in (config.get("id2label") or {}).values()}
        if int(config.get("num_labels", len(labels) or 2)) == 1 or len(labels) == 1:
            return ("text-ranking", "text-classification")
        if labels >= _NLI_LABELS:
            return ("text-classification", "zero-shot-classification")
        return ("text-classification",)
    if arch.endswith("ForTokenClassification"):
        return ("token-classification",)
    if arch.endswith("ForQuestionAnswering"):
        return ("question-answering",)
    if arch.endswith("ForMaskedLM"):
        return ("fill-mask", *EMBEDDING) if model_type in _PLAIN_ENCODERS else ("fill-mask",)
    if arch.endswith("ForImageClassification"):
        return ("image-classification",)
    if arch in {"CLIPModel", "SiglipModel", "Siglip2Model", "AltCLIPModel", "ChineseCLIPModel"}:
        return ("zero-shot-image-classification",)
    if arch.endswith("ForObjectDetection"):
        return ("object-detection",)
    if arch.endswith(("ForSemanticSegmentation", "ForUniversalSegmentation", "ForInstanceSegmentation",
                      "ForPanopticSegmentation")):  # fmt: skip
        return ("image-segmentation",)
    if arch == "VisionEncoderDecoderModel" or model_type in {"blip", "git", "pix2struct"}:
        return ("image-to-text",)
    if arch.endswith(("ForCTC", "ForSpeechSeq2Seq")) or model_type in {"whisper", "speech_to_text"}:
        return ("automatic-speech-recognition",)
    if arch.endswith("ForAudioClassification"):
        return ("audio-classification",)
    if arch.endswith(("ForTextToSpeech", "ForTextToWaveform")) or model_type in {"vits", "musicgen"}:
        return ("text-to-speech",)
    if model_type in _SEQ2SEQ_TYPES or arch.endswith("ForConditionalGeneration"):
        if model_type == "marian" or model_type in {"m2m_100", "nllb"}:
            return ("translation", "text2text-generation")
        if model_type in _SEQ2SEQ_TYPES:
            return ("text2text-generation", "summarization", "translation")
    if arch.endswith("Model") and model_type in _PLAIN_ENCODERS:
        return EMBEDDING
    return ()


def resolve_task(requested: str | None, found: ModelTasks, model: str) -> str:
    """The task to serve: the one asked for, checked against what the model serves, or the default."""
    if requested:
        task = canonical(requested)
        if task not in SERVED:
            raise TaskMismatch(
                f"modelport does not serve the task {requested!r}; it serves {', '.join(sorted(SERVED))}"
            )
        if not found.tasks or task in found.tasks:
            return task  # a folder nothing was learned from is given the benefit of the doubt
        raise TaskMismatch(
            f"{model} cannot serve {task!r}: from {found.evidence} it serves {', '.join(found.tasks)}; "
            "create the endpoint with one of those tasks, or leave the task out to take the first"
        )
    if found.default is not None and found.default not in SERVED:
        raise TaskMismatch(
            f"{model} is a {found.default} model (from {found.evidence}), a task modelport does not serve yet"
        )
    if found.default is None:
        raise TaskMismatch(
            f"cannot tell which task {model} serves (from {found.evidence}); set the endpoint's task "
            f"(model.task), one of {', '.join(sorted(SERVED))}"
        )
    return found.default


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _card_tag(path: Path) -> str | None:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        return None
    front = _FRONT_MATTER.match(head)
    tag = _PIPELINE_TAG.search(front.group(1)) if front else None
    return canonical(tag.group(1)) if tag else None
