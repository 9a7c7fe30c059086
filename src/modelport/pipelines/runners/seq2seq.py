"""summarization, translation and text2text-generation on AutoModelForSeq2SeqLM.generate
(transformers 5 dropped those pipelines).

Parameters are those huggingface_hub 2.4's InferenceClient sends (`summarization`, `translation`;
it has no text2text method, so that task takes the same): `clean_up_tokenization_spaces`,
`truncation`, `generate_parameters` {max_new_tokens, num_beams, ...}, and for translation
`src_lang`/`tgt_lang`. The generate parameters are also taken at the top of `parameters`, as the
older Inference API took them. Requests generating alike share a batch; greedy answers equal an
unbatched generate. Answers: `[{"summary_text"}]`, `[{"translation_text"}]`, `[{"generated_text"}]`
(`SummarizationOutput.parse_obj_as_list(body)[0]` and the like), one element per input text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelport.engine.loader import ModelLoadError
from modelport.pipelines.base import InputKind, LoadOptions, Prepared, TaskOutput, TaskRequest, TaskRunner
from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.params import Check, Rule, boolean, check_parameters, integer, number, one_of, text
from modelport.pipelines.runners.text_common import TextModel, chunks, load_text_model, read_texts

MAX_NEW_TOKENS = 1024
OUTPUT_KEY = {
    "summarization": "summary_text",
    "translation": "translation_text",
    "text2text-generation": "generated_text",
}
TRUNCATIONS = ("do_not_truncate", "longest_first", "only_first", "only_second")


def _positive(high: float) -> Check:
    def check(param: str, value: Any) -> float:
        got: float = number(0.0, high)(param, value)
        if got <= 0:
            raise TaskInputError(
                f"`{param}` must be above 0 (for greedy decoding set do_sample to false)", param=param
            )
        return got

    return check


GENERATE: dict[str, Rule] = {
    "max_new_tokens": Rule(integer(1, MAX_NEW_TOKENS)),
    "min_new_tokens": Rule(integer(0, MAX_NEW_TOKENS)),
    "max_length": Rule(integer(1, MAX_NEW_TOKENS)),
    "min_length": Rule(integer(0, MAX_NEW_TOKENS)),
    "num_beams": Rule(integer(1, 8)),
    "do_sample": Rule(boolean),
    "temperature": Rule(_positive(100.0)),
    "top_k": Rule(integer(0, 1000)),
    "top_p": Rule(number(0.0, 1.0)),
    "repetition_penalty": Rule(_positive(100.0)),
    "no_repeat_ngram_size": Rule(integer(0, 100)),
    "length_penalty": Rule(number(-100.0, 100.0)),
    "early_stopping": Rule(boolean),
}


def load(path: Path, task: str, options: LoadOptions) -> TaskRunner:
    if task not in OUTPUT_KEY:
        raise ModelLoadError(f"{task!r} is not a sequence-to-sequence task")
    return Seq2SeqRunner(load_text_model(path, options, "AutoModelForSeq2SeqLM"), task)


def _nested(value: Any) -> dict[str, Any]:
    """`generate_parameters`: checked like the top-level ones, named by their full path."""
    if not isinstance(value, Mapping):
        raise TaskInputError(
            "`parameters.generate_parameters` must be a JSON object", param="parameters.generate_parameters"
        )
    out = {}
    for name, given in value.items():
        param = f"parameters.generate_parameters.{name}"
        if name not in GENERATE:
            raise TaskInputError(
                f"generate parameter {name!r} is not supported (supported: {', '.join(sorted(GENERATE))})",
                param=param,
                code="unsupported_parameter",
            )
        if given is not None:
            out[name] = GENERATE[name].check(param, given)
    return out


@dataclass
class Seq2SeqRunner:
    tm: TextModel
    task: str
    accepts: frozenset[InputKind] = frozenset({"text", "json"})

    def __post_init__(self) -> None:
        self.langs = hasattr(self.tm.tokenizer, "src_lang")  # NLLB, M2M100, mBART-50 tokenizers
        self.rules: dict[str, Rule] = {
            **GENERATE,
            "generate_parameters": Rule(lambda _p, v: _nested(v), {}),
            "clean_up_tokenization_spaces": Rule(boolean),
            "truncation": Rule(one_of(*TRUNCATIONS), "do_not_truncate"),
        }
        if self.task == "translation":
            self.rules |= {"src_lang": Rule(text(64)), "tgt_lang": Rule(text(64))}

    def prepare(self, request: TaskRequest) -> Prepared:
        texts, many = read_texts(request.inputs)
        params = check_parameters(self.task, request.parameters, self.rules)
        generate = self._generate(params)
        langs = self._langs(params)
        texts = [self._prefix(langs) + t for t in texts]
        with self.tm.lock:
            if langs is not None:
                self.tm.counter.src_lang = langs[0]
            lengths = [len(ids) for ids in self.tm.counter(texts, truncation=False)["input_ids"]]
        if params["truncation"] in ("do_not_truncate", "only_second"):  # only_second: no second text to cut
            self.tm.check_lengths(lengths, "shorten it or set `truncation` to longest_first")
        lengths = [min(n, self.tm.max_tokens) for n in lengths]
        params["generate"], params["langs"] = generate, langs
        key = (tuple(sorted(generate.items())), langs)
        return Prepared(texts, params, key=key, size=max(lengths), input_tokens=sum(lengths), many=many)

    def _generate(self, params: dict[str, Any]) -> dict[str, Any]:
        nested = params["generate_parameters"]
        top = {name: params[name] for name in GENERATE if params[name] is not None}
        for name in nested.keys() & top.keys():
            if nested[name] != top[name]:
                raise TaskInputError(
                    f"`{name}` is given twice, differently: at the top of `parameters` "
                    "and in `generate_parameters`",
                    param=f"parameters.generate_parameters.{name}",
                )
        generate: dict[str, Any] = top | nested
        for low, high in (("min_new_tokens", "max_new_tokens"), ("min_length", "max_length")):
            if (
                generate.get(low) is not None
                and generate.get(high) is not None
                and generate[low] > generate[high]
            ):
                raise TaskInputError(f"`{low}` is above `{high}`", param=f"parameters.{low}")
        config = self.tm.model.generation_config
        if "max_new_tokens" not in generate and "max_length" not in generate:
            # the model's own default (its max_length counts the decoder's start token), capped
            default = config.max_new_tokens or max(1, (config.max_length or 21) - 1)
            generate["max_new_tokens"] = min(default, MAX_NEW_TOKENS)
        return generate

    def _langs(self, params: dict[str, Any]) -> tuple[str, str] | None:
        if self.task != "translation" or (params["src_lang"] is None and params["tgt_lang"] is None):
            return None
        if not self.langs:
            raise TaskInputError(
                "this model translates one fixed language pair: its tokenizer takes no src_lang/tgt_lang",
                param="parameters.src_lang" if params["src_lang"] is not None else "parameters.tgt_lang",
            )
        if params["src_lang"] is None or params["tgt_lang"] is None:
            raise TaskInputError("`src_lang` and `tgt_lang` go together", param="parameters.src_lang")
        for name in ("src_lang", "tgt_lang"):
            if self._lang_id(params[name]) is None:
                raise TaskInputError(
                    f"this model does not know the language {params[name]!r}", param=f"parameters.{name}"
                )
        return params["src_lang"], params["tgt_lang"]

    def _lang_id(self, lang: str) -> int | None:
        tok = self.tm.tokenizer
        try:
            found = tok.get_lang_id(lang) if hasattr(tok, "get_lang_id") else tok.convert_tokens_to_ids(lang)
        except (KeyError, ValueError):
            return None
        return None if found is None or found == tok.unk_token_id else int(found)

    def _prefix(self, langs: tuple[str, str] | None) -> str:
        """The task prefix the model was trained with (T5's "summarize: "), from its config."""
        config = self.tm.model.config
        specific = getattr(config, "task_specific_params", None) or {}
        if self.task == "translation":
            names = (
                [f"translation_{langs[0]}_to_{langs[1]}"]
                if langs
                else [k for k in specific if k.startswith("translation")]
            )
            entry = specific.get(names[0], {}) if len(names) == 1 else {}
        else:
            entry = specific.get(self.task, {})
        prefix = entry.get("prefix") if isinstance(entry, dict) else None
        return str(prefix or getattr(config, "prefix", None) or "")

    def run_batch(self, items: Sequence[Prepared]) -> list[TaskOutput | BaseException]:
        texts = [t for item in items for t in item.payload]
        first = items[0]
        generate = dict(first.parameters["generate"])
        langs = first.parameters["langs"]
        if langs is not None:
            self.tm.tokenizer.src_lang = langs[0]
            generate["forced_bos_token_id"] = self._lang_id(langs[1])
        outputs: list[list[int]] = []
        for rows in chunks(len(texts), self.tm.max_batch):
            enc = self.tm.encode([texts[i] for i in rows], truncation=True, max_length=self.tm.max_tokens)
            with torch.inference_mode():
                outputs.extend(self.tm.model.generate(**enc, **generate).cpu().tolist())
        results: list[TaskOutput | BaseException] = []
        at = 0
        for item in items:
            mine = outputs[at : at + len(item.payload)]
            at += len(mine)
            decode: dict[str, Any] = {"skip_special_tokens": True}
            if item.parameters["clean_up_tokenization_spaces"] is not None:
                decode["clean_up_tokenization_spaces"] = item.parameters["clean_up_tokenization_spaces"]
            body = [{OUTPUT_KEY[self.task]: self.tm.tokenizer.decode(ids, **decode)} for ids in mine]
            results.append(TaskOutput(body, input_tokens=item.input_tokens))
        return results

    def warmup(self) -> None:
        self.run_batch([self.prepare(TaskRequest(inputs="warm up", parameters={"max_new_tokens": 2}))])
