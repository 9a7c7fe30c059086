"""Pull a remote model into the cache, and resolve any source to a local path (offline when cached).

A pull lists the source, refuses any unsafe name in the listing before a byte is fetched, picks
the files a server needs (safetensors, configs, tokenizer; pickle and remote code only when
asked) and fetches those not already in the cache: from S3 streamed one by one and hashed as
they arrive, from the Hub with huggingface_hub's `snapshot_download` into a staging folder that
outlives a failed pull (the next one goes on from it), hashed once there. Every file is checked
against what the source vouches for (the Hub's sha256 or git blob id, a single-part S3 ETag's
md5) and its own format, then stored by sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelport import envs
from modelport.models.cache import HASH_CHUNK, CachedFile, Manifest, ModelCache, format_problems
from modelport.models.egress import egress_refusal
from modelport.models.formats import GGUF_SUFFIX, is_pickle, pickle_refusal, weight_formats
from modelport.models.remote import (
    FolderRemote,
    PullError,
    RangedRemote,
    Remote,
    RemoteFile,
    RemoteListing,
    StreamingRemote,
)
from modelport.models.safe_paths import UnsafeName, safe_segment, safe_tree
from modelport.models.sources import ModelSource, parse_source

# Besides weights: configs, tokenizers (HF json, sentencepiece, tiktoken, BPE vocab/merges) and chat
# templates. Everything else in a repository (READMEs, images, ONNX/TF/Flax exports) is skipped.
SUPPORT_SUFFIXES = (".json", ".model", ".tiktoken", ".txt", ".jinja")
HUB_DEFAULT_REF = "main"
# Left free on the cache's disk after a pull, for logs, the store and the system.
DISK_RESERVE_BYTES = 2**30
S3_DEFAULT_REF = "latest"
PARALLEL_CHECKS = 4  # files hashed side by side after a folder download (hashlib frees the GIL)


class PickleRefused(PullError):
    """Only pickle weights, and pickle was not allowed."""


class UnsafeListing(PullError):
    """The source listed a file name or revision that could reach outside the cache."""


@dataclass(frozen=True)
class PullResult:
    manifest: Manifest
    path: Path
    downloaded_bytes: int
    reused_bytes: int


class PullProgress:
    """What a pull reports as it goes; the CLI draws bars from it, tests and replicas ignore it.

    A streamed file is reported as file_started, advance..., file_done. A Hub download fetches
    several files at once: its bytes come as advance calls alone, from its worker threads (and
    negative when a server ignores a resume and the file starts over), then file_done per file.
    """

    def start(self, total_files: int, total_bytes: int) -> None: ...

    def file_started(self, path: str, size: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, path: str, reused: bool) -> None: ...


def select_files(
    files: Iterable[RemoteFile], single_file: bool, allow_pickle: bool, trust_remote_code: bool, where: str
) -> list[RemoteFile]:
    """The files to fetch, or a PullError that says why none can be served."""
    listed = list(files)
    if single_file:
        if len(listed) != 1 or not listed[0].path.endswith(GGUF_SUFFIX):
            raise PullError(f"{where}: expected exactly one .gguf file")
        return listed
    names = [f.path for f in listed]
    formats = weight_formats(names)
    if "safetensors" not in formats:
        if "pickle" in formats and not allow_pickle:
            raise PickleRefused(pickle_refusal(where, [n for n in names if is_pickle(n)]))
        if "pickle" not in formats:
            ggufs = [n for n in names if n.endswith(GGUF_SUFFIX)]
            hint = f"; it holds GGUF files: name one, e.g. {where}/{ggufs[0]}" if ggufs else ""
            raise PullError(f"{where} has no weights modelport can serve (*.safetensors){hint}")

    def wanted(name: str) -> bool:
        if name.endswith(".safetensors"):
            return True
        if is_pickle(name):
            return "safetensors" not in formats  # only when it is all there is (and allowed)
        if name.endswith(".py"):
            return trust_remote_code
        return name.endswith(SUPPORT_SUFFIXES) and not name.startswith(".")

    chosen = [f for f in listed if wanted(f.path)]
    if not any(f.path == "config.json" for f in chosen):
        raise PullError(f"{where} has no config.json at its root: it is not a transformers model folder")
    return chosen


class _Hashes:
    """The hashes a file is checked by: its sha256 always, and whatever else the source vouches for."""

    def __init__(self, file: RemoteFile) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if file.md5 else None
        self.git = (
            hashlib.sha1(f"blob {file.size}\0".encode(), usedforsecurity=False) if file.git_sha1 else None
        )
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        if self.git is not None:
            self.git.update(chunk)
        self.size += len(chunk)

    def problems(self, staged: Path) -> list[str]:
        file, problems = self.file, []
        if self.size != file.size:
            problems.append(f"{self.size} bytes arrived, the source lists {file.size}")
        if file.sha256 and self.sha256.hexdigest() != file.sha256:
            problems.append("sha256 differs from the one the source lists")
        if self.git is not None and self.git.hexdigest() != file.git_sha1:
            problems.append("git blob id differs from the one the source lists")
        if self.md5 is not None and self.md5.hexdigest() != file.md5:
            problems.append("md5 differs from the object's ETag")
        return problems + format_problems(staged, file.path)


def _refusal(where: str, path: str, problems: list[str]) -> PullError:
    return PullError(f"{where}: {path} failed verification: {'; '.join(problems)}; nothing was kept")


def _fetch(
    remote: StreamingRemote,
    source: ModelSource,
    listing: RemoteListing,
    file: RemoteFile,
    cache: ModelCache,
    staging: Path,
    progress: PullProgress,
    where: str,
) -> str:
    """Stream one file into the blob store, hashing it as it arrives; returns its sha256."""
    staged = staging / hashlib.sha1(file.path.encode(), usedforsecurity=False).hexdigest()
    hashes = _Hashes(file)
    with staged.open("wb") as handle:

        def write(chunk: bytes) -> None:
            handle.write(chunk)
            hashes.update(chunk)
            progress.advance(len(chunk))

        remote.download(source, listing, file, write)
    problems = hashes.problems(staged)
    if problems:
        staged.unlink(missing_ok=True)
        raise _refusal(where, file.path, problems)
    digest = hashes.sha256.hexdigest()
    cache.add_blob(staged, digest)
    return digest


def _check_arrived(staged: Path, file: RemoteFile) -> tuple[str, list[str]]:
    """(sha256, problems) of a file a folder download left at `staged`."""
    if staged.is_symlink() or not staged.is_file():
        return "", ["it did not arrive"]
    hashes = _Hashes(file)
    with staged.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            hashes.update(chunk)
    return hashes.sha256.hexdigest(), hashes.problems(staged)


def _fetch_folder(
    remote: FolderRemote,
    source: ModelSource,
    listing: RemoteListing,
    files: Sequence[RemoteFile],
    cache: ModelCache,
    progress: PullProgress,
    where: str,
) -> dict[str, str]:
    """Have the remote fetch `files` into a staging folder, then check each and move it into the
    blob store; returns each path's sha256. A download that fails leaves the folder for the next
    pull to go on from; a file that fails its checks discards it."""
    if not files:
        return {}
    with cache.resumable_staging(f"resume-{source.key}@{listing.revision}") as staging:
        # several files at once: bytes go to the overall count, no file is "the current one"
        remote.download_into(source, listing, files, staging, progress.advance)
        with ThreadPoolExecutor(max_workers=PARALLEL_CHECKS) as pool:
            checked = list(pool.map(lambda f: _check_arrived(staging / f.path, f), files))
        for file, (_, problems) in zip(files, checked, strict=True):
            if problems:
                shutil.rmtree(staging, ignore_errors=True)
                raise _refusal(where, file.path, problems)
        digests = {}
        for file, (digest, _) in zip(files, checked, strict=True):
            cache.add_blob(staging / file.path, digest)
            digests[file.path] = digest
            progress.file_done(file.path, reused=False)
        return digests


def _known_digests(cache: ModelCache, key: str) -> dict[tuple[str, int, str | None], str]:
    """Earlier revisions' files by (path, size, S3 ETag): S3 lists no sha256, the ETag stands in."""
    return {
        (f.path, f.size, f.etag): f.sha256
        for m in cache.manifests()
        if m.key == key
        for f in m.files
        if f.etag
    }


def _reuse(
    cache: ModelCache, source: ModelSource, chosen: list[RemoteFile], progress: PullProgress
) -> tuple[dict[str, str], list[RemoteFile]]:
    """The sha256 of each chosen file the cache already holds, and the files left to fetch."""
    known = _known_digests(cache, source.key)
    digests, fetch = {}, []
    for file in chosen:
        digest = file.sha256 or known.get((file.path, file.size, file.etag))
        if digest and cache.has_blob(digest, file.size):
            digests[file.path] = digest
            progress.file_started(file.path, file.size)
            progress.advance(file.size)
            progress.file_done(file.path, reused=True)
        else:
            fetch.append(file)
    return digests, fetch


def check_s3_version(source: ModelSource, listing: RemoteListing) -> None:
    """An S3 source named at a content version must still hold it: a bucket keeps no history."""
    if source.kind == "s3" and source.revision and source.revision not in (listing.revision, S3_DEFAULT_REF):
        raise PullError(
            f"{source.display()}: the bucket now holds version {listing.revision}; S3 keeps no history, "
            f"so pull s3://{source.location} for the current content"
        )


def check_listing(listing: RemoteListing, where: str) -> None:
    """Refuse a listing with any name that is not a plain relative path, before a byte is fetched:
    names become symlinks in the snapshot and the revision its folder (see models/safe_paths.py)."""
    try:
        safe_segment(listing.revision)
    except UnsafeName as exc:
        raise UnsafeListing(f"{where}: refused: the source's revision {exc}; nothing was pulled") from None
    try:
        safe_tree(f.path for f in listing.files)
    except UnsafeName as exc:
        raise UnsafeListing(f"{where}: refused: the source lists a file {exc}; nothing was pulled") from None


def _check_space(cache: ModelCache, files: list[RemoteFile], where: str) -> None:
    """Refuse before downloading what the disk cannot hold (a full disk mid-pull helps no one)."""
    needed = sum(f.size for f in files if not (f.sha256 and cache.has_blob(f.sha256, f.size)))
    cache.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache.root).free - DISK_RESERVE_BYTES
    if needed > free:
        raise PullError(
            f"{where} needs {needed / 1e9:.1f} GB in {cache.root} but {max(free, 0) / 1e9:.1f} GB is free "
            f"(keeping {DISK_RESERVE_BYTES / 2**30:.0f} GiB spare): free some (`modelport models rm`) or set "
            f"{envs.MODEL_CACHE.name} to a larger disk"
        )


def remote_for(source: ModelSource, secrets: Mapping[str, str] | None = None) -> RangedRemote:
    """The remote for a source; `secrets` (an endpoint's) may carry HF_TOKEN, S3 keys and endpoint."""
    secrets = secrets or {}
    refusal = egress_refusal(source, {**os.environ, **secrets})
    if refusal is not None:
        raise PullError(f"refused: {refusal}")
    if source.kind == "hub":
        from modelport.models.hub import HubRemote

        return HubRemote(token=secrets.get("HF_TOKEN"))
    if source.kind == "s3":
        from modelport.models.s3 import S3Remote

        return S3Remote(endpoint_url=secrets.get(envs.S3_ENDPOINT_URL.name), credentials=secrets)
    raise PullError(f"{source.display()} is a local path: nothing to pull")


def default_ref(source: ModelSource) -> str:
    return S3_DEFAULT_REF if source.kind == "s3" else HUB_DEFAULT_REF


def pull(
    source: ModelSource,
    cache: ModelCache,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    progress: PullProgress | None = None,
    remote: Remote | None = None,
    clock: Callable[[], float] = time.time,
) -> PullResult:
    """Bring a remote source's revision into the cache (a no-op when it is there and whole)."""
    progress = progress or PullProgress()
    remote = remote or remote_for(source)
    where = source.display()
    with cache.lock(source.key):
        listing = remote.listing(source)
        check_listing(listing, where)
        check_s3_version(source, listing)
        ref = source.revision or default_ref(source)
        refs = () if ref == listing.revision else (ref,)
        existing = cache.manifest(source.key, listing.revision)
        if existing is not None and not cache.verify(existing, full=False):
            manifest = Manifest(**{**existing.__dict__, "refs": tuple(sorted({*existing.refs, *refs}))})
            return PullResult(manifest, cache.commit(manifest), 0, existing.total_bytes)
        listed = listing.files
        if source.filename is not None:  # one GGUF file of a Hub repository
            listed = tuple(f for f in listed if f.path == source.filename)
            if not listed:
                raise PullError(f"{source.location} has no file {source.filename} at {listing.revision[:12]}")
        chosen = select_files(listed, source.is_single_file, allow_pickle, trust_remote_code, where)
        _check_space(cache, chosen, where)
        progress.start(len(chosen), sum(f.size for f in chosen))
        digests, fetch = _reuse(cache, source, chosen, progress)
        if isinstance(remote, FolderRemote):
            digests.update(_fetch_folder(remote, source, listing, fetch, cache, progress, where))
        elif isinstance(remote, StreamingRemote):
            with cache.staging() as staging:
                for file in fetch:
                    progress.file_started(file.path, file.size)
                    digest = _fetch(remote, source, listing, file, cache, staging, progress, where)
                    digests[file.path] = digest
                    progress.file_done(file.path, reused=False)
        else:
            raise TypeError(f"{type(remote).__name__} can neither stream files nor fetch them into a folder")
        downloaded = sum(f.size for f in fetch)
        reused = sum(f.size for f in chosen) - downloaded
        entries = tuple(CachedFile(f.path, f.size, digests[f.path], f.etag) for f in chosen)
        manifest = Manifest(
            key=source.key,
            source=ModelSource(source.kind, source.location, None, source.filename).display(),
            kind=source.kind,
            revision=listing.revision,
            files=entries,
            pulled_at=clock(),
            refs=refs,
            origin=listing.origin,
        )
        return PullResult(manifest, cache.commit(manifest), downloaded, reused)


def resolve(
    text: str,
    revision: str | None,
    cache: ModelCache,
    *,
    pull_missing: bool,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    progress: PullProgress | None = None,
) -> Path:
    """The local path to load for a source. A cached remote source needs no network at all."""
    source = parse_source(text, revision)
    if source.kind == "local":
        return Path(source.location)
    cached = cache.lookup(source, default_ref(source))
    if cached is not None:
        # sizes and headers only: hashing every start would cost a full read of the weights
        problems = cache.verify(cached, full=False)
        if not problems:
            return cache.path_of(cached)
        if not pull_missing:
            raise PullError(
                f"the cached copy of {source.display()} is damaged ({problems[0]}); "
                f"run `modelport models pull {text}` to fetch it again"
            )
    if not pull_missing:
        raise PullError(f"{source.display()} is not in the model cache; run `modelport models pull {text}`")
    return pull(
        source, cache, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, progress=progress
    ).path
