"""The one check every name from a model source passes before it becomes a path in the cache."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from modelport.models.safe_paths import UnsafeName, is_inside, safe_relative_path, safe_segment, safe_tree

HOSTILE = [
    ("", "is empty"),
    ("..", "'..' path segment"),
    ("../x", "'..' path segment"),
    ("a/../../x", "'..' path segment"),
    ("a/..", "'..' path segment"),
    (".", "'.' path segment"),
    ("./x", "'.' path segment"),
    ("a/./b", "'.' path segment"),
    ("/etc/x", "absolute path"),
    ("/", "absolute path"),
    ("C:\\x", "backslash"),
    ("C:x", "absolute path"),
    ("a\\b", "backslash"),
    ("..\\x", "backslash"),
    ("a\x00b", "NUL"),
    ("a\nb", "control character"),
    ("a//b", "empty path segment"),
    ("a/", "empty path segment"),
]


@pytest.mark.parametrize(("name", "problem"), HOSTILE)
def test_names_that_could_leave_their_folder_are_refused_with_the_reason(name: str, problem: str) -> None:
    with pytest.raises(UnsafeName) as refused:
        safe_relative_path(name)
    assert repr(name) in str(refused.value)
    assert problem in str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    "name", ["config.json", "onnx/model.onnx", "a..b/.hidden.json", "x.gguf", "dir with space/f-1_2.json"]
)
def test_plain_relative_names_pass_unchanged(name: str) -> None:
    assert safe_relative_path(name) == PurePosixPath(name)
    assert str(safe_relative_path(name)) == name


def test_a_segment_is_one_safe_name() -> None:
    assert safe_segment("0" * 40) == "0" * 40
    assert safe_segment("refs%2Fpr%2F1") == "refs%2Fpr%2F1"
    for bad in ("a/b", "..", ".", "", "a\x00", "a\\b"):
        with pytest.raises(UnsafeName):
            safe_segment(bad)


def test_a_tree_has_no_duplicates_and_no_file_on_the_way_to_another() -> None:
    assert safe_tree(["config.json", "sub/a.json", "sub/b.json"]) == [
        PurePosixPath("config.json"),
        PurePosixPath("sub/a.json"),
        PurePosixPath("sub/b.json"),
    ]
    with pytest.raises(UnsafeName, match="listed twice"):
        safe_tree(["a.json", "a.json"])
    with pytest.raises(UnsafeName, match=r"as a file and as the folder of 'a/b/c\.json'"):
        safe_tree(["a", "a/b/c.json"])
    with pytest.raises(UnsafeName, match=r"'\.\.' path segment"):
        safe_tree(["config.json", "../x.json"])


def test_inside_resolves_links_and_dots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "out").symlink_to(tmp_path / "elsewhere")
    assert is_inside(root / "sub", root)
    assert is_inside(root, root)
    assert not is_inside(root / "sub" / ".." / "..", root)
    assert not is_inside(root / "out", root)
    assert not is_inside(root / "out" / "x", root)
