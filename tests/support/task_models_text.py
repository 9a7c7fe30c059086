"""Tiny random-weight text models with offline-built tokenizers, saved as Hub model folders.

Each builder writes config.json + model.safetensors + tokenizer files into `path` and returns it,
so runner tests and end-to-end tests load them exactly as they would load a downloaded model.
Heads use a large initializer range so random predictions vary across tokens and labels (with
the default 0.02 every token gets the same label and the tests would prove little).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = [
    "the",
    "a",
    "an",
    "is",
    "was",
    "in",
    "on",
    "at",
    "of",
    "to",
    "and",
    "or",
    "not",
    "who",
    "what",
    "where",
    "when",
    "which",
    "how",
    "why",
    "did",
    "does",
    "cat",
    "dog",
    "bird",
    "fish",
    "sat",
    "ran",
    "flew",
    "swam",
    "mat",
    "park",
    "river",
    "tree",
    "house",
    "city",
    "country",
    "paris",
    "london",
    "berlin",
    "france",
    "england",
    "germany",
    "alice",
    "bob",
    "carol",
    "dave",
    "lives",
    "works",
    "good",
    "bad",
    "great",
    "terrible",
    "happy",
    "sad",
    "love",
    "hate",
    "movie",
    "book",
    "film",
    "story",
    "capital",
    "largest",
    "small",
    "big",
    "red",
    "blue",
    "green",
    "one",
    "two",
    "three",
    ",",
    ".",
    "?",
    "!",
]
PIECES = ["##s", "##ed", "##ing", "##er", "##ly", "##a", "##o", "##i", "##e", "##n", "##t", "##r"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]
SEQ2SEQ_WORDS = [
    "summarize:",
    "translate",
    "English",
    "to",
    "French:",
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "is",
    "big",
    "small",
    "red",
    "blue",
    "le",
    "la",
    "chat",
    "chien",
    "est",
    "grand",
    "petit",
    "rouge",
    "bleu",
    ".",
    ",",
]


def _bert_tokenizer(path: Path, max_len: int) -> Any:
    from transformers import BertTokenizer

    vocab = {w: i for i, w in enumerate([*BERT_SPECIALS, *WORDS, *PIECES])}
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=max_len)
    tokenizer.save_pretrained(path)
    return tokenizer


def _bert_config(tokenizer: Any, max_len: int, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer.get_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=max_len,
        initializer_range=0.3,
        **extra,
    )


def _save(model: Any, path: Path) -> Path:
    model.eval()
    model.save_pretrained(path)
    return path


def _bert(path: Path, model_class: str, seed: int, max_len: int = 64, **config: Any) -> Path:
    import torch
    import transformers

    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _bert_tokenizer(path, max_len)
    cls = getattr(transformers, model_class)
    return _save(cls(_bert_config(tokenizer, max_len, **config)), path)


def _labels(names: list[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def text_classifier(path: Path, labels: tuple[str, ...] = ("NEGATIVE", "NEUTRAL", "POSITIVE")) -> Path:
    """Single-label sentiment classifier (softmax); three labels so top_k has something to cut."""
    return _bert(path, "BertForSequenceClassification", 1, num_labels=len(labels), **_labels(list(labels)))


def ner_tagger(path: Path) -> Path:
    return _bert(path, "BertForTokenClassification", 2, num_labels=len(NER_LABELS), **_labels(NER_LABELS))


def masked_lm(path: Path) -> Path:
    return _bert(path, "BertForMaskedLM", 3)


def nli_model(path: Path) -> Path:
    """An NLI classifier (entailment/neutral/contradiction), as zero-shot classification needs."""
    return _bert(path, "BertForSequenceClassification", 4, num_labels=3, **_labels(NLI_LABELS))


def qa_model(path: Path, max_len: int = 64) -> Path:
    return _bert(path, "BertForQuestionAnswering", 5, max_len=max_len)


def cross_encoder(path: Path) -> Path:
    """A reranker: one output logit per (query, text) pair."""
    return _bert(path, "BertForSequenceClassification", 6, num_labels=1, **_labels(["LABEL_0"]))


def seq2seq_model(path: Path, max_len: int = 48) -> Path:
    """A tiny T5 with a whitespace word-level tokenizer (pad 0, eos 1, unk 2) built offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    path.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(SEQ2SEQ_WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_len,
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(7)
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        initializer_factor=3.0,
        task_specific_params={"summarization": {"prefix": "summarize: "}},
    )
    return _save(T5ForConditionalGeneration(config), path)
