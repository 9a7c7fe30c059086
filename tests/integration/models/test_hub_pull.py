"""`pull` from the Hub through huggingface_hub's snapshot_download, against tests.support.hub_standin.

Each pull runs in a child process: this test process sets HF_HUB_OFFLINE=1 (tests/conftest.py),
and huggingface_hub reads it, and HF_ENDPOINT, once at import. The child reports what the pull
returned, or the error it raised, and every progress event, as JSON.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.models.cache import ModelCache
from modelport.models.demo import build_llama
from modelport.models.pull import resolve
from tests.support.hub_standin import HubStandin

REPO = "acme/tiny"
SKIPPED = ("pytorch_model.bin", "README.md", "modeling_tiny.py", "onnx/model.onnx")
BIG = "big.safetensors"
# 24 MB: huggingface_hub reads a body in 10 MiB chunks and resumes after the last whole one
BIG_FLOATS = 6_000_000
CUT = 12_000_000  # where the stand-in drops the connection while sending BIG

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    from modelport.models.cache import ModelCache
    from modelport.models.pull import PullProgress, pull
    from modelport.models.remote import PullError
    from modelport.models.sources import parse_source

    class Recorder(PullProgress):
        def __init__(self):
            self.events, self.lock = [], threading.Lock()
        def start(self, total_files, total_bytes):
            self.events.append(["start", total_files, total_bytes])
        def file_started(self, path, size):
            self.events.append(["file_started", path, size])
        def advance(self, nbytes):
            with self.lock:
                self.events.append(["advance", nbytes, threading.current_thread().name])
        def file_done(self, path, reused):
            self.events.append(["file_done", path, reused])

    args = json.loads(sys.argv[1])
    progress = Recorder()
    try:
        result = pull(parse_source(args["source"]), ModelCache(Path(args["cache"])), progress=progress)
        out = {"path": str(result.path), "downloaded": result.downloaded_bytes, "reused": result.reused_bytes,
               "files": {f.path: f.sha256 for f in result.manifest.files}}
    except PullError as exc:
        out = {"error": str(exc)}
    print(json.dumps({**out, "events": progress.events}))
    """
)


def pull_in_child(hub: HubStandin, cache: Path, home: Path, source: str = REPO) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "MODELPORT_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({"source": source, "cache": str(cache)})],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "|" not in done.stderr, done.stderr[-4000:]  # huggingface_hub's own bars stay hidden
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def safetensors_bytes(n_floats: int, fill: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}})
    return struct.pack("<Q", len(header)) + header.encode() + bytes([fill]) * (4 * n_floats)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama with a second weight file, a file name that is a glob pattern, and the files a
    pull must skip: pickle weights beside safetensors, remote code, a README, an ONNX export."""
    folder = build_llama(tmp_path_factory.mktemp("hub") / "tiny")
    (folder / BIG).write_bytes(safetensors_bytes(BIG_FLOATS, 7))
    (folder / "added[1]*.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    (folder / "README.md").write_text("# card")
    (folder / "modeling_tiny.py").write_text("import os")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx")
    return folder


@pytest.fixture
def hub(model_dir: Path) -> Iterator[HubStandin]:
    with HubStandin({REPO: model_dir}) as standin:
        yield standin


def requested(hub: HubStandin, since: int = 0) -> list[str]:
    """The file names the client asked the Hub or the CDN for (HEAD or GET), from `since` on."""
    return [p.rsplit("/", 1)[-1] for _, p in hub.requests[since:] if "/resolve/" in p or "/lfs/" in p]


def byte_total(events: list[list[Any]]) -> int:
    return sum(e[1] for e in events if e[0] == "advance")


def test_a_pull_fetches_only_the_chosen_files_in_parallel_and_counts_their_bytes(
    hub: HubStandin, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    got = pull_in_child(hub, cache, tmp_path / "hf")

    assert "error" not in got, got["error"]
    served = hub.files(REPO)
    wanted = {p for p in served if p.endswith((".json", ".jinja", ".safetensors"))}
    assert set(got["files"]) == wanted and "added[1]*.json" in wanted
    for name in SKIPPED:  # not even asked for: the allow list names the chosen files alone
        assert not [r for r in requested(hub) if r.startswith(name.rsplit("/", 1)[-1])], name
    total = sum(served[p].size for p in wanted)
    assert got["downloaded"] == total and got["reused"] == 0
    events = got["events"]
    assert events[0] == ["start", len(wanted), total]
    assert byte_total(events) == total  # every byte reached the progress callback, none twice
    assert len({e[2] for e in events if e[0] == "advance"}) > 1  # from several download threads
    assert sorted(e[1] for e in events if e[0] == "file_done") == sorted(wanted)
    for path, sha256 in got["files"].items():
        if served[path].sha256:
            assert sha256 == served[path].sha256, path
    # the snapshot is modelport's own, usable offline (this process has HF_HUB_OFFLINE=1), and
    # the staging folder is gone
    folder = resolve(REPO, None, ModelCache(cache), pull_missing=False)
    assert folder == Path(got["path"]) and folder.name == hub.commit(REPO)
    assert (folder / BIG).read_bytes() == (model_dir / BIG).read_bytes()
    assert list((cache / "tmp").iterdir()) == []


def test_a_connection_dropped_mid_file_is_resumed_from_where_it_stopped(
    hub: HubStandin, model_dir: Path, tmp_path: Path
) -> None:
    hub.interrupt(REPO, BIG, after=CUT)
    got = pull_in_child(hub, tmp_path / "cache", tmp_path / "hf")

    assert "error" not in got, got["error"]
    sha256 = hub.files(REPO)[BIG].sha256
    gets = [r for r in hub.received if r.method == "GET" and r.path == f"/lfs/{sha256}/{BIG}"]
    assert len(gets) == 2 and gets[0].headers.get("range") is None
    resumed_at = int(gets[1].headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= CUT  # not from the start
    assert got["files"][BIG] == sha256
    assert byte_total(got["events"]) == got["downloaded"]


def test_an_interrupted_pull_goes_on_from_the_files_that_arrived(
    hub: HubStandin, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    hub.interrupt(REPO, BIG, after=CUT, then_fail=True)
    failed = pull_in_child(hub, cache, tmp_path / "hf")

    assert f"downloading {REPO} at {hub.commit(REPO)[:12]} failed" in failed["error"]
    assert "pull again to go on" in failed["error"]
    assert not (cache / "manifests").exists()
    (staging,) = (cache / "tmp").iterdir()
    assert (staging / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    assert not (staging / BIG).exists()

    hub.restore(REPO, BIG)
    since = len(hub.requests)
    again = pull_in_child(hub, cache, tmp_path / "hf")

    assert "error" not in again, again["error"]
    assert set(requested(hub, since)) == {BIG}  # the rest came from the staging folder
    assert again["files"][BIG] == hub.files(REPO)[BIG].sha256
    assert ModelCache(cache).verify(ModelCache(cache).manifests()[0]) == []
    assert list((cache / "tmp").iterdir()) == []


def test_bytes_that_do_not_match_the_listed_sha256_are_refused_and_nothing_is_kept(
    model_dir: Path, tmp_path: Path
) -> None:
    """huggingface_hub does not hash what it downloads; the puller does, against the listing."""
    folder = tmp_path / "tampered"
    folder.mkdir()
    for entry in model_dir.iterdir():
        if entry.is_file():
            (folder / entry.name).write_bytes(entry.read_bytes())
    cache = tmp_path / "cache"
    with HubStandin({REPO: folder}) as hub:
        data = bytearray((folder / BIG).read_bytes())
        data[-1] ^= 0xFF  # same size, other content: served as it is now, listed as it was
        (folder / BIG).write_bytes(bytes(data))
        got = pull_in_child(hub, cache, tmp_path / "hf")

    assert f"{BIG} failed verification: sha256 differs" in got["error"]
    assert not (cache / "manifests").exists() and not (cache / "snapshots").exists()
    assert list((cache / "tmp").iterdir()) == []
