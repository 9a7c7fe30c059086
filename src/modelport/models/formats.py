"""Weight file formats read without loading weights: safetensors headers, GGUF headers, pickle.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the data. Reading only the header gives exact parameter
counts and lets a cache check that a file is whole (the last byte range ends at the file's end)
without touching gigabytes of weights.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Pickle-based formats run code when loaded (torch.load, pickle.load).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
GGUF_SUFFIX = ".gguf"
GGUF_MAGIC = b"GGUF"
# A header larger than this is not a safetensors header (the format caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000

DTYPE_BYTES = {
    "F64": 8.0,
    "I64": 8.0,
    "U64": 8.0,
    "F32": 4.0,
    "I32": 4.0,
    "U32": 4.0,
    "F16": 2.0,
    "BF16": 2.0,
    "I16": 2.0,
    "U16": 2.0,
    "F8_E4M3": 1.0,
    "F8_E5M2": 1.0,
    "F8_E8M0": 1.0,
    "I8": 1.0,
    "U8": 1.0,
    "BOOL": 1.0,
    "F4": 0.5,
    "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
}


class FormatError(Exception):
    """A weight file is not what its name says, or is cut short; the message says which and why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    data_offset: int  # where the data starts: 8 + header length
    data_bytes: int  # the end of the last tensor's byte range

    @property
    def expected_file_size(self) -> int:
        return self.data_offset + self.data_bytes


def parse_safetensors_header(prefix: bytes, source: str = "<bytes>") -> SafetensorsHeader:
    """Parse a header from the first bytes of a file (8 + header length of them at least)."""
    if len(prefix) < 8:
        raise FormatError(f"{source}: too short to be safetensors ({len(prefix)} bytes)")
    (length,) = struct.unpack("<Q", prefix[:8])
    if length > MAX_HEADER_BYTES:
        raise FormatError(f"{source}: not a safetensors file (header length {length} is implausible)")
    if len(prefix) < 8 + length:
        raise FormatError(f"{source}: cut short inside its safetensors header")
    try:
        raw = json.loads(prefix[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{source}: safetensors header is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise FormatError(f"{source}: safetensors header is not a JSON object")
    metadata = raw.pop("__metadata__", None) or {}
    tensors = []
    end = 0
    for name, entry in raw.items():
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(d) for d in entry["shape"])
            begin, stop = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{source}: tensor {name!r} has a malformed header entry") from None
        if stop < begin:
            raise FormatError(f"{source}: tensor {name!r} has a negative byte range")
        tensors.append(TensorInfo(name=name, dtype=dtype, shape=shape, nbytes=stop - begin))
        end = max(end, stop)
    return SafetensorsHeader(
        tensors=tuple(tensors),
        metadata={str(k): str(v) for k, v in metadata.items()},
        data_offset=8 + length,
        data_bytes=end,
    )


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Read one file's header from disk (two small reads, no weights)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise FormatError(f"{path}: too short to be safetensors ({len(head)} bytes)")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise FormatError(f"{path}: not a safetensors file (header length {length} is implausible)")
            return parse_safetensors_header(head + f.read(length), str(path))
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror})") from None


def read_safetensors_headers(files: Iterable[Path]) -> tuple[list[TensorInfo], int]:
    """The tensors and the total tensor-data bytes of a model's safetensors files (its shards)."""
    tensors: list[TensorInfo] = []
    data_bytes = 0
    for file in files:
        header = read_safetensors_header(file)
        tensors.extend(header.tensors)
        data_bytes += header.data_bytes
    return tensors, data_bytes


def check_safetensors_file(path: Path) -> SafetensorsHeader:
    """A whole file: its header parses and its size is exactly header + tensor data."""
    header = read_safetensors_header(path)
    size = path.stat().st_size
    if size != header.expected_file_size:
        raise FormatError(
            f"{path}: {size} bytes on disk but its header describes {header.expected_file_size}; "
            "the file is truncated or corrupt — pull it again"
        )
    return header


@dataclass(frozen=True)
class GgufHeader:
    version: int
    tensor_count: int
    metadata_count: int


def read_gguf_header(path: Path) -> GgufHeader:
    """The fixed GGUF preamble: magic, version, tensor and metadata counts."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror})") from None
    if len(head) < 24 or head[:4] != GGUF_MAGIC:
        raise FormatError(f"{path}: not a GGUF file (no GGUF magic bytes)")
    version, tensors, kv = struct.unpack("<IQQ", head[4:24])
    if version not in (1, 2, 3):
        raise FormatError(f"{path}: unsupported GGUF version {version}")
    return GgufHeader(version=version, tensor_count=tensors, metadata_count=kv)


# GGUF metadata value types: fixed sizes, then string (8) and array (9)
_GGUF_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


class _CutShort(Exception):
    pass


class _GgufCursor:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _CutShort
        self.pos += n

    def uint(self, size: int) -> int:
        start = self.pos
        self.skip(size)
        return int.from_bytes(self.data[start : self.pos], "little")

    def value(self, kind: int) -> None:
        if kind in _GGUF_SCALAR_BYTES:
            self.skip(_GGUF_SCALAR_BYTES[kind])
        elif kind == _GGUF_STRING:
            self.skip(self.uint(8))
        elif kind == _GGUF_ARRAY:
            item, count = self.uint(4), self.uint(8)
            if item in _GGUF_SCALAR_BYTES:  # one jump, not a loop over a million token scores
                self.skip(_GGUF_SCALAR_BYTES[item] * count)
            else:
                for _ in range(count):
                    self.value(item)
        else:
            raise FormatError(f"{self.source}: unknown GGUF value type {kind}")


def gguf_header_length(prefix: bytes, source: str = "<bytes>") -> int | None:
    """How many leading bytes of a GGUF file hold its metadata and tensor table (all a planner
    reads); None when `prefix` ends before they do."""
    if len(prefix) >= 4 and prefix[:4] != GGUF_MAGIC:
        raise FormatError(f"{source}: not a GGUF file (no GGUF magic bytes)")
    cursor = _GgufCursor(prefix, source)
    try:
        cursor.skip(4)
        version = cursor.uint(4)
        if version not in (2, 3):
            raise FormatError(f"{source}: unsupported GGUF version {version}")
        tensors, entries = cursor.uint(8), cursor.uint(8)
        for _ in range(entries):
            cursor.value(_GGUF_STRING)  # the key
            cursor.value(cursor.uint(4))
        for _ in range(tensors):
            cursor.value(_GGUF_STRING)  # the name
            cursor.skip(8 * cursor.uint(4) + 4 + 8)  # dimensions, type, data offset
    except _CutShort:
        return None
    return cursor.pos


def is_pickle(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES)


def weight_formats(names: Iterable[str]) -> set[str]:
    """Which weight formats a file list holds: {"safetensors", "gguf", "pickle"}."""
    found = set()
    for name in names:
        if name.endswith(SAFETENSORS_SUFFIX):
            found.add("safetensors")
        elif name.endswith(GGUF_SUFFIX):
            found.add("gguf")
        elif is_pickle(name):
            found.add("pickle")
    return found


def pickle_refusal(where: str, pickles: list[str]) -> str:
    """The one message for a pickle-only model, whichever source it came from."""
    shown = ", ".join(sorted(pickles)[:3]) + (" …" if len(pickles) > 3 else "")
    return (
        f"{where} only has pickle weights ({shown}); loading pickle can execute arbitrary code. "
        "Use a safetensors revision of the model (or convert it), or opt in if you trust the source: "
        '`--allow-pickle` (on `models pull` and `serve`; for an endpoint, model.args ["--allow-pickle"]).'
    )


def header_summary(header: SafetensorsHeader) -> dict[str, Any]:
    params = sum(t.numel for t in header.tensors)
    return {"tensors": len(header.tensors), "parameters": params, "bytes": header.data_bytes}
