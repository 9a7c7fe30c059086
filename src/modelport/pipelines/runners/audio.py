"""Audio tasks: speech recognition (CTC models such as wav2vec2, and Whisper-like seq2seq) and
audio classification; plus `transcription_request` / `transcription` for the server's OpenAI
/v1/audio/transcriptions route.

Inputs are audio files (WAV, FLAC, OGG, MP3...): a raw upload, base64 in JSON, or a JSON list of
those. `prepare` decodes each to mono float32 at the feature extractor's rate (media.decode_audio)
and meters {"audio_seconds": s}. `run_batch` runs the transformers pipeline over the batch, with
padding and the attention mask, so a clip's answer does not depend on its batch neighbours. Clips
longer than the model's window (30 s) are transcribed in overlapping 30 s chunks (the pipeline's
chunking), in batches of their own. text-to-speech is not served here: no tiny open TTS family
loads from a folder without extra packages (SpeechT5 also needs a vocoder and speaker embeddings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import audio_seconds, decode_audio
from modelport.pipelines.params import Rule, boolean
from modelport.pipelines.runners.audio_ctc import CtcTranscriber
from modelport.pipelines.runners.media_common import (
    CLASSIFY_RULES,
    MediaPipelineRunner,
    from_folder,
    generation_object,
    load_model,
)

AUDIO: frozenset[InputKind] = frozenset({"audio"})
CHUNK_SECONDS = 30.0  # Whisper's window; longer clips are transcribed in chunks


def min_samples(config: Any) -> int:
    """The shortest clip a convolutional feature encoder (wav2vec2, HuBERT, WavLM) takes: its
    receptive field. Shorter clips make the convolution fail, so they are a 400 up front."""
    kernels = getattr(config, "conv_kernel", None)
    strides = getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return 1
    field = 1
    for kernel, stride in zip(reversed(kernels), reversed(strides), strict=False):
        field = (field - 1) * stride + kernel
    return int(field)


class AudioRunner(MediaPipelineRunner):
    what = "audio file"
    accepts = AUDIO

    def __init__(self, pipe: Any, rate: int, shortest: int) -> None:
        super().__init__(pipe)
        self.rate = rate
        self.shortest = shortest

    def decode(self, data: bytes) -> Any:
        samples = decode_audio(data, self.rate)
        if len(samples) < self.shortest:
            raise TaskInputError(
                f"the audio is {len(samples) / self.rate * 1000:.1f} ms long: this model needs at least "
                f"{self.shortest / self.rate * 1000:.1f} ms ({self.shortest} samples at {self.rate} Hz)"
            )
        return samples

    def measure(self, decoded: Sequence[Any]) -> tuple[int, dict[str, float]]:
        seconds = sum(audio_seconds(s, self.rate) for s in decoded)
        return max(len(s) for s in decoded), {"audio_seconds": round(seconds, 3)}

    def warmup(self) -> None:
        import numpy as np

        clip = np.zeros(max(self.rate // 2, self.shortest), dtype=np.float32)
        self.run_inputs([clip], {name: rule.default for name, rule in self.rules.items()})


class AudioClassificationRunner(AudioRunner):
    """Answers [{"label", "score"}] sorted by score (InferenceClient.audio_classification)."""

    task = "audio-classification"
    rules = CLASSIFY_RULES

    def shape(self, answer: Any, source: Any) -> Any:
        return [{"label": str(a["label"]), "score": float(a["score"])} for a in answer]


class SpeechRecognitionRunner(AudioRunner):
    """Answers {"text"} (+ "chunks": [{"text", "timestamp": [start, end]}] when return_timestamps)
    as InferenceClient.automatic_speech_recognition parses it."""

    task = "automatic-speech-recognition"

    def __init__(
        self, pipe: Any, rate: int, shortest: int, kind: str, max_new_tokens: int, ctc: CtcTranscriber | None
    ) -> None:
        super().__init__(pipe, rate, shortest)
        self.kind = kind  # the pipeline's: ctc | ctc_with_lm | seq2seq | seq2seq_whisper
        self.ctc = ctc  # CTC clips that fit one window skip the pipeline (see audio_ctc)
        self.rules: Mapping[str, Rule] = {
            "return_timestamps": Rule(boolean, False),
            "generation_parameters": Rule(generation_object(self.task, max_new_tokens)),
        }

    @property
    def generates(self) -> bool:
        return self.kind.startswith("seq2seq")

    def check(self, params: dict[str, Any]) -> None:
        if params["generation_parameters"] and not self.generates:
            raise TaskInputError(
                "`parameters.generation_parameters` does not apply: this is a CTC model, it reads the "
                "transcript off in one pass instead of generating it",
                param="parameters.generation_parameters",
            )
        if params["return_timestamps"] and self.kind == "seq2seq":
            raise TaskInputError(
                "`parameters.return_timestamps` is not supported by this model (CTC and Whisper models give "
                "timestamps)",
                param="parameters.return_timestamps",
            )

    def prepare(self, request: TaskRequest) -> Prepared:
        prepared = super().prepare(request)
        chunked = prepared.size > CHUNK_SECONDS * self.rate
        return dataclasses.replace(
            prepared,
            parameters={**prepared.parameters, "chunked": chunked},
            key=(prepared.key, chunked),
        )

    def call_kwargs(self, params: Mapping[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if params.get("return_timestamps"):
            kwargs["return_timestamps"] = True if self.kind == "seq2seq_whisper" else "word"
        if params.get("generation_parameters"):
            kwargs["generate_kwargs"] = dict(params["generation_parameters"])
        if params.get("chunked"):
            kwargs["chunk_length_s"] = CHUNK_SECONDS
        return kwargs

    def run_inputs(self, inputs: list[Any], params: Mapping[str, Any]) -> list[Any]:
        if self.ctc is not None and not params.get("chunked"):
            return self.ctc(inputs, bool(params.get("return_timestamps")))
        return super().run_inputs(inputs, params)

    def shape(self, answer: Any, source: Any) -> Any:
        body: dict[str, Any] = {"text": str(answer["text"]).strip()}
        if "chunks" in answer:
            end_of_clip = audio_seconds(source, self.rate)
            body["chunks"] = [
                {
                    "text": str(c["text"]).strip(),
                    "timestamp": [
                        float(c["timestamp"][0] if c["timestamp"][0] is not None else 0.0),
                        float(c["timestamp"][1] if c["timestamp"][1] is not None else end_of_clip),
                    ],
                }
                for c in answer["chunks"]
            ]
        return body


def _speech_recognition(path: Path, options: LoadOptions) -> TaskRunner:
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoModelForCTC,
        AutoModelForSpeechSeq2Seq,
        AutoTokenizer,
        pipeline,
    )

    config = AutoConfig.from_pretrained(
        path, local_files_only=True, trust_remote_code=options.trust_remote_code
    )
    ctc = any(str(a).endswith("ForCTC") for a in (config.architectures or []))
    loaded = load_model(path, options, AutoModelForCTC if ctc else AutoModelForSpeechSeq2Seq)
    features = from_folder(AutoFeatureExtractor, path, options)
    pipe = pipeline(
        "automatic-speech-recognition",
        model=loaded.model,
        tokenizer=from_folder(AutoTokenizer, path, options),
        feature_extractor=features,
        device=loaded.device,
    )
    decoder = getattr(config, "decoder", None) or config
    named = getattr(config, "max_target_positions", None) or getattr(decoder, "max_position_embeddings", None)
    longest = int(named or 448)
    kind = str(pipe.type)
    ctc_run = CtcTranscriber(loaded.model, features, pipe.tokenizer, loaded.dtype) if kind == "ctc" else None
    return SpeechRecognitionRunner(
        pipe, int(features.sampling_rate), min_samples(config), kind, longest, ctc_run
    )


def _audio_classification(path: Path, options: LoadOptions) -> TaskRunner:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

    loaded = load_model(path, options, AutoModelForAudioClassification)
    features = from_folder(AutoFeatureExtractor, path, options)
    pipe = pipeline(
        "audio-classification", model=loaded.model, feature_extractor=features, device=loaded.device
    )
    return AudioClassificationRunner(pipe, int(features.sampling_rate), min_samples(loaded.model.config))


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    if task == "automatic-speech-recognition":
        return _speech_recognition(path, options)
    if task == "audio-classification":
        return _audio_classification(path, options)
    if task == "text-to-speech":
        raise ValueError("modelport does not serve text-to-speech models yet")
    raise ValueError(f"the audio runner does not serve {task!r}")


# -- OpenAI /v1/audio/transcriptions -------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    """What an OpenAI transcription answer needs: `text`, and for verbose_json the clip's
    `duration` and, when timestamps were asked for, the timed `segments`."""

    text: str
    duration: float
    segments: tuple[Segment, ...] = ()


def transcription_request(
    runner: TaskRunner, audio: bytes, *, temperature: float | None = None, timestamps: bool = False
) -> TaskRequest:
    """The TaskRequest for an OpenAI transcription upload. `temperature` > 0 samples (generating
    models only: a CTC model has nothing to sample, so it is a 400 there rather than ignored)."""
    params: dict[str, Any] = {}
    if timestamps:
        params["return_timestamps"] = True
    if temperature is not None and temperature > 0:
        if not (isinstance(runner, SpeechRecognitionRunner) and runner.generates):
            raise TaskInputError(
                "`temperature` does not apply: this model reads the transcript off in one pass (CTC)",
                param="temperature",
            )
        params["generation_parameters"] = {"do_sample": True, "temperature": float(temperature)}
    return TaskRequest(inputs=audio, parameters=params)


def transcription(output: TaskOutput) -> Transcription:
    body = output.body
    if isinstance(body, list):  # a single upload is never a list; be strict about the contract
        raise TypeError("a transcription answers one clip")
    segments = tuple(
        Segment(float(c["timestamp"][0]), float(c["timestamp"][1]), str(c["text"]))
        for c in body.get("chunks", ())
    )
    return Transcription(str(body["text"]), float(output.units.get("audio_seconds", 0.0)), segments)
