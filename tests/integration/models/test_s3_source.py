"""Pulling from a real S3-compatible server (moto in server mode, spoken to over HTTP by boto3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelport.models.cache import ModelCache
from modelport.models.pull import pull, resolve
from modelport.models.remote import PullError
from modelport.models.sources import parse_source
from tests.support.s3_server import client, s3_server, upload_folder


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def s3_env(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", s3_url)
    return s3_url


def write_gguf(path: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_folder_pulls_verified_and_then_resolves_offline(
    s3_env: str, tiny_model: Path, tmp_path: Path
) -> None:
    upload_folder(s3_env, tiny_model, "weights", "ft/tiny")
    cache = ModelCache(tmp_path / "cache")
    result = pull(parse_source("s3://weights/ft/tiny"), cache)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (result.path / name).read_bytes() == (tiny_model / name).read_bytes()
    assert result.manifest.revision.startswith("v-")
    assert cache.verify(result.manifest) == []
    os.environ["MODELPORT_S3_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    assert resolve("s3://weights/ft/tiny", None, cache, pull_missing=True) == result.path


def test_multipart_objects_pull_without_an_md5_etag(s3_env: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    big = tmp_path / "src" / "model.safetensors"
    big.parent.mkdir()
    import json
    import struct

    n = 3 * 1024 * 1024  # 12 MiB of float32: three 5 MiB parts
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    big.write_bytes(struct.pack("<Q", len(header)) + header + os.urandom(4 * n))
    (tmp_path / "src" / "config.json").write_text('{"model_type": "llama"}')
    s3 = client(s3_env)
    s3.create_bucket(Bucket="multipart", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(big), "multipart", "m/model.safetensors", Config=config)
    s3.upload_file(str(tmp_path / "src" / "config.json"), "multipart", "m/config.json")
    assert "-" in s3.head_object(Bucket="multipart", Key="m/model.safetensors")["ETag"]
    result = pull(parse_source("s3://multipart/m"), ModelCache(tmp_path / "cache"))
    assert (result.path / "model.safetensors").read_bytes() == big.read_bytes()


def test_a_single_gguf_object(s3_env: str, tmp_path: Path) -> None:
    gguf_file = write_gguf(tmp_path / "chat.Q8_0.gguf")
    s3 = client(s3_env)
    s3.create_bucket(Bucket="gguf", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    s3.upload_file(str(gguf_file), "gguf", "chat/chat.Q8_0.gguf")
    s3.upload_file(str(gguf_file), "gguf", "chat/other.gguf")
    cache = ModelCache(tmp_path / "cache")
    result = pull(parse_source("s3://gguf/chat/chat.Q8_0.gguf"), cache)
    assert result.path.name == "chat.Q8_0.gguf" and result.path.is_file()
    assert result.path.read_bytes() == gguf_file.read_bytes()
    assert [f.path for f in result.manifest.files] == ["chat.Q8_0.gguf"]


def test_changed_content_is_a_new_version_and_old_pins_are_explained(s3_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x02\0\0\0\0\0\0\0{}")
    upload_folder(s3_env, folder, "versions", "m")
    cache = ModelCache(tmp_path / "cache")
    first = pull(parse_source("s3://versions/m"), cache)
    (folder / "config.json").write_text('{"model_type": "llama", "v": 2}')
    upload_folder(s3_env, folder, "versions", "m")
    second = pull(parse_source("s3://versions/m"), cache)
    assert second.manifest.revision != first.manifest.revision
    assert second.downloaded_bytes == (folder / "config.json").stat().st_size
    assert resolve("s3://versions/m", None, cache, pull_missing=False) == second.path  # "latest"
    assert (
        resolve(f"s3://versions/m@{first.manifest.revision}", None, cache, pull_missing=False) == first.path
    )
    cache.remove(first.manifest)
    with pytest.raises(PullError, match="S3 keeps no history"):
        pull(parse_source(f"s3://versions/m@{first.manifest.revision}"), cache)


def test_errors_say_what_is_wrong(s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(PullError, match="NoSuchBucket"):
        pull(parse_source("s3://no-such-bucket/x"), cache)
    upload_folder(s3_env, tmp_path, "empty-prefix", "elsewhere")
    with pytest.raises(PullError, match="no objects under this prefix"):
        pull(parse_source("s3://empty-prefix/missing"), cache)
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(PullError, match=r"127\.0\.0\.1:9"):
        pull(parse_source("s3://weights/ft/tiny"), cache)
    assert cache.manifests() == []
