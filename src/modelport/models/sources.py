"""Where a model comes from, parsed from the one string users write.

- ``/abs/folder`` or ``/abs/model.gguf``: a local folder or GGUF file, served in place.
- ``org/name`` (also ``hf://org/name``), with ``@revision`` or a separate revision: the Hub, or
  the mirror ``HF_ENDPOINT`` names. ``org/name/file.gguf`` picks one GGUF file of a repository.
- ``s3://bucket/prefix`` (or ``s3://bucket/key.gguf``): an S3-compatible bucket; the endpoint URL
  comes from ``AWS_ENDPOINT_URL`` / ``MODELPORT_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelport.models.safe_paths import UnsafeName, safe_relative_path

Kind = Literal["local", "hub", "s3"]

_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_HUB_RE = re.compile(
    rf"^(?P<repo>{_REPO_PART}/{_REPO_PART})(?P<file>(?:/[^@/]+)*\.gguf)?(?:@(?P<rev>[^@\s]+))?$"
)
_REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


class SourceError(ValueError):
    """A model source string that cannot be understood; the message shows the accepted forms."""


def _valid_revision(revision: str) -> bool:
    """A branch, tag or commit id: never a path trick (``..``, ``a//b``, a trailing newline)."""
    if not _REV_RE.fullmatch(revision) or ".." in revision:  # git refuses ".." anywhere in a ref
        return False
    try:
        safe_relative_path(revision)
    except UnsafeName:
        return False
    return True


@dataclass(frozen=True)
class ModelSource:
    kind: Kind
    location: str  # local: absolute path; hub: org/name; s3: bucket/prefix (no scheme)
    revision: str | None = None  # hub: branch, tag or commit; s3: a pulled version id
    filename: str | None = None  # one GGUF file inside a Hub repository

    @property
    def is_remote(self) -> bool:
        return self.kind != "local"

    @property
    def is_single_file(self) -> bool:
        if self.kind == "hub":
            return self.filename is not None
        return self.location.endswith(".gguf")

    @property
    def key(self) -> str:
        """A file-system-safe name for the cache, unique per source (not per revision)."""
        if self.kind == "local":
            raise SourceError("local models are served in place and have no cache key")
        path = self.location + (f"/{self.filename}" if self.filename else "")
        return f"{self.kind}--" + re.sub(r"[^A-Za-z0-9._-]+", "--", path.strip("/"))

    def display(self) -> str:
        if self.kind == "local":
            return self.location
        base = ("s3://" if self.kind == "s3" else "") + self.location
        if self.filename:
            base += f"/{self.filename}"
        return base + (f"@{self.revision}" if self.revision else "")


def parse_source(text: str, revision: str | None = None) -> ModelSource:
    """Parse a source string; ``revision`` (e.g. the endpoint's model.revision) wins over ``@rev``."""
    value = text.strip()
    if not value:
        raise SourceError("model source is empty")
    if revision is not None and not _valid_revision(revision):
        raise SourceError(f"revision {revision!r} is not a branch, tag or commit id")
    if value.startswith("s3://"):
        rest, _, at_rev = value[5:].partition("@")
        bucket, _, prefix = rest.partition("/")
        if not bucket or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,62}", bucket):
            raise SourceError(f"{text!r}: S3 sources look like s3://bucket/prefix")
        rev = revision or at_rev or None
        if rev is not None and not _valid_revision(rev):
            raise SourceError(f"revision {rev!r} is not a content version")
        return ModelSource("s3", f"{bucket}/{prefix.strip('/')}".rstrip("/"), rev)
    if value.startswith(("/", "./", "../", "~")):
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = path.resolve()
        return ModelSource("local", str(path))
    value = value.removeprefix("hf://")
    match = _HUB_RE.match(value)
    if not match:
        raise SourceError(
            f"cannot read model source {text!r}; use an absolute path, a Hub id like org/name[@revision] "
            "(or org/name/file.gguf), or s3://bucket/prefix"
        )
    file = match.group("file")
    if match.group("rev") and not _valid_revision(match.group("rev")):
        raise SourceError(f"revision {match.group('rev')!r} is not a branch, tag or commit id")
    filename = file.removeprefix("/") if file else None
    if filename is not None:
        try:
            safe_relative_path(filename)  # it becomes a path in the cache's snapshot folder
        except UnsafeName as exc:
            raise SourceError(f"{text!r}: the GGUF file name {exc}") from None
    return ModelSource("hub", match.group("repo"), revision or match.group("rev"), filename)
