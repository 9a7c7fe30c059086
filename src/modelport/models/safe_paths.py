"""Names a model source hands over, checked before they become paths in the weight cache.

An S3 key or a Hub ``rfilename`` comes from a server modelport does not control; the cache links
it into a snapshot folder, and a revision names a folder of its own. A name that could climb out
(``..``), start somewhere else (``/etc/x``, ``C:\\x``), mean another path on another system
(``\\``), end a C string early (NUL) or collapse onto another name (``a//b``, ``./a``) is refused,
never repaired: a source that lists one is not trusted with the rest of its files either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeName(ValueError):
    """A file name or revision that could reach outside the cache folder it is meant for."""


def safe_relative_path(name: str) -> PurePosixPath:
    """``name`` as a relative '/'-separated path that stays inside whatever folder it is joined to."""
    problem = _problem(name)
    if problem is not None:
        raise UnsafeName(f"{name!r} {problem}")
    return PurePosixPath(name)


def safe_segment(name: str) -> str:
    """``name`` if it is one plain folder or file name (no '/'), for a key or a revision."""
    if "/" in name:
        raise UnsafeName(f"{name!r} holds a '/': it must be a single name")
    safe_relative_path(name)
    return name


def safe_tree(names: Iterable[str]) -> list[PurePosixPath]:
    """The names as paths, if each is safe, none is listed twice and none is both a file and a
    folder on the way to another (``a`` and ``a/b``: the second would be made through the first)."""
    paths = [safe_relative_path(name) for name in names]
    seen = set(paths)
    if len(seen) != len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise UnsafeName(f"{str(twice)!r} is listed twice")
    for path in paths:
        clash = next((p for p in path.parents if p in seen), None)
        if clash is not None:
            raise UnsafeName(f"{str(clash)!r} is listed as a file and as the folder of {str(path)!r}")
    return paths


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symlink and ``..`` resolved, is ``root`` or lies under it."""
    return path.resolve().is_relative_to(root.resolve())


def _problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if _CONTROL.search(name):
        return "holds a NUL or another control character"
    if "\\" in name:
        return "holds a backslash (a path separator elsewhere)"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"has a {part!r} path segment" if part else "has an empty path segment"
    return None
