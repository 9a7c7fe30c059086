"""The weight cache writes and deletes only under its root, whatever names a manifest carries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelport.models.cache import CachedFile, Manifest, ModelCache
from modelport.models.safe_paths import UnsafeName
from modelport.models.sources import ModelSource

KEY = "hub--acme--chat"
REV = "c" * 40


@pytest.fixture
def cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "cache")


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    folder = tmp_path / "sentinel"
    folder.mkdir()
    (folder / "keep.txt").write_text("untouched")
    return folder


def stored(cache: ModelCache, data: bytes) -> CachedFile:
    staged = cache.root / "incoming"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    cache.add_blob(staged, digest)
    return CachedFile(path="config.json", size=len(data), sha256=digest)


def manifest(files: tuple[CachedFile, ...], revision: str = REV, refs: tuple[str, ...] = ()) -> Manifest:
    return Manifest(KEY, "acme/chat", "hub", revision, files, 0.0, refs)


def everything(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*"))


@pytest.mark.parametrize(
    "path", ["../../../../sentinel/x.json", "/etc/x.json", "a\\b.json", "a//b.json", "."]
)
def test_commit_refuses_a_file_path_that_leaves_the_snapshot(
    path: str, cache: ModelCache, sentinel: Path, tmp_path: Path
) -> None:
    good = stored(cache, b"{}")
    bad = CachedFile(path=path, size=good.size, sha256=good.sha256)
    before = everything(tmp_path)
    with pytest.raises(UnsafeName):
        cache.commit(manifest((good, bad)))
    assert everything(tmp_path) == before
    assert cache.manifests() == []


@pytest.mark.parametrize("revision", ["../../../sentinel", "..", "a/b", ""])
def test_commit_and_remove_refuse_a_revision_that_is_not_one_folder_name(
    revision: str, cache: ModelCache, sentinel: Path, tmp_path: Path
) -> None:
    hostile = manifest((stored(cache, b"{}"),), revision=revision)
    before = everything(tmp_path)
    with pytest.raises(UnsafeName):
        cache.commit(hostile)
    with pytest.raises(UnsafeName):
        cache.remove(hostile)  # `models rm` of a manifest carrying such a revision
    assert everything(tmp_path) == before
    assert (sentinel / "keep.txt").read_text() == "untouched"


def test_a_snapshot_folder_reached_through_a_link_out_of_the_cache_is_never_deleted(
    cache: ModelCache, sentinel: Path
) -> None:
    (sentinel / REV).mkdir()
    (sentinel / REV / "weights").write_text("someone else's")
    (cache.root / "snapshots").mkdir(parents=True)
    (cache.root / "snapshots" / KEY).symlink_to(sentinel)
    one = manifest((stored(cache, b"{}"),))
    with pytest.raises(UnsafeName, match="not a snapshot folder"):
        cache.commit(one)
    with pytest.raises(UnsafeName, match="not a snapshot folder"):
        cache.remove(one)
    assert (sentinel / REV / "weights").read_text() == "someone else's"


def test_a_manifest_on_disk_with_a_hostile_name_is_not_loaded(cache: ModelCache) -> None:
    good = manifest((stored(cache, b"{}"),))
    cache.commit(good)
    data = good.to_json()
    data["revision"] = "d" * 40
    data["files"][0]["path"] = "../../../x.json"
    (cache.root / "manifests" / KEY / f"{'d' * 40}.json").write_text(json.dumps(data))
    assert [m.revision for m in cache.manifests()] == [REV]  # `models list` / `rm` never see it
    with pytest.raises(UnsafeName):
        cache.manifest(KEY, "d" * 40)


def test_a_branch_with_a_slash_is_one_ref_file_and_resolves(cache: ModelCache) -> None:
    cache.commit(manifest((stored(cache, b"{}"),), refs=("refs/pr/1",)))
    assert (cache.root / "refs" / KEY / "refs%2Fpr%2F1").read_text() == REV
    found = cache.lookup(ModelSource("hub", "acme/chat", "refs/pr/1"), "main")
    assert found is not None and found.revision == REV
    assert (cache.path_of(found) / "config.json").read_bytes() == b"{}"
