"""Paths in manifests and uploaded names can never escape the storage root."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from releases.paths import clean_path, manifest_files


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "a/../../b",
        "a/..",
        "..",
        "/etc/passwd",
        "//server/share",
        "C:/Windows/win.ini",
        "c:evil",
        "a\\..\\b",
        "dir\\file.txt",
        "",
        "   ",
        ".",
        "./",
        "dir/",
        "a\x00b",
        "line\nbreak",
        "x" * 501,
        None,
        42,
    ],
)
def test_a_path_that_could_escape_or_is_not_a_file_name_is_refused(path):
    with pytest.raises(ValidationError):
        clean_path(path)


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("README", "README"),
        ("dir/sub/file.bin", "dir/sub/file.bin"),
        ("./dir//file.txt", "dir/file.txt"),
        ("a/./b", "a/b"),
        ("name with spaces.txt", "name with spaces.txt"),
        ("..hidden-but-not-up", "..hidden-but-not-up"),
    ],
)
def test_a_plain_relative_path_is_accepted_in_normal_form(path, clean):
    assert clean_path(path) == clean


def test_a_manifest_listing_a_traversing_or_absolute_path_is_refused():
    with pytest.raises(ValidationError) as exc:
        manifest_files({"files": ["ok.txt", "../../etc/passwd", {"path": "/abs"}]})
    messages = exc.value.message_dict["manifest"]
    assert any("files[1]" in m and ".." in m for m in messages)
    assert any("files[2]" in m and "absolute" in m for m in messages)


def test_a_manifest_entry_describing_a_link_is_refused():
    with pytest.raises(ValidationError, match="links are not allowed"):
        manifest_files({"files": [{"path": "lib.so", "type": "symlink"}]})
    with pytest.raises(ValidationError, match="links are not allowed"):
        manifest_files({"files": [{"path": "lib.so", "link_target": "/etc/passwd"}]})


def test_a_manifest_must_be_an_object_with_a_list_of_files():
    with pytest.raises(ValidationError):
        manifest_files(["a"])
    with pytest.raises(ValidationError):
        manifest_files({"files": "a"})
    with pytest.raises(ValidationError, match="listed twice"):
        manifest_files({"files": ["a", "./a"]})
    with pytest.raises(ValidationError, match="sha256"):
        manifest_files({"files": [{"path": "a", "sha256": "nothex"}]})


def test_a_manifest_without_files_declares_none():
    assert manifest_files({"notes": "anything"}) == {}
    assert manifest_files({"files": ["a", {"path": "b/c", "size": 3}]}) == {
        "a": {"size": None, "sha256": None},
        "b/c": {"size": 3, "sha256": None},
    }
