"""Convert a Hugging Face safetensors folder to one GGUF file with llama.cpp's own converter.

The converter (convert_hf_to_gguf.py, its `conversion` package, gguf-py and the chat templates
some models take) ships in the llama-cpp-python source package, which the llama.cpp engine
install keeps at `<engine>/sdist/llama_cpp_python-<version>.tar.gz`. Those parts are extracted
once next to the sdist and run by modelport's own interpreter, which has what they import
(torch, transformers, safetensors, sentencepiece, numpy), through `gguf_convert_main` (the
pre-tokenizer fallback for self-trained byte-level BPE tokenizers).

Output types are the ones the converter writes itself: f32, f16, bf16 and q8_0. The k-quants
and i-quants (q4_k_m, iq4_xs…) come from llama.cpp's llama-quantize program, which
llama-cpp-python does not build.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modelport.launchers.engine_install import find_engine
from modelport.launchers.gguf_convert_main import SCRIPT, WARNING_PREFIX
from modelport.models.formats import GGUF_SUFFIX, FormatError, read_gguf_header, weight_formats
from modelport.models.sources import ModelSource
from modelport.runtime.failure import failure_line

OUT_TYPES = ("q8_0", "f16", "bf16", "f32")
DEFAULT_OUT_TYPE = "q8_0"
SDIST_GLOB = "llama_cpp_python-*.tar.gz"
# What the converter reads, relative to vendor/llama.cpp/ in the sdist (about 5 MB of 76).
_VENDOR = "vendor/llama.cpp/"
_CONVERTER_FILES = (SCRIPT, "LICENSE")
_CONVERTER_FOLDERS = ("conversion/", "gguf-py/gguf/", "models/templates/")
# llama.cpp's quantized type names (q4_0, q4_k_m, iq2_xxs, tq1_0…): made by llama-quantize.
_QUANT_NAME = re.compile(r"(i?q[1-8]|tq[12])(_[0-9a-z]+)*")
_MISSING_MODULE = re.compile(r"No module named '([^'.]+)")
_TAIL_LINES = 20


class ConvertError(Exception):
    """A conversion cannot start or did not finish; the message says why and what to do."""


class ConvertFailed(ConvertError):
    """The converter ran and failed; its full log is kept at `log`."""

    def __init__(self, message: str, log: Path, tail: list[str]) -> None:
        super().__init__(message)
        self.log = log
        self.tail = tail


@dataclass(frozen=True)
class ConvertResult:
    output: Path
    bytes: int
    out_type: str
    tensors: int
    seconds: float
    warnings: tuple[str, ...]


def check_out_type(name: str) -> str:
    """The converter's name for an output type, or a ConvertError saying what makes the others."""
    value = name.strip().lower()
    if value in OUT_TYPES:
        return value
    if _QUANT_NAME.fullmatch(value):
        raise ConvertError(
            f"{value} is made by llama.cpp's llama-quantize program, which modelport does not build "
            "(llama-cpp-python ships only the library). Convert to f16 here, then run "
            f"`llama-quantize MODEL-f16.gguf MODEL-{value}.gguf {value.upper()}` from a llama.cpp build; "
            f"modelport's converter writes {', '.join(OUT_TYPES)}"
        )
    raise ConvertError(f"unknown output type {name!r}; choose one of {', '.join(OUT_TYPES)}")


def model_name(source: ModelSource) -> str:
    """The name a converted file takes: the folder's, or the repository's or prefix's last part."""
    return source.location.rstrip("/").rsplit("/", 1)[-1] or "model"


def output_path(out: str | None, name: str, out_type: str, cwd: Path, force: bool) -> Path:
    """Where to write: `out` (a file, or a folder for the default name; a trailing / means a
    folder), else `<name>-<type>.gguf` in `cwd`. An existing file is replaced only with `force`."""
    default = f"{name}-{out_type}{GGUF_SUFFIX}"
    target = cwd / default if out is None else cwd / Path(out).expanduser()
    if target.is_dir() or (out is not None and out.endswith(("/", os.sep))):
        if not target.is_dir():
            raise ConvertError(f"{target} is not a folder; create it or pick another --out")
        target = target / default
    if not target.parent.is_dir():
        raise ConvertError(f"{target.parent} is not a folder; create it or pick another --out")
    if target.exists() and not force:
        raise ConvertError(f"{target} already exists; pass --force to replace it")
    return target


def check_model_folder(path: Path) -> None:
    """A folder the converter can read: config.json and safetensors weights."""
    if path.is_file():
        if path.name.endswith(GGUF_SUFFIX):
            raise ConvertError(f"{path} is already a GGUF file")
        raise ConvertError(f"{path} is a file; pass a Hugging Face model folder")
    if not path.is_dir():
        raise ConvertError(f"{path} does not exist")
    if not (path / "config.json").is_file():
        raise ConvertError(f"{path} has no config.json; pass a Hugging Face model folder")
    formats = weight_formats(p.name for p in path.iterdir())
    if "safetensors" not in formats:
        # the converter would torch.load pickle weights, which can run code: never offered here
        kind = "only pickle weights (*.bin, *.pt)" if "pickle" in formats else "no *.safetensors weights"
        raise ConvertError(f"{path} has {kind}; the converter is run on safetensors only")


def engine_sdist(engines_dir: Path) -> Path:
    """The llama-cpp-python sdist kept by the installed llama.cpp engine."""
    engine = find_engine("llamacpp", engines_dir)
    if engine is None:
        raise ConvertError(
            "no llama.cpp engine is installed; its source package carries the converter: "
            "run `modelport engines install llamacpp` (or pass --sdist llama_cpp_python-<version>.tar.gz)"
        )
    folder = engine.folder or Path(engine.require_python()).parent.parent
    return find_sdist(folder)


def find_sdist(engine_folder: Path) -> Path:
    found = sorted((engine_folder / "sdist").glob(SDIST_GLOB))
    if not found:
        raise ConvertError(
            f"the llama.cpp engine at {engine_folder} has no source package in sdist/ "
            "(llama_cpp_python-<version>.tar.gz); reinstall it: `modelport engines install llamacpp`"
        )
    return found[-1]


def converter_dir(sdist: Path) -> Path:
    """Where an sdist's converter is extracted: next to it, named after it."""
    return sdist.with_name(sdist.name.removesuffix(".tar.gz") + "-converter")


def _converter_part(member: str) -> str | None:
    """A member's path under vendor/llama.cpp/ when the converter needs it."""
    _, _, inside = member.partition("/")  # below the sdist's top folder
    if not inside.startswith(_VENDOR):
        return None
    part = inside.removeprefix(_VENDOR)
    return part if part in _CONVERTER_FILES or part.startswith(_CONVERTER_FOLDERS) else None


def ensure_converter(sdist: Path, dest: Path | None = None) -> Path:
    """The converter folder of an sdist, extracted on first use. Extraction goes to a temporary
    folder renamed into place, so a crash or a concurrent run never leaves half a converter."""
    dest = dest or converter_dir(sdist)
    if (dest / SCRIPT).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        root = None
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:  # one pass over the stream: the data follows each header
                if _converter_part(member.name) is not None and (member.isfile() or member.isdir()):
                    tar.extract(member, tmp, filter="data")
                    if _converter_part(member.name) == SCRIPT:
                        root = tmp / member.name.split("/", 1)[0] / _VENDOR
        if root is None:
            raise ConvertError(f"{sdist} has no {_VENDOR}{SCRIPT}; is it a llama-cpp-python sdist?")
        if (dest / SCRIPT).is_file():
            return dest  # another run finished first: use its copy
        if dest.exists():  # without the script: not a converter (left by hand)
            shutil.rmtree(dest)
        try:
            root.rename(dest)
        except OSError:
            if not (dest / SCRIPT).is_file():  # else another run finished in between
                raise
    except (OSError, tarfile.TarError) as exc:
        raise ConvertError(f"cannot extract the converter from {sdist}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def converter_command(
    converter: Path, model_dir: Path, outfile: Path, out_type: str, name: str, python: str
) -> list[str]:
    # -P: the current folder is not put on sys.path, so nothing in it shadows their modules
    return [
        python,
        "-P",
        "-m",
        "modelport.launchers.gguf_convert_main",
        str(converter),
        str(model_dir),
        "--outfile",
        str(outfile),
        "--outtype",
        out_type,
        "--model-name",
        name,
    ]


def converter_env(converter: Path, base: Mapping[str, str]) -> dict[str, str]:
    """gguf-py first on the path (the script is written against it, not modelport's gguf), the Hub
    offline (the converter's transformers calls read the folder only)."""
    env = {k: v for k, v in base.items() if k != "NO_LOCAL_GGUF"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(converter / "gguf-py"), base.get("PYTHONPATH")) if p)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def failure_reason(log_text: str) -> str:
    """The line that says why the converter stopped (its exception's, or its logged error's;
    never a traceback frame), with a hint where one is known."""
    reason = failure_line(log_text) or "no output"
    missing = _MISSING_MODULE.search(reason)
    if missing:
        reason += f" (install it into modelport's environment: pip install {missing.group(1)})"
    elif "pre-tokenizer was not recognized" in reason:
        reason += " (llama.cpp does not know this tokenizer; only plain byte-level BPE falls back to gpt-2)"
    return reason


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 2048))
            chunk = f.read()
    except OSError:
        return ""
    lines = [line for line in re.split(rb"[\r\n]+", chunk) if line.strip()]
    return lines[-1].decode(errors="replace").strip() if lines else ""


def convert(
    model_dir: Path,
    output: Path,
    out_type: str,
    converter: Path,
    name: str,
    *,
    python: str = sys.executable,
    on_line: Callable[[str], None] | None = None,
    poll_s: float = 0.2,
) -> ConvertResult:
    """Run the converter into a temporary file beside `output`, renamed over it on success; on
    failure no partial file is left and the log (`<output>.log`) is kept."""
    partial = output.with_name(f".modelport-convert-{secrets.token_hex(6)}{GGUF_SUFFIX}.partial")
    log = output.with_name(output.name + ".log")
    command = converter_command(converter, model_dir, partial, out_type, name, python)
    started = time.monotonic()
    try:
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=converter_env(converter, os.environ),
            )
            try:
                while proc.poll() is None:
                    if on_line is not None:
                        on_line(_last_line(log))
                    time.sleep(poll_s)
            finally:
                if proc.poll() is None:  # interrupted: stop the converter too
                    proc.kill()
                    proc.wait()
        seconds = time.monotonic() - started
        text = log.read_text(errors="replace")
        lines = [line for line in re.split(r"[\r\n]+", text) if line.strip()]
        if proc.returncode != 0 or not partial.is_file():
            raise ConvertFailed(
                f"the converter failed (exit status {proc.returncode}): {failure_reason(text)}",
                log,
                lines[-_TAIL_LINES:],
            )
        try:
            header = read_gguf_header(partial)
        except FormatError as exc:
            raise ConvertFailed(
                f"the converter wrote a broken file: {exc}", log, lines[-_TAIL_LINES:]
            ) from None
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    log.unlink()
    warnings = tuple(line.removeprefix(WARNING_PREFIX) for line in lines if line.startswith(WARNING_PREFIX))
    return ConvertResult(
        output=output,
        bytes=output.stat().st_size,
        out_type=out_type,
        tensors=header.tensor_count,
        seconds=seconds,
        warnings=warnings,
    )
