"""Pulling into the cache: file choice, verification, dedupe, and nothing left behind on failure.

The remote here is an in-memory stand-in for the Hub/S3 listing and byte stream, because these
tests are about the puller and the cache; the real Hub routes and a real S3 server are exercised
in tests/integration/models and tests/e2e/test_model_sources.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from modelport.models.cache import ModelCache
from modelport.models.pull import PickleRefused, PullProgress, UnsafeListing, pull, resolve, select_files
from modelport.models.remote import Advance, PullError, RemoteFile, RemoteListing, Write
from modelport.models.sources import ModelSource, parse_source


def safetensors_bytes(n_floats: int) -> bytes:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}
    ).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * (4 * n_floats)


class MemoryRemote:
    def __init__(self, files: dict[str, bytes], revision: str = "a" * 40) -> None:
        self.files = dict(files)
        self.revision = revision
        self.served: dict[str, bytes] = {}  # what download sends, when it differs from the listing
        self.fail_on: str | None = None
        self.downloads: list[str] = []

    def listing(self, source: ModelSource) -> RemoteListing:
        listed = tuple(
            RemoteFile(path=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            for name, data in self.files.items()
        )
        return RemoteListing(revision=self.revision, files=listed)

    def download(self, source: ModelSource, listing: RemoteListing, file: RemoteFile, write: Write) -> None:
        self.downloads.append(file.path)
        if file.path == self.fail_on:
            write(b"partial")
            raise PullError(f"connection reset while fetching {file.path}")
        write(self.served.get(file.path, self.files[file.path]))


class Offline:
    def listing(self, source: ModelSource) -> RemoteListing:
        raise AssertionError("a cached model must resolve without the network")

    def download(self, source: ModelSource, listing: RemoteListing, file: RemoteFile, write: Write) -> None:
        raise AssertionError("a cached model must resolve without the network")


MODEL = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": safetensors_bytes(1000),
    "tokenizer.json": b"{}",
    "README.md": b"# card",
    "modeling_evil.py": b"import os",
    "pytorch_model.bin": b"pickle",
}
SOURCE = parse_source("acme/chat")


def leftovers(cache: ModelCache) -> list[str]:
    return sorted(
        str(p.relative_to(cache.root))
        for p in cache.root.rglob("*")
        if p.is_file() and "locks" not in p.parts
    )


def test_pull_fetches_what_a_server_needs_and_reuses_it_next_time(tmp_path: Path) -> None:
    cache, remote = ModelCache(tmp_path), MemoryRemote(MODEL)
    first = pull(SOURCE, cache, remote=remote)
    assert sorted(os.listdir(first.path)) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (first.path / "model.safetensors").read_bytes() == MODEL["model.safetensors"]
    assert first.downloaded_bytes == sum(len(MODEL[n]) for n in os.listdir(first.path))
    again = pull(SOURCE, cache, remote=remote)
    assert (again.downloaded_bytes, again.path) == (0, first.path)
    assert remote.downloads.count("model.safetensors") == 1
    assert cache.verify(first.manifest) == []
    assert resolve("acme/chat", None, cache, pull_missing=False) == first.path


def test_a_new_revision_reuses_unchanged_blobs(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    pull(SOURCE, cache, remote=MemoryRemote(MODEL, revision="a" * 40))
    changed = {**MODEL, "config.json": b'{"model_type": "llama", "x": 1}'}
    second = pull(parse_source("acme/chat@v2"), cache, remote=MemoryRemote(changed, revision="b" * 40))
    assert second.reused_bytes == len(MODEL["model.safetensors"]) + len(MODEL["tokenizer.json"])
    assert second.downloaded_bytes == len(changed["config.json"])
    assert {m.revision for m in cache.manifests()} == {"a" * 40, "b" * 40}
    # both revisions resolve offline, by ref and by commit
    assert resolve("acme/chat@v2", None, cache, pull_missing=False) == second.path
    assert resolve("acme/chat", "a" * 40, cache, pull_missing=False).name == "a" * 40


def test_cached_sources_resolve_without_any_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ModelCache(tmp_path)
    pull(SOURCE, cache, remote=MemoryRemote(MODEL))
    monkeypatch.setattr("modelport.models.pull.remote_for", lambda source: Offline())
    path = resolve("acme/chat", None, cache, pull_missing=True)
    assert (path / "config.json").exists()
    with pytest.raises(AssertionError, match="without the network"):
        resolve("acme/other", None, cache, pull_missing=True)  # not cached: this one would pull
    with pytest.raises(PullError, match="models pull acme/other"):
        resolve("acme/other", None, cache, pull_missing=False)


def test_pickle_only_models_are_refused_unless_allowed(tmp_path: Path) -> None:
    pickle_only = {"config.json": b"{}", "pytorch_model.bin": b"pickle", "tokenizer.json": b"{}"}
    cache = ModelCache(tmp_path)
    with pytest.raises(PickleRefused) as info:
        pull(SOURCE, cache, remote=MemoryRemote(pickle_only))
    assert "pytorch_model.bin" in info.value.args[0]
    assert "execute arbitrary code" in info.value.args[0] and "--allow-pickle" in info.value.args[0]
    assert leftovers(cache) == []
    allowed = pull(SOURCE, cache, remote=MemoryRemote(pickle_only), allow_pickle=True)
    assert (allowed.path / "pytorch_model.bin").exists()


def test_file_choice_follows_the_opt_ins() -> None:
    files = [RemoteFile(name, len(data)) for name, data in MODEL.items()]
    names = {f.path for f in select_files(files, False, allow_pickle=True, trust_remote_code=True, where="x")}
    assert names == {"config.json", "model.safetensors", "tokenizer.json", "modeling_evil.py"}
    gguf_only = [RemoteFile("config.json", 2), RemoteFile("chat.Q4_K_M.gguf", 10)]
    with pytest.raises(PullError, match=r"name one, e\.g\. x/chat\.Q4_K_M\.gguf"):
        select_files(gguf_only, False, False, False, "x")
    with pytest.raises(PullError, match=r"no config\.json"):
        select_files([RemoteFile("model.safetensors", 10)], False, False, False, "x")


def test_bytes_that_do_not_match_the_listing_are_rejected_and_nothing_is_kept(tmp_path: Path) -> None:
    cache, remote = ModelCache(tmp_path), MemoryRemote(MODEL)
    tampered = bytearray(MODEL["model.safetensors"])
    tampered[-1] = 1
    remote.served["model.safetensors"] = bytes(tampered)
    with pytest.raises(PullError, match="sha256 differs"):
        pull(SOURCE, cache, remote=remote)
    assert cache.manifests() == []
    cache.gc()
    assert leftovers(cache) == []


def test_a_truncated_safetensors_file_fails_its_header_check(tmp_path: Path) -> None:
    cut = MODEL["model.safetensors"][:-100]
    remote = MemoryRemote({**MODEL, "model.safetensors": cut})
    with pytest.raises(PullError, match="truncated or corrupt"):
        pull(SOURCE, ModelCache(tmp_path), remote=remote)


def test_a_pull_cut_short_leaves_no_usable_snapshot_and_gc_reclaims_it(tmp_path: Path) -> None:
    cache, remote = ModelCache(tmp_path), MemoryRemote(MODEL)
    remote.fail_on = "tokenizer.json"
    with pytest.raises(PullError, match="connection reset"):
        pull(SOURCE, cache, remote=remote)
    assert cache.lookup(SOURCE, "main") is None
    assert cache.gc() > 0  # the files fetched before the failure
    assert leftovers(cache) == []
    remote.fail_on = None
    assert pull(SOURCE, cache, remote=remote).manifest.files


def test_verify_finds_a_corrupted_blob_and_rm_frees_it(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    result = pull(SOURCE, cache, remote=MemoryRemote(MODEL))
    blob = (result.path / "model.safetensors").resolve()
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    assert cache.verify(result.manifest, full=False) == []  # same size, header intact
    assert cache.verify(result.manifest) == ["model.safetensors: content does not match its sha256 (corrupt)"]
    freed = cache.remove(result.manifest)
    assert freed == result.manifest.total_bytes
    assert leftovers(cache) == []


def test_one_gguf_file_of_a_repository(tmp_path: Path) -> None:
    gguf = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    remote = MemoryRemote({**MODEL, "chat.Q4_K_M.gguf": gguf, "chat.Q8_0.gguf": gguf + b"\0"})
    cache = ModelCache(tmp_path)
    result = pull(parse_source("acme/chat-GGUF/chat.Q4_K_M.gguf"), cache, remote=remote)
    assert result.path.name == "chat.Q4_K_M.gguf" and result.path.read_bytes() == gguf
    assert remote.downloads == ["chat.Q4_K_M.gguf"]
    assert resolve("acme/chat-GGUF/chat.Q4_K_M.gguf", None, cache, pull_missing=False) == result.path
    with pytest.raises(PullError, match=r"has no file chat\.Q2_K\.gguf"):
        pull(parse_source("acme/chat-GGUF/chat.Q2_K.gguf"), cache, remote=remote)
    remote.files["bad.gguf"] = b"not gguf at all, no magic"
    with pytest.raises(PullError, match="not a GGUF file"):
        pull(parse_source("acme/chat-GGUF/bad.gguf"), cache, remote=remote)


def test_a_pull_the_disk_cannot_hold_is_refused_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    total, free = 10 * 2**30, 2**30 + 100  # 100 bytes beyond the reserve
    monkeypatch.setattr(
        "modelport.models.pull.shutil.disk_usage",
        lambda path: shutil._ntuple_diskusage(total, total - free, free),
    )
    remote = MemoryRemote(MODEL)
    with pytest.raises(PullError, match=r"needs 0\.0 GB .* but 0\.0 GB is free .*MODELPORT_MODEL_CACHE"):
        pull(SOURCE, ModelCache(tmp_path), remote=remote)
    assert remote.downloads == []


@pytest.mark.parametrize(
    ("files", "revision", "named"),
    [
        ({**MODEL, "a/../../../x.json": b"{}"}, "a" * 40, "'a/../../../x.json'"),
        ({**MODEL, "/etc/x.json": b"{}"}, "a" * 40, "'/etc/x.json'"),
        (MODEL, "../../x", "revision '../../x'"),
        (MODEL, "a/b", "revision 'a/b'"),
    ],
)
def test_any_remote_listing_a_hostile_name_is_refused_before_a_download(
    files: dict[str, bytes], revision: str, named: str, tmp_path: Path
) -> None:
    remote = MemoryRemote(files, revision=revision)
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(UnsafeListing, match="nothing was pulled") as refused:
        pull(SOURCE, cache, remote=remote)
    assert named in str(refused.value)
    assert remote.downloads == []
    assert leftovers(cache) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


class FolderMemoryRemote(MemoryRemote):
    """A remote that fetches a batch into a folder itself, as the Hub's does (snapshot_download)."""

    def __init__(self, files: dict[str, bytes], revision: str = "a" * 40) -> None:
        super().__init__(files, revision)
        self.folders: list[Path] = []
        self.asked: list[list[str]] = []

    def download_into(
        self,
        source: ModelSource,
        listing: RemoteListing,
        files: Sequence[RemoteFile],
        dest: Path,
        advance: Advance,
    ) -> None:
        self.folders.append(dest)
        self.asked.append([f.path for f in files])
        for file in files:
            if (dest / file.path).exists():  # finished by an earlier, interrupted call
                continue
            if file.path == self.fail_on:
                raise PullError(f"connection reset while fetching {file.path}")
            data = self.served.get(file.path, self.files[file.path])
            (dest / file.path).write_bytes(data)
            advance(len(data))


class Progress(PullProgress):
    def __init__(self) -> None:
        self.bytes = 0
        self.done: list[tuple[str, bool]] = []

    def advance(self, nbytes: int) -> None:
        self.bytes += nbytes

    def file_done(self, path: str, reused: bool) -> None:
        self.done.append((path, reused))


def test_a_folder_remote_fetches_only_what_the_cache_lacks(tmp_path: Path) -> None:
    cache, progress = ModelCache(tmp_path), Progress()
    pull(SOURCE, cache, remote=MemoryRemote(MODEL, revision="a" * 40))
    changed = {**MODEL, "config.json": b'{"model_type": "llama", "x": 1}'}
    remote = FolderMemoryRemote(changed, revision="b" * 40)
    result = pull(parse_source("acme/chat@v2"), cache, remote=remote, progress=progress)
    assert remote.asked == [["config.json"]]
    assert result.downloaded_bytes == len(changed["config.json"])
    assert progress.bytes == result.downloaded_bytes + result.reused_bytes
    assert ("config.json", False) in progress.done and ("model.safetensors", True) in progress.done
    assert (result.path / "config.json").read_bytes() == changed["config.json"]
    assert cache.verify(result.manifest) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_folder_download_cut_short_is_taken_up_by_the_next_pull(tmp_path: Path) -> None:
    cache, remote = ModelCache(tmp_path), FolderMemoryRemote(MODEL)
    remote.fail_on = "tokenizer.json"
    with pytest.raises(PullError, match="connection reset"):
        pull(SOURCE, cache, remote=remote)
    assert cache.manifests() == []
    staging = remote.folders[0]
    assert staging.parent == tmp_path / "tmp" and (staging / "config.json").exists()
    remote.fail_on = None
    result = pull(SOURCE, cache, remote=remote)
    assert remote.folders == [staging, staging]  # the same folder: what arrived is still there
    assert cache.verify(result.manifest) == []
    assert not staging.exists()


def test_a_folder_download_that_fails_its_checks_keeps_nothing(tmp_path: Path) -> None:
    cache, remote = ModelCache(tmp_path), FolderMemoryRemote(MODEL)
    tampered = bytearray(MODEL["model.safetensors"])
    tampered[-1] ^= 1
    remote.served["model.safetensors"] = bytes(tampered)
    with pytest.raises(PullError, match=r"model\.safetensors failed verification: sha256 differs"):
        pull(SOURCE, cache, remote=remote)
    assert leftovers(cache) == []
