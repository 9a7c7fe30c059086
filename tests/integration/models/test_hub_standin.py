"""Real huggingface_hub calls against tests.support.hub_standin, a local stand-in for the Hub.

Each call runs in a subprocess: this test process sets HF_HUB_OFFLINE=1 (tests/conftest.py) and
huggingface_hub reads it, and HF_ENDPOINT, once at import time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hub_standin import HubStandin

REPO = "acme/tiny-chat"
TOKEN = "hf_standin_secret_token"

PRELUDE = """
import json, sys
import huggingface_hub as hf
from huggingface_hub import HfApi
ARGS = json.loads(sys.argv[1])
REPO = ARGS["repo"]

def out(value):
    print(json.dumps(value))

def error_of(fn):
    try:
        fn()
    except Exception as e:
        response = getattr(e, "response", None)
        return {
            "type": type(e).__name__,
            "mro": [c.__name__ for c in type(e).__mro__],
            "status": getattr(response, "status_code", None),
        }
    return None
"""


def run_hf(hub: HubStandin, code: str, home: Path, token: str | None = None, **args: Any) -> Any:
    """Run ``code`` with huggingface_hub pointed at the stand-in; return what it ``out()``-ed last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HUB_OFFLINE="0",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    script = PRELUDE + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps({"repo": REPO, **args})],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelport.models.demo import build_llama

    return build_llama(tmp_path_factory.mktemp("hub") / "tiny")


@pytest.fixture(scope="module")
def hub(model_dir: Path) -> Iterator[HubStandin]:
    with HubStandin({REPO: model_dir}) as standin:
        yield standin


def test_model_info_reports_files_with_sizes_and_lfs_hashes(
    hub: HubStandin, model_dir: Path, tmp_path: Path
) -> None:
    got = run_hf(
        hub,
        """
        api = HfApi()
        info = api.model_info(REPO, revision="main", files_metadata=True)
        out({
            "sha": info.sha,
            "sha_by_commit": api.model_info(REPO, revision=info.sha).sha,
            "siblings": {s.rfilename: [s.size, s.blob_id, s.lfs and dict(s.lfs)] for s in info.siblings},
            "files": api.list_repo_files(REPO, revision="main"),
            "safetensors": info.safetensors.total,
        })
        """,
        tmp_path,
    )
    commit = hub.commit(REPO)
    assert len(commit) == 40 and got["sha"] == got["sha_by_commit"] == commit
    local = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    assert sorted(got["files"]) == sorted(got["siblings"]) == local
    for name in local:
        data = (model_dir / name).read_bytes()
        size, blob_id, lfs = got["siblings"][name]
        assert size == len(data), name
        if name.endswith(".safetensors"):
            assert lfs["sha256"] == hashlib.sha256(data).hexdigest()
            assert lfs["size"] == len(data)
        else:
            assert lfs is None, name
            assert blob_id == git_blob_sha1(data), name
    assert got["safetensors"] > 0


def test_snapshot_download_fetches_only_allowed_files(
    hub: HubStandin, model_dir: Path, tmp_path: Path
) -> None:
    start = len(hub.requests)
    got = run_hf(
        hub,
        """
        out(hf.snapshot_download(REPO, revision="main", allow_patterns=["config.json", "*.safetensors"]))
        """,
        tmp_path,
    )
    snapshot = Path(got)
    assert snapshot.name == hub.commit(REPO)
    landed = sorted(p.name for p in snapshot.rglob("*") if p.is_file())
    assert landed == ["config.json", "model.safetensors"]
    for name in landed:
        assert (snapshot / name).read_bytes() == (model_dir / name).read_bytes()
    served = hub.requests[start:]
    sha256 = hub.files(REPO)["model.safetensors"].sha256
    assert ("GET", f"/lfs/{sha256}/model.safetensors") in served  # the CDN redirect was followed
    assert not [p for _, p in served if p.endswith("tokenizer.json")]


def test_hf_hub_download_by_branch_and_by_commit(hub: HubStandin, model_dir: Path, tmp_path: Path) -> None:
    commit = hub.commit(REPO)
    code = """
    out([
        hf.hf_hub_download(REPO, name, revision=ARGS["revision"], cache_dir=ARGS["cache"])
        for name in ARGS["names"]
    ] + [hf.hf_hub_download(REPO, "model.safetensors", revision=ARGS["revision"], local_dir=ARGS["local"])])
    """
    cache, local = tmp_path / "cache", tmp_path / "local"
    names = ["model.safetensors", "config.json"]
    by_branch = run_hf(
        hub, code, tmp_path, revision="main", names=names, cache=str(cache), local=str(local / "m")
    )
    assert f"/snapshots/{commit}/" in by_branch[0]
    assert (cache / "models--acme--tiny-chat" / "refs" / "main").read_text() == commit
    for path, name in zip(by_branch, ["model.safetensors", "config.json", "model.safetensors"], strict=True):
        assert Path(path).read_bytes() == (model_dir / name).read_bytes()

    # by commit: what the cache already holds needs no request at all; local_dir does ask
    start = len(hub.requests)
    names = ["model.safetensors"]
    by_commit = run_hf(
        hub, code, tmp_path, revision=commit, names=names, cache=str(cache), local=str(local / "c")
    )
    assert by_commit[0] == by_branch[0]
    assert Path(by_commit[1]) == local / "c" / "model.safetensors"
    assert Path(by_commit[1]).read_bytes() == (model_dir / "model.safetensors").read_bytes()
    served = hub.requests[start:]
    assert all(commit in p or p.startswith("/lfs/") for _, p in served), served
    assert served.count(("HEAD", f"/{REPO}/resolve/{commit}/model.safetensors")) == 1, served


def test_get_safetensors_metadata_counts_parameters(hub: HubStandin, model_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    got = run_hf(
        hub,
        """
        meta = HfApi().get_safetensors_metadata(REPO, revision="main")
        out({"sharded": meta.sharded, "count": meta.parameter_count, "tensors": len(meta.weight_map)})
        """,
        tmp_path,
    )
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
        total = sum(math.prod(f.get_slice(k).get_shape()) for k in keys)
    assert got == {"sharded": False, "count": {"BF16": total}, "tensors": len(keys)}


def test_resolve_headers_ranges_and_no_xet(hub: HubStandin, model_dir: Path) -> None:
    commit = hub.commit(REPO)
    config = (model_dir / "config.json").read_bytes()
    weights = (model_dir / "model.safetensors").read_bytes()
    with httpx.Client(base_url=hub.url) as client:
        small = client.head(f"/{REPO}/resolve/main/config.json")
        assert small.status_code == 200
        assert small.headers["ETag"] == f'"{git_blob_sha1(config)}"'
        assert small.headers["X-Repo-Commit"] == commit
        assert int(small.headers["Content-Length"]) == len(config)

        big = client.head(f"/{REPO}/resolve/{commit}/model.safetensors")
        assert big.status_code == 302
        assert big.headers["X-Linked-Etag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
        assert int(big.headers["X-Linked-Size"]) == len(weights)
        assert big.headers["Location"].startswith(hub.cdn_url)
        for response in (small, big):
            assert not [h for h in response.headers if h.lower().startswith("x-xet") or h.lower() == "link"]

        url = f"/{REPO}/resolve/main/model.safetensors"
        head = client.get(url, headers={"Range": "bytes=0-7"}, follow_redirects=True)
        assert head.status_code == 206 and head.content == weights[:8]
        assert head.headers["Content-Range"] == f"bytes 0-7/{len(weights)}"
        tail = client.get(url, headers={"Range": "bytes=-16"}, follow_redirects=True)
        assert tail.status_code == 206 and tail.content == weights[-16:]
        middle = client.get(f"/{REPO}/resolve/main/config.json", headers={"Range": "bytes=10-"})
        assert middle.status_code == 206 and middle.content == config[10:]
        beyond = client.get(url, headers={"Range": f"bytes={len(weights)}-"}, follow_redirects=True)
        assert beyond.status_code == 416


def test_unknown_repo_revision_and_file_raise_hub_errors(hub: HubStandin, tmp_path: Path) -> None:
    got = run_hf(
        hub,
        """
        api = HfApi()
        out({
            "info_repo": error_of(lambda: api.model_info("acme/missing")),
            "info_rev": error_of(lambda: api.model_info(REPO, revision="v9")),
            "file_repo": error_of(lambda: hf.hf_hub_download("acme/missing", "config.json")),
            "file_rev": error_of(lambda: hf.hf_hub_download(REPO, "config.json", revision="v9")),
            "file_entry": error_of(lambda: hf.hf_hub_download(REPO, "missing.txt")),
            "snapshot_repo": error_of(lambda: hf.snapshot_download("acme/missing")),
            "snapshot_rev": error_of(lambda: hf.snapshot_download(REPO, revision="v9")),
        })
        """,
        tmp_path,
    )
    for key in ("info_repo", "file_repo", "snapshot_repo"):
        assert got[key]["type"] == "RepositoryNotFoundError" and got[key]["status"] == 404, got[key]
    for key in ("info_rev", "file_rev", "snapshot_rev"):
        assert got[key]["type"] == "RevisionNotFoundError" and got[key]["status"] == 404, got[key]
    assert "EntryNotFoundError" in got["file_entry"]["mro"], got["file_entry"]


def test_token_is_required_and_hf_token_is_honoured(model_dir: Path, tmp_path: Path) -> None:
    code = """
    api = HfApi()
    out({
        "info": error_of(lambda: api.model_info(REPO, files_metadata=True)),
        "file": error_of(lambda: hf.hf_hub_download(REPO, "model.safetensors")),
        "snapshot": error_of(lambda: hf.snapshot_download(REPO, allow_patterns=["*.json"])),
        "wrong": error_of(lambda: api.model_info(REPO, token="hf_wrong")),
    })
    """
    with HubStandin({REPO: model_dir}, token=TOKEN) as hub:
        denied = run_hf(hub, code, tmp_path / "anonymous")
        for key in ("info", "file", "snapshot"):
            assert denied[key]["type"] == "GatedRepoError" and denied[key]["status"] == 401, denied[key]
            assert "RepositoryNotFoundError" in denied[key]["mro"]
        assert denied["wrong"]["type"] == "HfHubHTTPError" and denied["wrong"]["status"] == 401
        assert not [p for _, p in hub.requests if p.startswith("/lfs/")]  # nothing leaked

        allowed = run_hf(hub, code, tmp_path / "authenticated", token=TOKEN)
        assert allowed["info"] is None and allowed["file"] is None and allowed["snapshot"] is None
        assert allowed["wrong"]["status"] == 401  # an explicit token= wins over HF_TOKEN

    with HubStandin({REPO: model_dir}, token=TOKEN, access="private") as private:
        response = httpx.get(f"{private.url}/api/models/{REPO}")
        assert response.status_code == 401 and response.headers["X-Error-Code"] == "RepoNotFound"
        response = httpx.get(f"{private.url}/api/models/{REPO}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200 and response.json()["private"] is True
