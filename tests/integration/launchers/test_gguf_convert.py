"""`modelport models convert` with llama.cpp's real converter, from a real llama-cpp-python sdist,
on the tiny Llama with its self-trained byte-level BPE tokenizer (the gpt-2 fallback).

The GGUF is checked with modelport's own readers (preamble, inspect, plan) and the gguf package: the
architecture, tokenizer and types the converter wrote, and, for f32, the weights themselves.
The sdist and the llama.cpp that loads the file come from the test engines folder
(tests/support/engines.py: installed by `modelport engines install llamacpp` on the first run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from modelport.cli.main import app
from modelport.models.formats import read_gguf_header, read_safetensors_header
from modelport.models.inspect import inspect_model
from tests.support.engines import installed_engine, llamacpp_sdist  # noqa: F401  (the fixture)

runner = CliRunner(env={"COLUMNS": "200"})


def convert(model: Path, sdist: Path, out: Path, quant: str) -> dict[str, Any]:
    args = ["models", "convert", str(model), "--to", "gguf", "--quant", quant, "--out", str(out)]
    done = runner.invoke(app, [*args, "--sdist", str(sdist), "--json"])
    assert done.exit_code == 0, done.output
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def fields(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    values = {name: field.contents() for name, field in reader.fields.items()}
    return values, {t.name: t for t in reader.tensors}


@pytest.fixture(scope="module")
def q8_0(tiny_model: Path, llamacpp_sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: F811
    return convert(tiny_model, llamacpp_sdist, tmp_path_factory.mktemp("gguf") / "tiny-q8_0.gguf", "q8_0")


def test_q8_0_gguf_of_the_tiny_llama(tiny_model: Path, q8_0: dict[str, Any]) -> None:
    out = Path(q8_0["output"])

    source_tensors = read_safetensors_header(tiny_model / "model.safetensors").tensors
    assert q8_0["type"] == "q8_0"
    assert q8_0["tensors"] == len(source_tensors) == 20  # tied embeddings: no output.weight
    assert q8_0["bytes"] == out.stat().st_size
    assert any("'gpt-2' pre-tokenizer" in w for w in q8_0["warnings"])
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no partial file, no log

    header = read_gguf_header(out)
    assert (header.version, header.tensor_count) == (3, 20)
    values, tensors = fields(out)
    assert values["general.architecture"] == "llama"
    assert values["general.name"] == tiny_model.name
    assert values["general.file_type"] == 7  # LlamaFileType.MOSTLY_Q8_0
    assert values["llama.block_count"] == 2 and values["llama.embedding_length"] == 128
    assert values["tokenizer.ggml.model"] == "gpt2" and values["tokenizer.ggml.pre"] == "gpt-2"
    config = json.loads((tiny_model / "config.json").read_text())
    assert len(values["tokenizer.ggml.tokens"]) == config["vocab_size"]
    assert "<|im_start|>" in values["tokenizer.chat_template"]
    types = {t.tensor_type.name for t in tensors.values() if len(t.shape) == 2}
    assert types == {"Q8_0"}  # norms stay F32

    info = inspect_model(out)
    folder = inspect_model(tiny_model)
    assert info.checkpoint_scheme == "gguf-q8_0" and info.facts.model_type == "llama"
    assert info.parameters == folder.parameters

    plan = runner.invoke(app, ["plan", str(out), "--hardware", "local", "--json"])
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)["model"]
    assert (planned["parameters"], planned["checkpoint_scheme"]) == (folder.parameters.total, "gguf-q8_0")


def test_f32_gguf_holds_the_same_weights(tiny_model: Path, llamacpp_sdist: Path, tmp_path: Path) -> None:  # noqa: F811
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "tiny-f32.gguf"
    convert(tiny_model, llamacpp_sdist, out, "f32")

    values, tensors = fields(out)
    assert values["general.file_type"] == 0  # ALL_F32
    weights = load_file(str(tiny_model / "model.safetensors"))
    # bf16 -> f32 is exact; q and k are permuted for llama.cpp's rope, these two are not
    for gguf_name, hf_name in (
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"),
    ):
        expected = weights[hf_name].to(torch.float32).numpy()
        assert np.array_equal(np.asarray(tensors[gguf_name].data).reshape(expected.shape), expected)


def test_a_refusal_prints_the_converters_reason_not_its_traceback(
    tiny_model: Path,
    llamacpp_sdist: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    model = tmp_path / "tiny"
    shutil.copytree(tiny_model, model)
    spec = json.loads((model / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "NFKC"}  # a BPE llama.cpp does not know, and no longer GPT-2's
    (model / "tokenizer.json").write_text(json.dumps(spec))
    out = tmp_path / "tiny.gguf"
    args = ["models", "convert", str(model), "--to", "gguf", "--out", str(out)]

    done = runner.invoke(app, [*args, "--sdist", str(llamacpp_sdist)])

    assert done.exit_code == 1, done.output
    assert "Traceback" in Path(f"{out}.log").read_text()
    assert "Traceback" not in done.output and 'File "' not in done.output
    text = " ".join(done.output.split())
    assert text.startswith(
        "the converter failed (exit status 1): NotImplementedError: BPE pre-tokenizer was not recognized"
    )
    assert text.endswith(f"full log: {out}.log") and not out.exists()


# The texts cover GPT-2's splitting rules: contractions, digits, runs of spaces, tabs and newlines,
# punctuation, non-Latin scripts and emoji, and the chat template's special tokens.
TEXTS = [
    "Hello, world! It's 2024 and we've 3.14159 reasons.",
    "def f(x):\n    return x  +  1\n\n\n",
    "  leading and   multiple   spaces\t\ttabs",
    "naïve café — “quotes” 日本語 🦙🦙 emoji",
    "I'VE 'll 'd 're 's 123456789 1,000,000",
    "<|im_start|>user\nhi<|im_end|>\n",
]
LLAMA_SIDE = """
import json, sys
from llama_cpp import Llama
m = Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
texts = json.loads(sys.argv[2])
print(json.dumps({
    "tokens": [m.tokenize(t.encode(), add_bos=False, special=True) for t in texts],
    "completion": m("hello", max_tokens=4)["choices"][0]["text"],
}))
"""


def test_llamacpp_loads_it_and_tokenizes_like_the_original(tiny_model: Path, q8_0: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    engine = installed_engine("llamacpp")
    assert engine.python is not None
    done = subprocess.run(
        [engine.python, "-c", LLAMA_SIDE, q8_0["output"], json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    assert got["tokens"] == [tokenizer.encode(t, add_special_tokens=False) for t in TEXTS]
    assert isinstance(got["completion"], str)  # it generates (random weights: noise)
