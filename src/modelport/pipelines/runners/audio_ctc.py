"""CTC transcription of a batch of clips in one padded forward.

The transformers ASR pipeline, given a batch, decodes every clip over the padded length, so a
short clip batched with a long one gains letters read off the padding. Here each clip's logits
are cut to its own frame count (from the attention mask) before greedy decoding, so a clip's
transcript is the same alone or in any batch. Models whose feature extractor takes no attention
mask (group-norm wav2vec2) are padding-sensitive: their clips run one forward each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class CtcTranscriber:
    model: Any
    features: Any  # a SequenceFeatureExtractor
    tokenizer: Any  # a CTC tokenizer (Wav2Vec2CTCTokenizer and kin)
    dtype: Any

    @property
    def rate(self) -> int:
        return int(self.features.sampling_rate)

    def __call__(self, clips: Sequence[Any], timestamps: bool) -> list[dict[str, Any]]:
        if getattr(self.features, "return_attention_mask", True):
            return self._batch(clips, timestamps)
        return [answer for clip in clips for answer in self._batch([clip], timestamps)]

    def _batch(self, clips: Sequence[Any], timestamps: bool) -> list[dict[str, Any]]:
        import torch

        processed = self.features(
            list(clips),
            sampling_rate=self.rate,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        name = self.model.main_input_name
        values = processed[name].to(self.model.device, dtype=self.dtype)
        mask = processed["attention_mask"].to(self.model.device)
        with torch.inference_mode():
            logits = self.model(**{name: values, "attention_mask": mask}).logits
        frames = self.model._get_feat_extract_output_lengths(mask.sum(-1)).tolist()
        ids = logits.argmax(dim=-1).cpu()
        return [self._decode(ids[i, : int(n)].tolist(), timestamps) for i, n in enumerate(frames)]

    def _decode(self, ids: list[int], timestamps: bool) -> dict[str, Any]:
        if not timestamps:
            return {"text": self.tokenizer.decode(ids)}
        decoded = self.tokenizer.decode(ids, output_word_offsets=True)
        seconds_per_frame = getattr(self.model.config, "inputs_to_logits_ratio", 1) / self.rate
        chunks = [
            {
                "text": w["word"],
                "timestamp": (w["start_offset"] * seconds_per_frame, w["end_offset"] * seconds_per_frame),
            }
            for w in decoded["word_offsets"]
        ]
        return {"text": decoded["text"], "chunks": chunks}
