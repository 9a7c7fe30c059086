"""GGUF conversion without llama.cpp's converter: output types and names, refusals, the sdist's
extraction, the pre-tokenizer fallback, and the run itself with a stand-in converter.

The stand-in is a converter folder laid out like the sdist's (convert_hf_to_gguf.py, conversion/,
gguf-py/gguf/) whose script writes a GGUF preamble or fails, run through the real wrapper
(`python -P -m modelport.launchers.gguf_convert_main`) in a subprocess. The real converter runs in
tests/integration/models/test_gguf_convert.py.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelport.cli.main import app
from modelport.launchers import gguf_convert as gc
from modelport.launchers import gguf_convert_main as wrapper
from modelport.launchers.engine_install import MARKER
from modelport.models.sources import parse_source

runner = CliRunner(env={"COLUMNS": "200"})
VENDOR = "llama_cpp_python-9.9.9/vendor/llama.cpp"
GPT2_SPEC: dict[str, Any] = {
    "normalizer": None,
    "pre_tokenizer": {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": True,
    },
    "model": {"type": "BPE"},
}

# A stand-in for llama.cpp's converter: the model classes live in conversion/base.py (the
# layout since the split), the pre-tokenizer lookup refuses every tokenizer, and main() writes
# a GGUF preamble to --outfile, or a partial file then an error when the model folder says so.
FAKE_BASE = """
class TextModel:
    def get_vocab_base_pre(self, tokenizer):
        raise NotImplementedError("BPE pre-tokenizer was not recognized - update get_vocab_base_pre()")
"""
FAKE_SCRIPT = """
import argparse, json, struct, sys
from pathlib import Path
import gguf
from conversion.base import TextModel

class Tokenizer:
    def __init__(self, spec):
        self.backend_tokenizer = self
        self.spec = spec
    def to_str(self):
        return json.dumps(self.spec)

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    for flag in ("--outfile", "--outtype", "--model-name"):
        parser.add_argument(flag)
    args = parser.parse_args()
    model = Path(args.model)
    print("INFO:hf-to-gguf:gguf from", gguf.WHERE, "type", args.outtype, "name", args.model_name)
    spec = json.loads((model / "tokenizer.json").read_text())
    print("INFO:hf-to-gguf:pre-tokenizer", TextModel().get_vocab_base_pre(Tokenizer(spec)), flush=True)
    with open(args.outfile, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 7, 0))
        if (model / "fail").exists():
            raise RuntimeError("out of memory while writing tensors")
"""


def write_converter(root: Path) -> Path:
    files = {
        "convert_hf_to_gguf.py": FAKE_SCRIPT,
        "conversion/__init__.py": "",
        "conversion/base.py": FAKE_BASE,
        "gguf-py/gguf/__init__.py": "WHERE = 'gguf-py'\n",
        "models/templates/chat.jinja": "{{ messages }}",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def make_sdist(path: Path, converter: Path | None, extra: dict[str, bytes] | None = None) -> Path:
    """A tar.gz laid out like llama-cpp-python's sdist, holding `converter` under vendor/llama.cpp."""
    with tarfile.open(path, "w:gz") as tar:
        if converter is not None:
            tar.add(converter, arcname=VENDOR)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_model(folder: Path, spec: dict[str, Any] = GPT2_SPEC) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")  # the stand-in converter never reads it
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    return folder


@pytest.fixture
def converter(tmp_path: Path) -> Path:
    return write_converter(tmp_path / "converter")


# --- output types, names and refusals -------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"), [("q8_0", "q8_0"), ("F16", "f16"), ("bf16", "bf16"), ("f32", "f32")]
)
def test_the_converters_own_types_pass_through(typed: str, expected: str) -> None:
    assert gc.check_out_type(typed) == expected


@pytest.mark.parametrize("typed", ["q4_k_m", "Q4_0", "q5_k_s", "q6_k", "iq4_xs", "iq2_xxs", "tq1_0"])
def test_quantized_types_name_llama_quantize(typed: str) -> None:
    with pytest.raises(gc.ConvertError) as caught:
        gc.check_out_type(typed)
    message = str(caught.value)
    assert "llama-quantize" in message and "modelport does not build" in message
    assert f"MODEL-{typed.lower()}.gguf {typed.upper()}" in message  # the command to run instead


def test_unknown_types_list_the_choices() -> None:
    with pytest.raises(
        gc.ConvertError, match="unknown output type 'fp8'; choose one of q8_0, f16, bf16, f32"
    ):
        gc.check_out_type("fp8")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("/models/tiny-chat", "tiny-chat"),
        ("acme/tiny-chat@v2", "tiny-chat"),
        ("s3://bucket/llms/tiny", "tiny"),
    ],
)
def test_model_names(text: str, name: str) -> None:
    assert gc.model_name(parse_source(text)) == name


def test_default_output_is_model_dash_type_in_the_current_folder(tmp_path: Path) -> None:
    assert gc.output_path(None, "tiny", "q8_0", tmp_path, force=False) == tmp_path / "tiny-q8_0.gguf"


def test_out_names_a_file_or_a_folder(tmp_path: Path) -> None:
    (tmp_path / "gguf").mkdir()
    assert gc.output_path("x.gguf", "tiny", "f16", tmp_path, False) == tmp_path / "x.gguf"
    assert gc.output_path("gguf", "tiny", "f16", tmp_path, False) == tmp_path / "gguf" / "tiny-f16.gguf"
    assert (
        gc.output_path(str(tmp_path / "gguf") + "/", "tiny", "f16", tmp_path, False).parent
        == tmp_path / "gguf"
    )
    with pytest.raises(gc.ConvertError, match="missing is not a folder"):
        gc.output_path("missing/", "tiny", "f16", tmp_path, False)  # a trailing / means a folder
    with pytest.raises(gc.ConvertError, match="nowhere is not a folder"):
        gc.output_path("nowhere/x.gguf", "tiny", "f16", tmp_path, False)


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    (tmp_path / "tiny-q8_0.gguf").write_bytes(b"old")
    with pytest.raises(gc.ConvertError, match="already exists; pass --force to replace it"):
        gc.output_path(None, "tiny", "q8_0", tmp_path, force=False)
    assert gc.output_path(None, "tiny", "q8_0", tmp_path, force=True) == tmp_path / "tiny-q8_0.gguf"


def test_model_folder_checks(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(gc.ConvertError, match="is already a GGUF file"):
        gc.check_model_folder(tmp_path / "m.gguf")
    with pytest.raises(gc.ConvertError, match="does not exist"):
        gc.check_model_folder(tmp_path / "absent")
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(gc.ConvertError, match=r"has no config\.json"):
        gc.check_model_folder(folder)
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(gc.ConvertError, match=r"only pickle weights .* safetensors only"):
        gc.check_model_folder(folder)
    (folder / "model.safetensors").write_bytes(b"")
    gc.check_model_folder(folder)


# --- where the converter comes from ---------------------------------------------------------


def install_engine(engines: Path, with_sdist: bool) -> Path:
    folder = engines / "llamacpp-0.3.36"
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (folder / MARKER).write_text("{}")
    if with_sdist:
        (folder / "sdist").mkdir()
        (folder / "sdist" / "llama_cpp_python-0.3.36.tar.gz").write_bytes(b"")
    return folder


def test_without_a_llamacpp_engine_the_message_says_how_to_install_one(tmp_path: Path) -> None:
    with pytest.raises(gc.ConvertError, match=r"run `modelport engines install llamacpp`"):
        gc.engine_sdist(tmp_path)


def test_the_engines_sdist_is_found_in_its_folder(tmp_path: Path) -> None:
    folder = install_engine(tmp_path, with_sdist=True)
    assert gc.engine_sdist(tmp_path) == folder / "sdist" / "llama_cpp_python-0.3.36.tar.gz"


def test_an_engine_without_its_sdist_is_reinstalled(tmp_path: Path) -> None:
    install_engine(tmp_path, with_sdist=False)
    with pytest.raises(gc.ConvertError, match=r"no source package in sdist/.*engines install llamacpp"):
        gc.engine_sdist(tmp_path)


def test_only_the_converter_is_extracted_once_next_to_the_sdist(tmp_path: Path, converter: Path) -> None:
    extra = {
        f"{VENDOR}/models/ggml-vocab-gpt-2.gguf": b"vocab",
        f"{VENDOR}/ggml/src/ggml.c": b"int main;",
        "llama_cpp_python-9.9.9/llama_cpp/__init__.py": b"",
    }
    (tmp_path / "sdist").mkdir()
    sdist = make_sdist(tmp_path / "sdist" / "llama_cpp_python-9.9.9.tar.gz", converter, extra)

    extracted = gc.ensure_converter(sdist)

    assert extracted == tmp_path / "sdist" / "llama_cpp_python-9.9.9-converter"
    files = sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*") if p.is_file())
    assert files == [
        "conversion/__init__.py",
        "conversion/base.py",
        "convert_hf_to_gguf.py",
        "gguf-py/gguf/__init__.py",
        "models/templates/chat.jinja",
    ]
    assert {p.name for p in sdist.parent.iterdir()} == {sdist.name, extracted.name}  # no temp left
    sdist.unlink()  # a second call reuses the folder without reading the archive
    assert gc.ensure_converter(sdist) == extracted


def test_an_archive_without_the_converter_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "llama_cpp_python-9.9.9.tar.gz", None, {"x/README.md": b"hi"})
    with pytest.raises(gc.ConvertError, match=r"has no vendor/llama\.cpp/convert_hf_to_gguf\.py"):
        gc.ensure_converter(sdist)
    assert [p.name for p in tmp_path.iterdir()] == [sdist.name]


def test_the_command_runs_the_wrapper_with_gguf_py_first_and_the_hub_offline(tmp_path: Path) -> None:
    command = gc.converter_command(tmp_path, Path("/m"), Path("/o.partial"), "f16", "tiny", "/py")
    assert command == [
        "/py",
        "-P",
        "-m",
        "modelport.launchers.gguf_convert_main",
        str(tmp_path),
        "/m",
        "--outfile",
        "/o.partial",
        "--outtype",
        "f16",
        "--model-name",
        "tiny",
    ]
    env = gc.converter_env(tmp_path, {"PYTHONPATH": "/src", "NO_LOCAL_GGUF": "1", "HOME": "/h"})
    assert env == {
        "PYTHONPATH": f"{tmp_path / 'gguf-py'}{os.pathsep}/src",
        "HF_HUB_OFFLINE": "1",
        "HOME": "/h",
    }


# --- the pre-tokenizer fallback -------------------------------------------------------------


def test_only_plain_byte_level_bpe_counts_as_gpt2() -> None:
    assert wrapper.is_gpt2_byte_level(GPT2_SPEC)
    for change in (
        {"normalizer": {"type": "NFC"}},
        {"model": {"type": "WordPiece"}},
        {"pre_tokenizer": {**GPT2_SPEC["pre_tokenizer"], "add_prefix_space": True}},
        {"pre_tokenizer": {**GPT2_SPEC["pre_tokenizer"], "use_regex": False}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [GPT2_SPEC["pre_tokenizer"]]}},
    ):
        assert not wrapper.is_gpt2_byte_level({**GPT2_SPEC, **change}), change


def test_the_lookup_is_found_in_a_script_of_the_older_single_file_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "conversion.base", raising=False)
    script = types.ModuleType("convert_hf_to_gguf")

    class TextModel:
        def get_vocab_base_pre(self, tokenizer: Any) -> str:
            raise NotImplementedError

    script.TextModel = TextModel  # type: ignore[attr-defined]
    assert wrapper._pre_tokenizer_owner(script) is TextModel


# --- running it -----------------------------------------------------------------------------


def test_a_conversion_lands_whole_with_the_fallback_warning(tmp_path: Path, converter: Path) -> None:
    model = make_model(tmp_path / "tiny")
    out = tmp_path / "out"
    out.mkdir()
    seen: list[str] = []

    result = gc.convert(
        model, out / "tiny-f16.gguf", "f16", converter, "tiny", on_line=seen.append, poll_s=0.01
    )

    assert (result.output, result.out_type, result.tensors) == (out / "tiny-f16.gguf", "f16", 7)
    assert result.bytes == 24 and result.seconds > 0
    assert result.warnings == (
        "the tokenizer's BPE pre-tokenizer is not one llama.cpp knows; it is a plain byte-level BPE "
        "(GPT-2's splitting), so the GGUF uses llama.cpp's 'gpt-2' pre-tokenizer",
    )
    assert [p.name for p in out.iterdir()] == ["tiny-f16.gguf"]  # no partial file, no log


def test_a_failed_conversion_leaves_no_file_and_keeps_its_log(tmp_path: Path, converter: Path) -> None:
    model = make_model(tmp_path / "tiny")
    (model / "fail").touch()
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(gc.ConvertFailed) as caught:
        gc.convert(model, out / "tiny-f16.gguf", "f16", converter, "tiny", poll_s=0.01)

    assert "RuntimeError: out of memory while writing tensors" in str(caught.value)
    assert [p.name for p in out.iterdir()] == ["tiny-f16.gguf.log"]
    assert caught.value.log == out / "tiny-f16.gguf.log"
    assert caught.value.tail[-1] == "RuntimeError: out of memory while writing tensors"
    log = caught.value.log.read_text()
    # the script ran against gguf-py from the converter folder, with the arguments given
    assert "INFO:hf-to-gguf:gguf from gguf-py type f16 name tiny" in log
    assert "INFO:hf-to-gguf:pre-tokenizer gpt-2" in log


def test_other_unknown_tokenizers_still_fail(tmp_path: Path, converter: Path) -> None:
    spec = {**GPT2_SPEC, "normalizer": {"type": "NFKC"}}
    model = make_model(tmp_path / "tiny", spec)
    with pytest.raises(
        gc.ConvertFailed, match=r"pre-tokenizer was not recognized.*only plain byte-level BPE"
    ):
        gc.convert(model, tmp_path / "tiny-f16.gguf", "f16", converter, "tiny", poll_s=0.01)
    assert not (tmp_path / "tiny-f16.gguf").exists()


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (
            "INFO:x\nTraceback (most recent call last):\n  File ...\n"
            "ModuleNotFoundError: No module named 'sentencepiece'\n",
            "ModuleNotFoundError: No module named 'sentencepiece' (install it into modelport's environment: "
            "pip install sentencepiece)",
        ),
        (
            "INFO:hf-to-gguf:Loading model\nERROR:hf-to-gguf:Model FooForCausalLM is not supported\n",
            "Model FooForCausalLM is not supported",
        ),
        ("", "no output"),
    ],
)
def test_failure_reasons(log: str, reason: str) -> None:
    assert gc.failure_reason(log) == reason


# --- the command ----------------------------------------------------------------------------


def test_convert_command_end_to_end_with_a_stand_in_converter(
    tmp_path: Path, converter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdist = make_sdist(tmp_path / "llama_cpp_python-9.9.9.tar.gz", converter)
    make_model(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)

    done = runner.invoke(app, ["models", "convert", "tiny", "--to", "gguf", "--sdist", str(sdist), "--json"])

    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["output"] == str(tmp_path / "tiny-q8_0.gguf")  # the default type and name
    assert (summary["type"], summary["tensors"], summary["bytes"]) == ("q8_0", 7, 24)
    assert summary["source"] == str(tmp_path / "tiny") and summary["converter"] == sdist.name
    assert len(summary["warnings"]) == 1
    assert (tmp_path / "tiny-q8_0.gguf").read_bytes()[:4] == b"GGUF"

    again = runner.invoke(app, ["models", "convert", "tiny", "--to", "gguf", "--sdist", str(sdist)])
    assert again.exit_code == 2 and "already exists; pass --force" in again.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--quant", "q4_k_m"], 2, "llama-quantize"),
        (["--to", "onnx"], 2, "gguf is the only target"),
        ([], 1, "run `modelport engines install llamacpp`"),
    ],
)
def test_convert_command_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    make_model(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELPORT_ENGINES_DIR", str(tmp_path / "engines"))
    to = [] if "--to" in args else ["--to", "gguf"]
    done = runner.invoke(app, ["models", "convert", "tiny", *to, *args])
    assert done.exit_code == code, done.output
    assert message in " ".join(done.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_a_refusal_by_the_converter_prints_its_reason_not_its_traceback(
    tmp_path: Path, converter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdist = make_sdist(tmp_path / "llama_cpp_python-9.9.9.tar.gz", converter)
    make_model(tmp_path / "tiny", {**GPT2_SPEC, "normalizer": {"type": "NFKC"}})  # not gpt-2's splitting
    monkeypatch.chdir(tmp_path)

    done = runner.invoke(app, ["models", "convert", "tiny", "--to", "gguf", "--sdist", str(sdist)])

    assert done.exit_code == 1, done.output
    log = tmp_path / "tiny-q8_0.gguf.log"
    assert "Traceback (most recent call last)" in log.read_text()  # the frames are in the log only
    assert "Traceback" not in done.output and 'File "' not in done.output
    assert " ".join(done.output.split()) == (  # rich wraps at the console's width
        "the converter failed (exit status 1): NotImplementedError: BPE pre-tokenizer was not recognized - "
        "update get_vocab_base_pre() (llama.cpp does not know this tokenizer; only plain byte-level BPE "
        f"falls back to gpt-2) full log: {log}"
    )


def test_a_remote_source_must_be_pulled_first(tmp_path: Path) -> None:
    done = runner.invoke(app, ["models", "convert", "acme/tiny", "--to", "gguf", "--cache", str(tmp_path)])
    assert done.exit_code == 3
    assert "run `modelport models pull acme/tiny`" in " ".join(done.output.split())
