"""A hostile model source cannot make a pull write or delete anything outside the weight cache.

The S3 source is a real S3-compatible server (moto, spoken to by boto3 over HTTP), which stores
and lists any key as given; the Hub is tests.support.hub_standin, told to list files under names no
folder can hold and to report any string as the commit, with `modelport models pull` run as a
child process (huggingface_hub reads HF_ENDPOINT once, at import). Each pull must be refused
with the bad name in its message, leave no snapshot or manifest, and leave a sentinel folder
beside the cache, which the hostile names aim at, exactly as it was.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.models.cache import ModelCache
from modelport.models.pull import UnsafeListing, pull
from modelport.models.sources import parse_source
from tests.support.hub_standin import HubStandin
from tests.support.s3_server import put_objects, s3_server

REPO = "acme/tiny"
# `{sentinel}` is the sentinel folder's absolute path without its leading '/'. From the folder a
# snapshot is built in (<cache>/tmp/<pull>/snapshot), four '..' reach the folder that holds both.
HOSTILE_FILES = [
    "../evil.json",
    "a/../../../../../sentinel/evil.json",
    "/{sentinel}/evil.json",
    "C:\\evil.json",
    "a\\evil.json",
    "a\x00b.json",
    "a//evil.json",
    "./evil.json",
    "a/./evil.json",
    ".",
]


def safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 8


MODEL = {"config.json": b'{"model_type": "llama"}', "model.safetensors": safetensors_bytes()}


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    """(cache root, sentinel folder beside it holding one file)."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("untouched")
    return tmp_path / "cache", sentinel


def outside(base: Path, cache: Path) -> dict[str, str]:
    """Every path under `base` but outside the cache, with what it holds (a link: its target)."""
    found = {}
    for path in sorted(base.rglob("*")):
        if path.is_relative_to(cache):
            continue
        if path.is_symlink():
            found[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path)] = path.read_text()
        else:
            found[str(path)] = "<dir>"
    return found


def assert_nothing_kept(cache: Path, base: Path, before: dict[str, str]) -> None:
    assert outside(base, cache) == before
    for folder in ("snapshots", "manifests", "refs"):
        assert not (cache / folder).exists() or not any((cache / folder).rglob("*")), folder


def hostile(name: str, sentinel: Path) -> str:
    return name.format(sentinel=str(sentinel).lstrip("/"))


# --- S3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_an_s3_key_that_is_not_a_plain_relative_path_is_refused_and_nothing_is_written(
    name: str, s3_url: str, place: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", s3_url)
    cache, sentinel = place
    bad = hostile(name, sentinel)
    prefix = f"case-{HOSTILE_FILES.index(name)}"
    put_objects(
        s3_url, "hostile", {**{f"{prefix}/{k}": v for k, v in MODEL.items()}, f"{prefix}/{bad}": b"{}"}
    )
    before = outside(tmp_path, cache)

    with pytest.raises(UnsafeListing) as refused:
        pull(parse_source(f"s3://hostile/{prefix}"), ModelCache(cache))

    assert repr(bad) in str(refused.value)
    assert "nothing was pulled" in str(refused.value)
    assert_nothing_kept(cache, tmp_path, before)


def test_s3_keys_that_are_a_file_and_a_folder_at_once_are_refused(
    s3_url: str, place: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPORT_S3_ENDPOINT_URL", s3_url)
    cache, _ = place
    objects = {
        "clash/config.json": MODEL["config.json"],
        "clash/model.safetensors": MODEL["model.safetensors"],
    }
    put_objects(s3_url, "hostile", {**objects, "clash/sub.json": b"{}", "clash/sub.json/x.json": b"{}"})
    before = outside(tmp_path, cache)

    with pytest.raises(UnsafeListing, match=r"'sub\.json' is listed as a file and as the folder"):
        pull(parse_source("s3://hostile/clash"), ModelCache(cache))
    assert_nothing_kept(cache, tmp_path, before)


# --- the Hub ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "tiny"
    folder.mkdir()
    for name, data in MODEL.items():
        (folder / name).write_bytes(data)
    (folder / "extra.json").write_text("{}")
    return folder


def models_pull(hub: HubStandin, cache: Path, home: Path, source: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "MODELPORT_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HUB_OFFLINE="0",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        MODELPORT_MODEL_CACHE=str(cache),
        COLUMNS="1000",  # one line per message, so the name is not wrapped
    )
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "models", "pull", source],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "name", ["a/../../../../../sentinel/evil.json", "/{sentinel}/evil.json", "a\x00b.json"]
)
def test_a_hub_file_name_that_is_not_a_plain_relative_path_is_refused_and_nothing_is_written(
    name: str, model_dir: Path, place: tuple[Path, Path], tmp_path: Path
) -> None:
    cache, sentinel = place
    bad = hostile(name, sentinel)
    with HubStandin({REPO: model_dir}) as hub:
        hub.list_file(REPO, bad, model_dir / "extra.json")
        before = outside(tmp_path, cache)
        done = models_pull(hub, cache, tmp_path / "hf", REPO)

    assert done.returncode == 1, done.stderr
    assert "refused: the source lists a file" in done.stderr
    assert repr(bad) in done.stderr, done.stderr
    assert_nothing_kept(cache, tmp_path, before)


@pytest.mark.parametrize("sha", ["../../../sentinel", "..", "a/b", "A" * 40])
def test_a_hub_commit_that_is_not_40_hex_digits_is_refused_and_nothing_is_deleted(
    sha: str, model_dir: Path, place: tuple[Path, Path], tmp_path: Path
) -> None:
    cache, _ = place
    with HubStandin({REPO: model_dir}) as hub:
        hub.set_commit(REPO, sha)
        before = outside(tmp_path, cache)
        done = models_pull(hub, cache, tmp_path / "hf", REPO)

    assert done.returncode == 1, done.stderr
    assert f"named commit {sha!r}, which is not a 40-hex commit id" in done.stderr
    assert_nothing_kept(cache, tmp_path, before)


def test_the_sentinel_survives_a_pull_that_is_allowed(
    model_dir: Path, place: tuple[Path, Path], tmp_path: Path
) -> None:
    """The same stand-in and checks pass for a plain repository: the refusals above are the names'."""
    cache, _ = place
    with HubStandin({REPO: model_dir}) as hub:
        before = outside(tmp_path, cache)
        done = models_pull(hub, cache, tmp_path / "hf", REPO)
        commit = hub.commit(REPO)

    assert done.returncode == 0, done.stderr
    assert outside(tmp_path, cache) == before
    snapshot = cache / "snapshots" / "hub--acme--tiny" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "extra.json", "model.safetensors"]
