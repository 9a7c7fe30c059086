"""Plan a Hub or S3 model without pulling it: its config and weight-file headers, fetched into a folder.

`inspect_model` reads config.json (and the shard index) plus the first bytes of each weight file:
a safetensors header, or a GGUF file's metadata and tensor table. `fetch_plan_folder` writes
exactly those into a local folder, with ranged GETs through the same remotes `models pull` uses,
so one code path serves the Hub and S3 and a 141 GB checkpoint is sized from well under 1 MB:

- a *.safetensors file becomes a header-only copy (8-byte length + header JSON, no data);
- a .gguf file becomes its header followed by a hole: the file is extended, sparse, to its
  listed size, because the GGUF reader maps tensor data by offset (it never reads it);
- a pickle file becomes an empty placeholder: it is never opened, its name tells `inspect_model`
  that the parameters must come from config.json;
- config.json, generation_config.json and model.safetensors.index.json are copied whole.

Errors are `PullError`s whose message says what to do.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelport.models.formats import (
    GGUF_SUFFIX,
    MAX_HEADER_BYTES,
    SAFETENSORS_SUFFIX,
    FormatError,
    gguf_header_length,
    is_pickle,
    parse_safetensors_header,
)
from modelport.models.pull import check_listing, check_s3_version, remote_for, select_files
from modelport.models.remote import PullError, RangedRemote, RemoteFile, RemoteListing
from modelport.models.sources import ModelSource

PLAN_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json")
MAX_JSON_BYTES = 64 * 1024 * 1024  # the largest shard index is a few MB
SAFETENSORS_FIRST_READ = 100_000  # holds a whole header for nearly every shard (a 70B shard: ~3 kB)
GGUF_FIRST_READ = 1024 * 1024  # tokenizer arrays make GGUF headers 1-20 MB; the window grows ×4
MAX_GGUF_HEADER = 512 * 1024 * 1024
PARALLEL_READS = 8
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")

Read = Callable[[int, int], bytes]  # bytes [start, stop) of one remote file


def fetch_plan_folder(source: ModelSource, dest: Path, remote: RangedRemote | None = None) -> Path:
    """Write into `dest` what `inspect_model` needs to plan `source`; returns the path to inspect
    (`dest`, or the .gguf file in it for a single-file source)."""
    if not source.is_remote:
        raise PullError(f"{source.display()} is a local path: plan it in place")
    remote = remote or remote_for(source)
    where = source.display()
    listing = remote.listing(source)
    check_listing(listing, where)  # names become files in dest
    check_s3_version(source, listing)
    dest.mkdir(parents=True, exist_ok=True)
    if source.is_single_file:
        return _fetch_gguf(remote, source, listing, dest, where)
    chosen = select_files(listing.files, False, allow_pickle=True, trust_remote_code=False, where=where)

    def fetch(file: RemoteFile) -> None:
        read = _reader(remote, source, listing, file)
        target = dest / file.path
        if file.path.endswith(SAFETENSORS_SUFFIX):
            target.write_bytes(_safetensors_header(read, file, where))
        elif file.path in PLAN_FILES:
            if file.size > MAX_JSON_BYTES:
                raise PullError(f"{where}: {file.path} is {file.size:,} bytes, too large for a config file")
            target.write_bytes(read(0, file.size))
        elif is_pickle(file.path):
            target.touch()

    _each(fetch, [f for f in chosen if "/" not in f.path])  # inspect_model reads the top folder only
    return dest


def _each(fetch: Callable[[RemoteFile], None], files: list[RemoteFile]) -> None:
    """Fetch files side by side: each is a round trip or two (a redirect to the CDN), and a large
    checkpoint has a hundred shards or more."""
    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
        for done in [pool.submit(fetch, f) for f in files]:
            done.result()


def _reader(remote: RangedRemote, source: ModelSource, listing: RemoteListing, file: RemoteFile) -> Read:
    return lambda start, stop: remote.read_range(source, listing, file, start, stop)


def _safetensors_header(read: Read, file: RemoteFile, where: str) -> bytes:
    """The 8-byte length and the header JSON: one ranged read, a second only for a longer header."""
    head = read(0, SAFETENSORS_FIRST_READ)
    name = f"{where}: {file.path}"
    if len(head) < 8:
        raise PullError(f"{name} is {len(head)} bytes long: not a safetensors file")
    (length,) = struct.unpack("<Q", head[:8])
    if length > MAX_HEADER_BYTES or 8 + length > file.size:
        raise PullError(f"{name} is not a safetensors file (header length {length:,})")
    if len(head) < 8 + length:
        head += read(len(head), 8 + length)
    head = head[: 8 + length]
    try:
        parse_safetensors_header(head, name)
    except FormatError as exc:
        raise PullError(str(exc)) from None
    return head


def _fetch_gguf(
    remote: RangedRemote, source: ModelSource, listing: RemoteListing, dest: Path, where: str
) -> Path:
    """One .gguf file, with every other shard of a split one (inspect_model wants them side by side)."""
    wanted = source.filename or source.location.rsplit("/", 1)[-1]
    if not any(f.path == wanted for f in listing.files):
        raise PullError(f"{where}: no file {wanted} at revision {listing.revision[:12]}")
    match = _SHARD.search(wanted)
    if match and source.kind == "s3":
        # a single-object listing holds only its own key: list the folder for the other shards
        bucket, _, key = source.location.partition("/")
        folder = key.rpartition("/")[0]
        source = ModelSource("s3", f"{bucket}/{folder}" if folder else bucket)
        listing = remote.listing(source)
        check_listing(listing, where)
        wanted = key.rpartition("/")[2]
    names = [wanted]
    if match:
        stem, count = wanted[: -len(match.group(0))], int(match.group(2))
        names = [f"{stem}-{i:05d}-of-{count:05d}{GGUF_SUFFIX}" for i in range(1, count + 1)]
    found = {f.path: f for f in listing.files}
    missing = [n for n in names if n not in found]
    if missing:
        raise PullError(f"{where}: GGUF shard {missing[0]} is not in the source")

    def fetch(file: RemoteFile) -> None:
        target = dest / file.path.rpartition("/")[2]
        target.write_bytes(_gguf_header(_reader(remote, source, listing, file), file, where))
        os.truncate(target, file.size)  # a hole where the tensor data would be: no disk, no download

    _each(fetch, [found[n] for n in names])
    return dest / wanted.rpartition("/")[2]


def _gguf_header(read: Read, file: RemoteFile, where: str) -> bytes:
    name = f"{where}: {file.path}"
    head = read(0, GGUF_FIRST_READ)
    try:
        while (end := gguf_header_length(head, name)) is None:
            if len(head) >= min(file.size, MAX_GGUF_HEADER):
                raise FormatError(f"{name}: its GGUF header is cut short or over {MAX_GGUF_HEADER:,} bytes")
            head += read(len(head), 4 * len(head))
    except FormatError as exc:
        raise PullError(f"{exc}; run `modelport models pull {where}` and plan the pulled copy") from None
    return head[:end]
