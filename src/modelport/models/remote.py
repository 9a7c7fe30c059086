"""What a remote source lists and how its files are fetched: the shape hub.py and s3.py share.

Every remote lists; then it either streams one file at a time to the puller (`StreamingRemote`:
S3, which hashes as the bytes go by) or fetches a batch of files into a folder itself
(`FolderRemote`: the Hub, through huggingface_hub's parallel, retrying downloader), after
which the puller hashes and checks what arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelport.models.sources import ModelSource

# Receives each chunk as it arrives; the puller hashes, stores and counts it in one pass.
Write = Callable[[bytes], None]
# Told how many more bytes have arrived (negative when a download starts a file over).
Advance = Callable[[int], None]


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


@runtime_checkable
class Remote(Protocol):
    def listing(self, source: ModelSource) -> RemoteListing: ...


@runtime_checkable
class StreamingRemote(Remote, Protocol):
    def download(self, source: ModelSource, listing: RemoteListing, file: RemoteFile, write: Write) -> None:
        """Stream one file's bytes to ``write``, from the start (a retry starts over)."""
        ...


@runtime_checkable
class FolderRemote(Remote, Protocol):
    def download_into(
        self,
        source: ModelSource,
        listing: RemoteListing,
        files: Sequence[RemoteFile],
        dest: Path,
        advance: Advance,
    ) -> None:
        """Fetch `files` of the listed revision to ``dest/<path>``, several at once. Files an earlier,
        interrupted call finished in `dest` are kept, not fetched again. Nothing is verified here."""
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
