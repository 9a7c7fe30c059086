"""Whether a local model folder's safetensors files are whole, from their headers alone.

An endpoint on a local folder is served in place, so nothing pulls or verifies its files; a
truncated copy would be accepted and then fail every replica that loads it. Each file's header
(8-byte length + JSON) says where its last tensor ends, so a size check finds a file cut short
in two small reads per file (`formats.check_safetensors_file`), whatever the model's size.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelport.models.formats import SAFETENSORS_SUFFIX, FormatError, check_safetensors_file
from modelport.models.sources import SourceError, parse_source


def local_weights_problem(repository: str) -> str | None:
    """One line naming the first damaged *.safetensors file of a local model folder, else None
    (also None for a Hub or S3 source, which the weight cache verifies, and for a GGUF file)."""
    try:
        source = parse_source(repository)
    except SourceError:
        return None  # the spec's own validation words this
    folder = Path(source.location)
    if source.kind != "local" or not folder.is_dir():
        return None
    for path in safetensors_files(folder):
        try:
            check_safetensors_file(path)
        except FormatError as exc:
            return str(exc)
        except OSError as exc:  # gone or unreadable between the listing and the check
            return f"{path}: cannot read ({exc.strerror})"
    return None


def safetensors_files(folder: Path) -> list[Path]:
    """Every *.safetensors file under `folder` (pipelines keep theirs in subfolders), sorted;
    hidden folders (a download tool's .cache) are skipped, and links to folders not followed."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root, name) for name in sorted(files) if name.endswith(SAFETENSORS_SUFFIX)]
    return found
