"""fetch_plan_folder over an in-memory ranged remote: which bytes it reads, and that the folder it
writes plans exactly like the model itself. The real Hub routes and a real S3 server are exercised in
tests/integration/models/test_remote_plan.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelport.models.formats import gguf_header_length
from modelport.models.inspect import SOURCE_CONFIG, SOURCE_GGUF, inspect_model
from modelport.models.remote import PullError, RemoteFile, RemoteListing, Write, take_range
from modelport.models.remote_headers import GGUF_FIRST_READ, SAFETENSORS_FIRST_READ, fetch_plan_folder
from modelport.models.sources import ModelSource, parse_source
from tests.support.model_headers import (
    SMALL_LLAMA,
    llama_tensors,
    write_gguf,
    write_header_only,
    write_hub_folder,
)

SMALL = SMALL_LLAMA


class FolderRemote:
    """A local folder listed and read the way HubRemote / S3Remote do it, recording every read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reads: list[tuple[str, int, int]] = []

    def listing(self, source: ModelSource) -> RemoteListing:
        files = tuple(
            RemoteFile(path=p.relative_to(self.folder).as_posix(), size=p.stat().st_size)
            for p in sorted(self.folder.rglob("*"))
            if p.is_file()
        )
        return RemoteListing(revision="c" * 40, files=files)

    def download(self, source: ModelSource, listing: RemoteListing, file: RemoteFile, write: Write) -> None:
        raise AssertionError("planning must never download a whole file")

    def read_range(
        self, source: ModelSource, listing: RemoteListing, file: RemoteFile, start: int, stop: int
    ) -> bytes:
        self.reads.append((file.path, start, stop))
        with (self.folder / file.path).open("rb") as f:
            f.seek(start)
            return f.read(max(min(stop, file.size) - start, 0))


def test_a_sharded_checkpoint_is_planned_from_one_small_read_per_shard(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_hub_folder(model, SMALL, llama_tensors(SMALL), shards=3)
    (model / "generation_config.json").write_text("{}")
    (model / "tokenizer.json").write_text("{}")
    (model / "original").mkdir()
    write_header_only(model / "original" / "consolidated.safetensors", llama_tensors(SMALL))
    remote = FolderRemote(model)
    out = fetch_plan_folder(parse_source("acme/small"), tmp_path / "plan", remote)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "generation_config.json", "model.safetensors.index.json"]
        + [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    )
    shards = sorted(r for r in remote.reads if r[0].endswith(".safetensors"))
    assert shards == [(f"model-0000{i}-of-00003.safetensors", 0, SAFETENSORS_FIRST_READ) for i in (1, 2, 3)]
    planned, local = inspect_model(out), inspect_model(model)
    assert planned.parameters == local.parameters
    assert planned.checkpoint_bytes == local.checkpoint_bytes
    assert (planned.parameter_source, planned.notes) == (local.parameter_source, local.notes)


def test_a_header_longer_than_the_first_read_takes_a_second(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(SMALL))
    tensors = {f"model.extra.{i}.weight": ("BF16", (4, 4)) for i in range(2000)}
    write_header_only(model / "model.safetensors", tensors)
    size = (model / "model.safetensors").stat().st_size
    assert size > SAFETENSORS_FIRST_READ
    remote = FolderRemote(model)
    out = fetch_plan_folder(parse_source("acme/wide"), tmp_path / "plan", remote)
    assert sorted(r for r in remote.reads if r[0] == "model.safetensors") == [
        ("model.safetensors", 0, SAFETENSORS_FIRST_READ),
        ("model.safetensors", SAFETENSORS_FIRST_READ, size),
    ]
    assert inspect_model(out).parameters.total == 2000 * 16


def test_pickle_weights_are_never_read_and_the_plan_comes_from_the_config(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(SMALL))
    (model / "pytorch_model.bin").write_bytes(b"\x80\x02pickle" * 1000)
    remote = FolderRemote(model)
    info = inspect_model(fetch_plan_folder(parse_source("acme/old"), tmp_path / "plan", remote))
    assert [r[0] for r in remote.reads] == ["config.json"]
    assert info.parameter_source == SOURCE_CONFIG
    assert any("only pickle weights (pytorch_model.bin" in n for n in info.notes)


def test_a_folder_that_is_not_a_model_says_so(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "chat.Q4_K_M.gguf").write_bytes(b"GGUF")
    with pytest.raises(PullError, match=r"name one, e\.g\. acme/chat/chat\.Q4_K_M\.gguf"):
        fetch_plan_folder(parse_source("acme/chat"), tmp_path / "plan", FolderRemote(model))
    (model / "config.json").write_text(json.dumps(SMALL))
    (model / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(PullError, match="not a safetensors file"):
        fetch_plan_folder(parse_source("acme/chat"), tmp_path / "plan", FolderRemote(model))


def test_a_split_gguf_is_planned_from_growing_reads_of_each_shard_header(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    write_gguf(model / "chat.gguf", tokens=8000, split_max_tensors=6, pad=160)
    names = sorted(p.name for p in model.iterdir())
    assert names == ["chat-00001-of-00002.gguf", "chat-00002-of-00002.gguf"]
    first = model / names[0]
    assert first.stat().st_size > GGUF_FIRST_READ  # the token list alone is over 1 MiB
    remote = FolderRemote(model)
    out = fetch_plan_folder(parse_source(f"acme/chat/{names[0]}"), tmp_path / "plan", remote)
    assert out == tmp_path / "plan" / names[0]
    assert sorted(r[:2] for r in remote.reads) == [  # read side by side; the first header takes two
        (names[0], 0),
        (names[0], GGUF_FIRST_READ),
        (names[1], 0),
    ]
    for name in names:
        copy = tmp_path / "plan" / name
        assert copy.stat().st_size == (model / name).stat().st_size
        assert copy.stat().st_blocks * 512 < 2 * GGUF_FIRST_READ + 65536  # a hole, not the tensor data
    planned, local = inspect_model(out), inspect_model(first)
    assert planned.parameter_source == SOURCE_GGUF
    assert (planned.parameters, planned.checkpoint_bytes) == (local.parameters, local.checkpoint_bytes)
    assert planned.facts == local.facts


def test_gguf_header_length_waits_for_the_whole_table(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_gguf(path)
    data = path.read_bytes()
    end = gguf_header_length(data)
    assert end is not None and 0 < end < len(data)
    assert gguf_header_length(data[: end - 1]) is None
    assert gguf_header_length(data[:end]) == end
    assert gguf_header_length(data[:3]) is None


def test_take_range_reads_no_further_than_asked() -> None:
    chunks = iter([b"abcd", b"efgh", b"ijkl", b"never read"])
    assert take_range(chunks, 0, 6) == b"abcdef"
    assert next(chunks) == b"ijkl"  # stopped after the chunk that completed the range
    assert take_range(iter([b"abcd", b"efgh"]), 5, 2) == b"fg"  # a 200 to a ranged GET: skip to start
