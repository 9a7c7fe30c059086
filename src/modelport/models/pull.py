"""Pull a remote model into the cache, and resolve any source to a local path (offline when cached).

A pull lists the source, picks the files a server needs (safetensors, configs, tokenizer;
pickle and remote code only when asked), streams each one while hashing it, checks it against
what the source vouches for (the Hub's sha256 or git blob id, a single-part S3 ETag's md5) and
its own format, then stores it by sha256. Files already in the cache are not fetched again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modelport import envs
from modelport.models.cache import CachedFile, Manifest, ModelCache, format_problems
from modelport.models.egress import egress_refusal
from modelport.models.formats import GGUF_SUFFIX, is_pickle, pickle_refusal, weight_formats
from modelport.models.remote import PullError, RangedRemote, Remote, RemoteFile, RemoteListing
from modelport.models.safe_paths import UnsafeName, safe_segment, safe_tree
from modelport.models.sources import ModelSource, parse_source

# Besides weights: configs, tokenizers (HF json, sentencepiece, tiktoken, BPE vocab/merges) and chat
# templates. Everything else in a repository (READMEs, images, ONNX/TF/Flax exports) is skipped.
SUPPORT_SUFFIXES = (".json", ".model", ".tiktoken", ".txt", ".jinja")
HUB_DEFAULT_REF = "main"
# Left free on the cache's disk after a pull, for logs, the store and the system.
DISK_RESERVE_BYTES = 2**30
S3_DEFAULT_REF = "latest"


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
    """What a pull reports as it goes; the CLI draws bars from it, tests and replicas ignore it."""

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


class _Sink:
    """Writes a download to disk while hashing it and counting progress, in one pass."""

    def __init__(self, path: Path, file: RemoteFile, progress: PullProgress) -> None:
        self.handle = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if file.md5 else None
        self.git = (
            hashlib.sha1(f"blob {file.size}\0".encode(), usedforsecurity=False) if file.git_sha1 else None
        )
        self.size = 0
        self.progress = progress

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.sha256.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        if self.git is not None:
            self.git.update(chunk)
        self.size += len(chunk)
        self.progress.advance(len(chunk))


def _fetch(
    remote: Remote,
    source: ModelSource,
    listing: RemoteListing,
    file: RemoteFile,
    cache: ModelCache,
    staging: Path,
    progress: PullProgress,
    where: str,
) -> str:
    """Download one file into the blob store after every check; returns its sha256."""
    staged = staging / hashlib.sha1(file.path.encode(), usedforsecurity=False).hexdigest()
    sink = _Sink(staged, file, progress)
    try:
        remote.download(source, listing, file, sink.write)
    finally:
        sink.handle.close()
    digest = sink.sha256.hexdigest()
    problems = []
    if sink.size != file.size:
        problems.append(f"{sink.size} bytes arrived, the source lists {file.size}")
    if file.sha256 and digest != file.sha256:
        problems.append("sha256 differs from the one the source lists")
    if sink.git is not None and sink.git.hexdigest() != file.git_sha1:
        problems.append("git blob id differs from the one the source lists")
    if sink.md5 is not None and sink.md5.hexdigest() != file.md5:
        problems.append("md5 differs from the object's ETag")
    problems.extend(format_problems(staged, file.path))
    if problems:
        staged.unlink(missing_ok=True)
        raise PullError(f"{where}: {file.path} failed verification: {'; '.join(problems)}; nothing was kept")
    cache.add_blob(staged, digest)
    return digest


def _known_digests(cache: ModelCache, key: str) -> dict[tuple[str, int, str | None], str]:
    """Earlier revisions' files by (path, size, S3 ETag): S3 lists no sha256, the ETag stands in."""
    return {
        (f.path, f.size, f.etag): f.sha256
        for m in cache.manifests()
        if m.key == key
        for f in m.files
        if f.etag
    }


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
        entries, downloaded, reused = [], 0, 0
        known = _known_digests(cache, source.key)
        with cache.staging() as staging:
            for file in chosen:
                progress.file_started(file.path, file.size)
                cached_digest = file.sha256 or known.get((file.path, file.size, file.etag))
                if cached_digest and cache.has_blob(cached_digest, file.size):
                    digest, reused = cached_digest, reused + file.size
                    progress.advance(file.size)
                    progress.file_done(file.path, reused=True)
                else:
                    digest = _fetch(remote, source, listing, file, cache, staging, progress, where)
                    downloaded += file.size
                    progress.file_done(file.path, reused=False)
                entries.append(CachedFile(path=file.path, size=file.size, sha256=digest, etag=file.etag))
        manifest = Manifest(
            key=source.key,
            source=ModelSource(source.kind, source.location, None, source.filename).display(),
            kind=source.kind,
            revision=listing.revision,
            files=tuple(entries),
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
