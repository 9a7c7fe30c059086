"""The machine's weight cache: content-addressed blobs and per-revision snapshot folders.

Layout under ``<data dir>/models``::

    blobs/sha256/<hex>                  contents, read-only, stored once however many revisions share them
    snapshots/<key>/<revision>/<path>   relative symlinks to blobs: the folder a replica loads
    manifests/<key>/<revision>.json     source, resolved revision, every file's size and sha256
    refs/<key>/<name>                   a branch/tag (or "latest" for S3) -> the revision it resolved to
    locks/<key>.lock                    one pull per source at a time, across processes
    tmp/                                staging on the same file system, so finishing is a rename;
                                        a Hub pull's resume-<key>@<revision>/ outlives a failed pull

A snapshot exists only after its manifest is written (the manifest is written last, by
rename), so a pull cut short leaves nothing that looks usable; ``gc`` drops its blobs.

Every key, revision and file path is checked (models/safe_paths.py) before it becomes a path, and
the snapshot being built or removed must resolve under ``snapshots/``: whatever a model source
lists, the cache writes and deletes nothing outside its root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelport.models.formats import FormatError, check_safetensors_file, read_gguf_header
from modelport.models.safe_paths import UnsafeName, is_inside, safe_relative_path, safe_segment, safe_tree
from modelport.models.sources import ModelSource

HASH_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class CachedFile:
    path: str  # relative to the snapshot folder
    size: int
    sha256: str
    etag: str | None = None  # the S3 ETag it was fetched under, so a re-pull can skip it


@dataclass(frozen=True)
class Manifest:
    key: str
    source: str  # how the user named it, without revision
    kind: str
    revision: str  # the resolved revision: a commit sha, or an S3 content version
    files: tuple[CachedFile, ...]
    pulled_at: float
    refs: tuple[str, ...] = ()
    origin: dict[str, str] = field(default_factory=dict)  # e.g. the endpoint URL it came from

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        data["refs"] = list(self.refs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Raises UnsafeName (a ValueError) for a manifest whose names could leave the cache."""
        safe_segment(data["key"])
        safe_segment(data["revision"])
        for f in data["files"]:
            safe_relative_path(f["path"])
        return cls(
            key=data["key"],
            source=data["source"],
            kind=data["kind"],
            revision=data["revision"],
            files=tuple(CachedFile(**f) for f in data["files"]),
            pulled_at=float(data["pulled_at"]),
            refs=tuple(data.get("refs", ())),
            origin=dict(data.get("origin", {})),
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ModelCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    # --- paths -------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256

    def snapshot_dir(self, key: str, revision: str) -> Path:
        return self.root / "snapshots" / safe_segment(key) / safe_segment(revision)

    def _manifest_path(self, key: str, revision: str) -> Path:
        return self.root / "manifests" / safe_segment(key) / f"{safe_segment(revision)}.json"

    def _ref_path(self, key: str, name: str) -> Path:
        # a branch may hold '/' (refs/pr/1); its file is one name
        return self.root / "refs" / safe_segment(key) / safe_segment(name.replace("/", "%2F"))

    # --- reading -----------------------------------------------------------------------------
    def manifest(self, key: str, revision: str) -> Manifest | None:
        path = self._manifest_path(key, revision)
        try:
            return Manifest.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def lookup(self, source: ModelSource, default_ref: str) -> Manifest | None:
        """The cached revision a source names, without any network: a revision id or a ref."""
        name = source.revision or default_ref
        found = self.manifest(source.key, name) if "/" not in name else None  # a branch has no manifest
        if found is not None:
            return found
        try:
            revision = self._ref_path(source.key, name).read_text().strip()
        except FileNotFoundError:
            return None
        return self.manifest(source.key, revision)

    def path_of(self, manifest: Manifest) -> Path:
        """The folder to load (or, for a single GGUF file, the file itself)."""
        folder = self.snapshot_dir(manifest.key, manifest.revision)
        if len(manifest.files) == 1 and manifest.files[0].path.endswith(".gguf"):
            return folder / manifest.files[0].path
        return folder

    def manifests(self) -> list[Manifest]:
        found = []
        for path in sorted((self.root / "manifests").glob("*/*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError):
                found.append(Manifest.from_json(json.loads(path.read_text())))
        return found

    # --- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        path = self.root / "locks" / f"{safe_segment(key)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        base = self.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(dir=base))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def resumable_staging(self, name: str) -> Iterator[Path]:
        """A staging folder named for what it holds (one per source and revision, under the source's
        lock), kept when the pull fails so the next one goes on from the files that arrived;
        removed when the pull succeeds. ``gc`` drops one left alone for long."""
        path = self.root / "tmp" / safe_segment(name)
        path.mkdir(parents=True, exist_ok=True)
        os.utime(path)  # fresh, so a gc while this pull runs spares it
        yield path
        shutil.rmtree(path, ignore_errors=True)

    def has_blob(self, sha256: str, size: int) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and path.stat().st_size == size

    def add_blob(self, staged: Path, sha256: str) -> Path:
        """Move a verified staged file into the blob store (a no-op when the content is there)."""
        target = self.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            staged.unlink()
        else:
            staged.chmod(0o444)
            os.replace(staged, target)
        return target

    def commit(self, manifest: Manifest) -> Path:
        """Link the snapshot folder, then write the manifest and refs (last: they make it visible)."""
        folder = self.snapshot_dir(manifest.key, manifest.revision)
        safe_tree(f.path for f in manifest.files)
        with self.staging() as tmp:
            built = tmp / "snapshot"
            built.mkdir()
            for entry in manifest.files:
                link = built / safe_relative_path(entry.path)
                link.parent.mkdir(parents=True, exist_ok=True)
                if not is_inside(link.parent, built):  # a folder on the way is a link out
                    raise UnsafeName(f"{entry.path!r} leads outside the snapshot folder")
                blob = self.blob_path(entry.sha256)
                if not blob.exists():
                    raise FileNotFoundError(f"blob {entry.sha256} for {entry.path} is missing from the cache")
                # relative to the final location, so the cache can move as a whole
                final_parent = (folder / entry.path).parent
                link.symlink_to(os.path.relpath(blob, final_parent))
            if self._is_snapshot(folder):
                shutil.rmtree(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.replace(built, folder)
        self._write_atomic(
            self._manifest_path(manifest.key, manifest.revision), json.dumps(manifest.to_json())
        )
        for ref in manifest.refs:
            self._write_atomic(self._ref_path(manifest.key, ref), manifest.revision)
        return self.path_of(manifest)

    def _write_atomic(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def remove(self, manifest: Manifest) -> int:
        """Forget one revision (manifest, refs to it, snapshot), then drop unreferenced blobs."""
        folder = self.snapshot_dir(manifest.key, manifest.revision)
        drop = self._is_snapshot(folder)  # refuses before anything is forgotten
        self._manifest_path(manifest.key, manifest.revision).unlink(missing_ok=True)
        refs = self.root / "refs" / manifest.key
        for ref in refs.glob("*") if refs.is_dir() else ():
            if ref.read_text().strip() == manifest.revision:
                ref.unlink()
        if drop:
            shutil.rmtree(folder, ignore_errors=True)
        return self.gc()

    def _is_snapshot(self, folder: Path) -> bool:
        """Whether there is a snapshot folder to delete; UnsafeName when something is there that
        does not really lie under snapshots/ (a link out), which is never deleted."""
        if not folder.exists() and not folder.is_symlink():
            return False
        if folder.is_symlink() or not is_inside(folder, self.root / "snapshots"):
            raise UnsafeName(f"{folder} is not a snapshot folder inside {self.root}; not deleting it")
        return True

    def gc(self, now: float | None = None, stale_tmp_s: float = 3600.0) -> int:
        """Delete blobs no manifest names and staging left by dead pulls; returns bytes freed."""
        keep = {f.sha256 for m in self.manifests() for f in m.files}
        freed = 0
        blobs = self.root / "blobs" / "sha256"
        for blob in blobs.iterdir() if blobs.is_dir() else ():
            if blob.name not in keep:
                freed += blob.stat().st_size
                blob.unlink()
        now = time.time() if now is None else now
        tmp = self.root / "tmp"
        for stale in tmp.iterdir() if tmp.is_dir() else ():
            if now - stale.stat().st_mtime > stale_tmp_s:
                shutil.rmtree(stale, ignore_errors=True)
        return freed

    # --- checking ----------------------------------------------------------------------------
    def verify(self, manifest: Manifest, full: bool = True) -> list[str]:
        """Problems with a cached revision ([] = good): sizes, formats, and (full) every sha256."""
        problems = []
        folder = self.snapshot_dir(manifest.key, manifest.revision)
        for entry in manifest.files:
            blob = self.blob_path(entry.sha256)
            if not blob.is_file():
                problems.append(f"{entry.path}: missing from the cache")
                continue
            if blob.stat().st_size != entry.size:
                problems.append(f"{entry.path}: {blob.stat().st_size} bytes, expected {entry.size}")
                continue
            if not (folder / entry.path).exists():
                problems.append(f"{entry.path}: the snapshot link is missing")
            problems.extend(format_problems(blob, entry.path))
            if full and sha256_file(blob) != entry.sha256:
                problems.append(f"{entry.path}: content does not match its sha256 (corrupt)")
        return problems


def format_problems(path: Path, name: str) -> list[str]:
    """Check a weight file's own structure: a whole safetensors file, a GGUF preamble."""
    try:
        if name.endswith(".safetensors"):
            check_safetensors_file(path)
        elif name.endswith(".gguf"):
            read_gguf_header(path)
    except FormatError as exc:
        return [f"{name}: {exc}".replace(f"{path}: ", "")]
    return []
