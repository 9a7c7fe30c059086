"""A stand-in for the Hugging Face Hub: serves local model folders over the Hub's HTTP routes.

The Hugging Face Hub itself is unreachable from the machines modelport is developed and tested
on. This module lets a test point unmodified `huggingface_hub` client code at a local server
(``HF_ENDPOINT=http://127.0.0.1:PORT`` with ``HF_HUB_OFFLINE`` unset or 0) that serves folders the
test built, so `HfApi().model_info`, `list_repo_files`, `hf_hub_download`, `snapshot_download`
and `get_safetensors_metadata` run for real, over HTTP.

The routes, methods, headers and error codes below were read from the client code of
`huggingface_hub` 2.4 (``file_download.py``, ``hf_api.py``, ``_snapshot_download.py``,
``utils/_http.py``, ``utils/_xet.py``, ``constants.py``); nothing here comes from the live Hub.

Hub port (``hub.url``):

- ``GET /api/models/{repo_id}`` and ``GET /api/models/{repo_id}/revision/{revision}``: the
  model info JSON (`HfApi.model_info` / `repo_info`, which `snapshot_download` calls to resolve a
  branch). ``siblings`` always carry ``rfilename``; with ``?blobs=true`` (``files_metadata=True``)
  also ``size``, ``blobId`` and, for LFS files, ``lfs: {sha256, size, pointerSize}``. Also
  ``sha`` (the commit), ``config`` (architectures, model_type) and ``safetensors`` (parameter
  counts per dtype, read from the safetensors headers).
- ``GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=...``: the tree listing that
  `list_repo_tree`, `list_repo_files` and `snapshot_download` page through (one page: no ``Link``
  header). Entries are ``{type, oid, size, path[, lfs: {oid, size, pointerSize}]}``.
- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: a small text file is answered
  ``200`` with ``ETag`` = its git blob sha1 (sha1 of ``blob <len>\\0`` + content),
  ``X-Repo-Commit``, ``Content-Length``, ``Accept-Ranges`` and ``Range`` support. An LFS file
  (safetensors, bin, gguf, ..., anything over 10 MiB or with a NUL byte in its first 8000
  bytes) is answered ``302`` to the CDN port, carrying the metadata on the redirect itself as
  the Hub does: ``X-Linked-Etag`` = sha256, ``X-Linked-Size``, ``X-Repo-Commit``. The client
  reads the metadata from the redirect and downloads from ``Location`` without the
  ``Authorization`` header, because the CDN is another origin (another port).

CDN port (``hub.cdn_url``): ``HEAD``/``GET /lfs/{sha256}/{filename}`` streams the file (with
``sendfile``, never whole into memory) with ``Range`` support (``206`` + ``Content-Range``,
``416`` when unsatisfiable). Like a signed CDN URL it takes no token.

No ``X-Xet-Hash``, ``X-Xet-Refresh-Route`` header, ``Link: <...>; rel="xet-auth"`` or tree
``xetHash`` is ever sent: any of them makes the client (``hf_xet`` is installed) try Xet
storage instead of plain HTTP.

Errors carry the Hub's ``X-Error-Code`` / ``X-Error-Message`` headers, which is what
``hf_raise_for_status`` maps to exception classes: unknown repo -> 404 ``RepoNotFound``
(`RepositoryNotFoundError`; the client checks ``RepoNotFound``, not ``RepositoryNotFound``),
unknown revision -> 404 ``RevisionNotFound`` (`RevisionNotFoundError`), unknown file -> 404
``EntryNotFound`` with ``X-Repo-Commit`` (`RemoteEntryNotFoundError`). Revisions: ``main`` and
the commit sha the stand-in derives from the folder's content.

Auth: with ``token=...`` every Hub-port request must carry ``Authorization: Bearer <token>``.
Without one it gets 401 ``GatedRepo`` (`GatedRepoError`, a `RepositoryNotFoundError`) or, with
``access="private"``, 401 ``RepoNotFound``; a wrong token gets 401 "Invalid credentials in
Authorization header" (a plain `HfHubHTTPError`), as on the Hub.

For tests of a client's defences, ``list_file`` lists a file under any name and ``set_commit``
reports any string as the commit. For tests of resuming, ``interrupt`` cuts the next download of
a file after a given byte, as a dropped connection would (the client sees a body shorter than
its ``Content-Length``), and may refuse the file with ``503`` after that until ``restore``.

Not implemented: datasets/spaces, other branches or tags, ``paths-info``, ``whoami``, uploads,
tree pagination (one page of any length), Xet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mimetypes
import os
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = frozenset(
    {
        ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib",
        ".mlmodel", ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb",
        ".pickle", ".pkl", ".pt", ".pth", ".rar", ".safetensors", ".tar", ".tflite", ".tgz",
        ".wasm", ".xz", ".zip", ".zst",
    }
)  # fmt: skip
"""Suffixes the Hub's default ``.gitattributes`` routes to Git LFS."""
LFS_MIN_SIZE = 10 * 1024 * 1024
"""The Hub refuses plain git files above 10 MiB: larger ones are always LFS."""
_CHUNK = 1 << 20
_SKIPPED_DIRS = frozenset({".git", ".cache"})  # VCS data; huggingface_hub's own local_dir metadata


@dataclass(frozen=True)
class HubFile:
    """One file of a served repo, with the hashes the Hub reports for it."""

    path: str  # path in the repo, '/'-separated
    local: Path
    size: int
    blob_id: str  # git blob sha1: of the content, or of the LFS pointer for an LFS file
    sha256: str | None  # set only for LFS files
    pointer_size: int | None  # size of the LFS pointer file, LFS files only

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class Received:
    """One request as the stand-in saw it: ``requests``' entry plus its headers."""

    method: str
    path: str  # as sent, percent-encoded, without the query string
    headers: dict[str, str]  # names lower-cased


@dataclass
class _Fault:
    """What ``interrupt`` set for one file: cut the next download at ``after``, then refuse or serve."""

    after: int
    then_fail: bool
    cut: bool = False


@dataclass(frozen=True)
class _Repo:
    repo_id: str
    files: dict[str, HubFile]
    commit: str
    last_modified: str
    info_extra: dict[str, Any]


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _hash_file(rel: str, local: Path) -> HubFile:
    size = local.stat().st_size
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    sha256 = hashlib.sha256()
    head = b""
    with local.open("rb") as f:
        while chunk := f.read(_CHUNK):
            if len(head) < 8000:
                head += chunk[: 8000 - len(head)]
            sha1.update(chunk)
            sha256.update(chunk)
    lfs = Path(rel).suffix.lower() in LFS_SUFFIXES or size > LFS_MIN_SIZE or b"\0" in head
    if not lfs:
        return HubFile(rel, local, size, sha1.hexdigest(), None, None)
    digest = sha256.hexdigest()
    pointer = _lfs_pointer(digest, size)
    return HubFile(rel, local, size, git_blob_sha1(pointer), digest, len(pointer))


def _safetensors_parameters(files: list[HubFile]) -> dict[str, Any] | None:
    """Parameter counts per dtype from the safetensors headers, as the Hub's ``safetensors`` field."""
    counts: dict[str, int] = {}
    found = False
    for f in files:
        if not f.path.endswith(".safetensors"):
            continue
        with f.local.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        found = True
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for dim in tensor["shape"]:
                numel *= dim
            counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + numel
    return {"parameters": counts, "total": sum(counts.values())} if found else None


def _scan(repo_id: str, folder: Path) -> _Repo:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files: dict[str, HubFile] = {}
    mtime = 0.0
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not (Path(root) == folder and d in _SKIPPED_DIRS))
        for name in names:
            local = Path(root) / name
            if not local.is_file():
                continue
            rel = local.relative_to(folder).as_posix()
            files[rel] = _hash_file(rel, local)
            mtime = max(mtime, local.stat().st_mtime)
    files = dict(sorted(files.items()))
    listing = "".join(f"{f.blob_id} {f.path}\n" for f in files.values())
    commit = hashlib.sha1(f"hub-standin {repo_id}\n{listing}".encode()).hexdigest()
    stamp = datetime.fromtimestamp(mtime or 0, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    extra: dict[str, Any] = {}
    if "config.json" in files:
        try:
            config = json.loads(files["config.json"].local.read_text())
            extra["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
        except (ValueError, OSError):
            pass
    safetensors = _safetensors_parameters(list(files.values()))
    if safetensors is not None:
        extra["safetensors"] = safetensors
    return _Repo(repo_id, files, commit, stamp, extra)


class _Unsatisfiable(Exception):
    pass


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single ``bytes=`` range; None to send the whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # multipart ranges are optional: answer with the whole file
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":  # suffix: the last N bytes
            n = int(last)
            if n <= 0 or size == 0:
                raise _Unsatisfiable
            return max(size - n, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise _Unsatisfiable
    return start, min(end, size - 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: HubStandin
    role: Literal["hub", "cdn"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server_version = "hub-standin/1"
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- responses -------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(200, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def _error(
        self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        extra = dict(headers or {})
        if code is not None:
            extra["X-Error-Code"] = code
        extra["X-Error-Message"] = message
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"Content-Type": "application/json; charset=utf-8", **extra})

    def _stream(self, file: HubFile, headers: Mapping[str, str], disposition: str) -> None:
        """Send a file (or the requested range of it) without reading it into memory."""
        name = file.path.rsplit("/", 1)[-1]
        base = {
            **headers,
            "Accept-Ranges": "bytes",
            "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
        }
        try:
            span = _parse_range(self.headers.get("Range"), file.size)
        except _Unsatisfiable:
            self._send(416, headers={**base, "Content-Range": f"bytes */{file.size}"})
            return
        if span is None:
            status, start, length = 200, 0, file.size
        else:
            status, start, length = 206, span[0], span[1] - span[0] + 1
            base["Content-Range"] = f"bytes {span[0]}-{span[1]}/{file.size}"
        fault = self.server.standin.faults.get(file.etag) if self.command == "GET" else None
        if fault is not None and fault.cut:
            if fault.then_fail:
                self._error(503, "Service Unavailable (hub-standin: interrupted)")
                return
            del self.server.standin.faults[file.etag]
            fault = None
        self._send(status, headers=base, length=length)
        if self.command == "HEAD" or length == 0:
            return
        sent = length if fault is None else max(0, min(length, fault.after - start))
        try:
            with file.local.open("rb") as fh:
                if sent:
                    self.connection.sendfile(fh, start, sent)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if fault is not None:  # the body stops short of its Content-Length: a dropped connection
            fault.cut = True
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- dispatch --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _record(self) -> str:
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.standin.requests.append((self.command, path))
        self.server.standin.received.append(Received(self.command, path, headers))
        return path

    def _reject(self) -> None:
        self._record()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._error(405, f"{self.command} is not supported by the Hub stand-in")

    do_POST = do_PUT = do_DELETE = do_PATCH = _reject

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        self._record()
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        query = parse_qs(parts.query)
        if self.server.role == "cdn":
            self._cdn(segments)
        elif segments[:2] == ["api", "models"] and self.command == "GET":
            self._api(segments[2:], query)
        elif "resolve" in segments[1:3]:
            self._resolve(segments)
        else:
            self._error(404, "Sorry, we can't find the page you are looking for.")

    def _repo(self, repo_id: str) -> _Repo | None:
        """The repo if it exists and the request may see it; otherwise None after an error response."""
        standin = self.server.standin
        repo = standin.repos.get(repo_id)
        if repo is None:
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        if standin.token is None:
            return repo
        auth = self.headers.get("Authorization")
        if auth is None:
            if standin.access == "private":
                self._error(401, "Invalid username or password.", "RepoNotFound")
            else:
                self._error(
                    401,
                    f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                    "GatedRepo",
                )
            return None
        if auth != f"Bearer {standin.token}":
            self._error(401, "Invalid credentials in Authorization header")
            return None
        return repo

    def _revision(self, repo: _Repo, revision: str) -> str | None:
        if revision in ("main", repo.commit):
            return repo.commit
        self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return None

    def _api(self, rest: list[str], query: dict[str, list[str]]) -> None:
        # /api/models/{repo_id}[/revision/{rev}] or /api/models/{repo_id}/tree/{rev}[/{path}];
        # repo ids have one segment ("gpt2") or two ("acme/tiny-chat")
        for i in (2, 1):
            if len(rest) > i + 1 and rest[i] in ("revision", "tree"):
                repo_id, action, args = "/".join(rest[:i]), rest[i], rest[i + 1 :]
                break
        else:
            if not 1 <= len(rest) <= 2 or not all(rest):
                self._error(404, "Sorry, we can't find the page you are looking for.")
                return
            repo_id, action, args = "/".join(rest), "revision", ["main"]
        repo = self._repo(repo_id)
        if repo is None:
            return
        commit = self._revision(repo, args[0])
        if commit is None:
            return
        if action == "revision":
            self._json(self._model_info(repo, blobs=_true(query.get("blobs"))))
        else:
            self._tree(repo, "/".join(args[1:]).strip("/"), recursive=_true(query.get("recursive")))

    def _model_info(self, repo: _Repo, *, blobs: bool) -> dict[str, Any]:
        standin = self.server.standin
        siblings = []
        for f in repo.files.values():
            sibling: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                sibling["blobId"] = f.blob_id
                sibling["size"] = f.size
                if f.is_lfs:
                    sibling["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            siblings.append(sibling)
        locked = standin.token is not None
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": repo.commit,
            "lastModified": repo.last_modified,
            "createdAt": repo.last_modified,
            "private": locked and standin.access == "private",
            "gated": "manual" if locked and standin.access == "gated" else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(f.size for f in repo.files.values()),
            **repo.info_extra,
        }

    def _tree(self, repo: _Repo, base: str, *, recursive: bool) -> None:
        prefix = f"{base}/" if base else ""
        if base and base in repo.files:
            self._error(404, f"{base} is a file, not a folder", "EntryNotFound")
            return
        under = [f for f in repo.files.values() if f.path.startswith(prefix)]
        if base and not under:
            self._error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": repo.commit})
            return
        entries: dict[str, dict[str, Any]] = {}
        for f in under:
            parts = f.path[len(prefix) :].split("/")
            # folders on the way to the file; a non-recursive listing stops at the first one
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folder = prefix + "/".join(parts[:depth])
                oid = hashlib.sha1(f"tree {repo.commit} {folder}".encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "oid": oid, "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                entry: dict[str, Any] = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path}
                if f.is_lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
                entries[f.path] = entry
        self._json([entries[k] for k in sorted(entries)])

    def _resolve(self, segments: list[str]) -> None:
        i = 2 if len(segments) > 2 and segments[2] == "resolve" else 1
        if len(segments) < i + 3 or not segments[i + 2]:
            self._error(404, "Sorry, we can't find the page you are looking for.")
            return
        repo = self._repo("/".join(segments[:i]))
        if repo is None:
            return
        commit = self._revision(repo, segments[i + 1])
        if commit is None:
            return
        filename = "/".join(segments[i + 2 :])
        file = repo.files.get(filename)
        if file is None:
            self._error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})
            return
        headers = {"X-Repo-Commit": commit}
        if not file.is_lfs:
            self._stream(file, {**headers, "ETag": f'"{file.blob_id}"'}, "inline")
            return
        name = file.path.rsplit("/", 1)[-1]
        location = f"{self.server.standin.cdn_url}/lfs/{file.sha256}/{quote(name)}"
        body = f"Found. Redirecting to {location}".encode()
        self._send(
            302,
            body,
            {
                **headers,
                "Location": location,
                "ETag": f'"{file.sha256}"',
                "X-Linked-Etag": f'"{file.sha256}"',
                "X-Linked-Size": str(file.size),
                "Content-Type": "text/plain; charset=utf-8",
            },
        )

    def _cdn(self, segments: list[str]) -> None:
        file = None
        if len(segments) >= 2 and segments[0] == "lfs" and self.command in ("GET", "HEAD"):
            file = self.server.standin.lfs_blobs.get(segments[1])
        if file is None:
            self._error(404, "Not Found")
            return
        self._stream(file, {"ETag": f'"{file.sha256}"'}, "attachment")


def _true(values: list[str] | None) -> bool:
    return values is not None and values[-1].lower() in ("1", "true")


class HubStandin:
    """Serve ``{repo_id: folder}`` as Hub model repos on two loopback ports (Hub + LFS CDN).

    The folders are read and hashed when the object is made; later changes to them are not seen.
    """

    def __init__(
        self,
        repos: Mapping[str, str | os.PathLike[str]],
        token: str | None = None,
        *,
        access: Literal["gated", "private"] = "gated",
    ) -> None:
        self.repos: dict[str, _Repo] = {rid: _scan(rid, Path(folder)) for rid, folder in repos.items()}
        self.token = token
        self.access = access
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, Hub and CDN port, in arrival order: the path as sent
        (percent-encoded, query string dropped). The live list: a test may slice or clear it."""
        self.received: list[Received] = []
        """The same requests with their headers (e.g. ``Range``), kept apart so ``requests`` stays
        a list of pairs."""
        self.faults: dict[str, _Fault] = {}  # by the file's etag (its sha256, or git blob id)
        self.lfs_blobs: dict[str, HubFile] = {
            f.sha256: f for r in self.repos.values() for f in r.files.values() if f.sha256 is not None
        }
        self.url = ""
        self.cdn_url = ""
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def commit(self, repo_id: str) -> str:
        """The 40-hex commit sha that ``main`` resolves to for this repo."""
        return self.repos[repo_id].commit

    def files(self, repo_id: str) -> dict[str, HubFile]:
        """The repo's files by path, with the sizes and hashes the stand-in reports."""
        return dict(self.repos[repo_id].files)

    def list_file(self, repo_id: str, name: str, local: str | os.PathLike[str]) -> None:
        """List (and serve) ``local`` in the repo under ``name`` exactly as given, as a hostile
        Hub could: ``../x``, ``/etc/x``, ``a\\b`` or a NUL, names no folder on disk can hold.
        The commit stays as it was."""
        file = _hash_file(name, Path(local))
        self.repos[repo_id].files[name] = file
        if file.sha256 is not None:
            self.lfs_blobs[file.sha256] = file

    def interrupt(self, repo_id: str, path: str, after: int, *, then_fail: bool = False) -> None:
        """Cut the next download of ``path`` after byte ``after`` of the file (its headers promise
        the whole body, then the connection closes). Later downloads of it are served as usual, or
        with ``then_fail`` answered ``503`` until ``restore``: a client's in-place retries fail and
        only a later attempt, after ``restore``, can finish it. HEAD requests are never cut."""
        self.faults[self.repos[repo_id].files[path].etag] = _Fault(after, then_fail)

    def restore(self, repo_id: str, path: str) -> None:
        """Serve ``path`` as usual again."""
        self.faults.pop(self.repos[repo_id].files[path].etag, None)

    def set_commit(self, repo_id: str, sha: str) -> None:
        """Report ``sha`` as the repo's commit (and accept it as a revision), whatever it holds."""
        self.repos[repo_id] = dataclasses.replace(self.repos[repo_id], commit=sha)

    def __enter__(self) -> HubStandin:
        roles: tuple[Literal["hub", "cdn"], ...] = ("hub", "cdn")
        for role in roles:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.standin = self
            server.role = role
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"hub-standin-{role}"
            )
            thread.daemon = True
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        hub, cdn = (f"http://127.0.0.1:{s.server_address[1]}" for s in self._servers)
        self.url, self.cdn_url = hub, cdn
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
