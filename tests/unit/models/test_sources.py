"""Model source strings: local paths, Hub ids with revisions and GGUF files, S3 URLs."""

from __future__ import annotations

import pytest

from modelport.models.sources import ModelSource, SourceError, parse_source


@pytest.mark.parametrize(
    ("text", "revision", "expected"),
    [
        ("/models/chat", None, ModelSource("local", "/models/chat")),
        ("acme/chat", None, ModelSource("hub", "acme/chat")),
        ("hf://acme/chat@v2", None, ModelSource("hub", "acme/chat", "v2")),
        ("acme/chat@v2", "main", ModelSource("hub", "acme/chat", "main")),
        (
            "acme/chat-GGUF/chat.Q4_K_M.gguf",
            None,
            ModelSource("hub", "acme/chat-GGUF", None, "chat.Q4_K_M.gguf"),
        ),
        ("s3://weights/ft/chat", None, ModelSource("s3", "weights/ft/chat")),
        ("s3://weights/ft/chat/", None, ModelSource("s3", "weights/ft/chat")),
        ("s3://weights/ft/m.gguf", None, ModelSource("s3", "weights/ft/m.gguf")),
    ],
)
def test_sources_parse(text: str, revision: str | None, expected: ModelSource) -> None:
    assert parse_source(text, revision) == expected


@pytest.mark.parametrize("text", ["", "chat", "acme/chat/extra", "s3://", "s3://Bad_Bucket/x", "a b/c"])
def test_unreadable_sources_say_which_forms_work(text: str) -> None:
    with pytest.raises(SourceError):
        parse_source(text)


def test_cache_keys_are_file_names_unique_per_source() -> None:
    hub = parse_source("acme/chat@v1")
    assert hub.key == parse_source("acme/chat@v2").key == "hub--acme--chat"
    assert parse_source("s3://weights/acme/chat").key == "s3--weights--acme--chat"
    assert parse_source("acme/chat/x.gguf").key != hub.key
    assert parse_source("acme/chat/x.gguf").is_single_file and not hub.is_single_file
    with pytest.raises(SourceError):
        _ = parse_source("/models/chat").key


def test_revisions_with_shell_or_path_tricks_are_refused() -> None:
    with pytest.raises(SourceError):
        parse_source("acme/chat", revision="../../etc")
    with pytest.raises(SourceError):
        parse_source("acme/chat@main/../../x")


@pytest.mark.parametrize(
    "revision", ["../../x", "..", ".", "a//b", "a/./b", "main/", "main\n", "a\x00b", "a\\b"]
)
def test_revisions_that_are_path_tricks_are_refused_in_every_form(revision: str) -> None:
    forms = [("acme/chat", revision), ("s3://b-1/m", revision)]
    if revision == revision.strip():  # a source string is stripped first
        forms += [(f"acme/chat@{revision}", None), (f"s3://b-1/m@{revision}", None)]
    for text, given in forms:
        with pytest.raises(SourceError):
            parse_source(text, given)


def test_a_branch_with_slashes_is_still_a_revision() -> None:
    assert parse_source("acme/chat", "refs/pr/1").revision == "refs/pr/1"
    assert parse_source("acme/chat@a/b").revision == "a/b"


@pytest.mark.parametrize(
    "text",
    [
        "acme/chat/../../x.gguf",
        "acme/chat/sub/../../../x.gguf",
        "acme/chat/a\\b.gguf",
        "acme/chat/a\x00.gguf",
    ],
)
def test_a_gguf_file_name_that_leaves_the_repository_is_refused(text: str) -> None:
    with pytest.raises(SourceError, match="GGUF file name"):
        parse_source(text)
    assert parse_source("acme/chat/sub/x.Q4.gguf").filename == "sub/x.Q4.gguf"
