"""What a remote source lists and how its files are fetched: the shape hub.py and s3.py share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from modelport.models.sources import ModelSource

# Receives each chunk as it arrives; the puller hashes, stores and counts it in one pass.
Write = Callable[[bytes], None]


class PullError(Exception):
    """A pull that cannot go on; the message says what went wrong and what to do."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None = None  # the Hub's LFS oid
    git_sha1: str | None = None  # the Hub's git blob id (small files)
    md5: str | None = None  # a single-part S3 ETag
    etag: str | None = None  # an S3 ETag as listed: unchanged ETag and size mean unchanged content


@dataclass(frozen=True)
class RemoteListing:
    revision: str  # the resolved revision: a commit sha, or an S3 content version
    files: tuple[RemoteFile, ...]
    origin: dict[str, str] = field(default_factory=dict)


class Remote(Protocol):
    def listing(self, source: ModelSource) -> RemoteListing: ...

    def download(self, source: ModelSource, listing: RemoteListing, file: RemoteFile, write: Write) -> None:
        """Stream one file's bytes to ``write``, from the start (a retry starts over)."""
        ...


class RangedRemote(Remote, Protocol):
    """A remote that also reads part of a file: the planner fetches headers, never whole weights."""

    def read_range(
        self, source: ModelSource, listing: RemoteListing, file: RemoteFile, start: int, stop: int
    ) -> bytes:
        """Bytes [start, stop) of one file, clipped at its end."""
        ...


def take_range(chunks: Iterable[bytes], skip: int, count: int) -> bytes:
    """`count` bytes after the first `skip` of a stream, read no further: a server that ignores
    Range answers with the whole file from its start, and that may be a hundred gigabytes."""
    out = bytearray()
    for chunk in chunks:
        if skip:
            dropped = min(skip, len(chunk))
            chunk, skip = chunk[dropped:], skip - dropped
        out += chunk[: count - len(out)]
        if len(out) >= count:
            break
    return bytes(out)
