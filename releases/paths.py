"""Validation of the relative paths that name a version's files (manifests, uploads).

A path names a file *inside* a version; it must never be able to escape the
storage root, whatever storage or operating system reads it later. So the rules
are strict and explicit rather than "whatever normpath makes of it".
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from django.core.exceptions import ValidationError

MAX_PATH_LENGTH = 500
_DRIVE = re.compile(r"^[A-Za-z]:")
# Keys a manifest entry may use to describe a link; links are refused outright.
_LINK_KEYS = frozenset({"link", "symlink", "link_target", "linkname", "target"})
_LINK_TYPES = frozenset({"link", "symlink", "hardlink"})


def clean_path(path: Any) -> str:
    """The normalised relative path, or ValidationError saying why it is refused.

    Refused: non-strings, empty, absolute (`/x`), backslashes, drive letters
    (`C:x`), any `..` segment, NUL and control characters, over 500 characters.
    Normalised: `./` segments and repeated slashes are dropped.
    """
    if not isinstance(path, str):
        raise ValidationError("A path must be a string.")
    if not path or not path.strip():
        raise ValidationError("A path must not be empty.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise ValidationError(f"Path {path!r} contains control characters.")
    if "\\" in path:
        raise ValidationError(f"Path {path!r} contains a backslash.")
    if _DRIVE.match(path):
        raise ValidationError(f"Path {path!r} names a drive.")
    if path.startswith("/"):
        raise ValidationError(f"Path {path!r} is absolute.")
    segments = path.split("/")
    if ".." in segments:
        raise ValidationError(f"Path {path!r} goes up a directory ('..').")
    parts = [s for s in segments if s not in ("", ".")]
    if not parts:
        raise ValidationError(f"Path {path!r} names no file.")
    if path.endswith("/"):
        raise ValidationError(f"Path {path!r} names a directory, not a file.")
    clean = "/".join(parts)
    # Belt and braces: what we built must already be normal and relative.
    if posixpath.normpath(clean) != clean or posixpath.isabs(clean):
        raise ValidationError(f"Path {path!r} is not a plain relative path.")
    if len(clean) > MAX_PATH_LENGTH:
        raise ValidationError(f"Path {path[:40]!r}… is longer than {MAX_PATH_LENGTH} characters.")
    return clean


def manifest_files(manifest: Any) -> dict[str, dict]:
    """The files a manifest declares, by clean path; ValidationError under `manifest`.

    A manifest is a JSON object. Its optional `files` entry is a list of paths or
    of objects `{"path", "size"?, "sha256"?}`. Any entry describing a link is refused.
    """
    if not isinstance(manifest, dict):
        raise ValidationError({"manifest": ["The manifest must be a JSON object."]})
    if _has_nul(manifest):
        # PostgreSQL's jsonb cannot hold \u0000; refuse it as input, not as a 500.
        raise ValidationError({"manifest": ["The manifest must not contain NUL characters."]})
    entries = manifest.get("files", [])
    if not isinstance(entries, list):
        raise ValidationError({"manifest": ["manifest.files must be a list."]})
    files: dict[str, dict] = {}
    errors: list[str] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            errors.append(f"files[{i}]: must be a path or an object with a 'path'.")
            continue
        if _LINK_KEYS & set(entry) or str(entry.get("type", "")).lower() in _LINK_TYPES:
            errors.append(f"files[{i}]: links are not allowed.")
            continue
        try:
            path = clean_path(entry["path"])
        except ValidationError as exc:
            errors.append(f"files[{i}]: {exc.messages[0]}")
            continue
        if path in files:
            errors.append(f"files[{i}]: {path!r} is listed twice.")
            continue
        size, sha = entry.get("size"), entry.get("sha256")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            errors.append(f"files[{i}]: size must be a non-negative integer.")
        if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            errors.append(f"files[{i}]: sha256 must be 64 lowercase hex digits.")
        files[path] = {"size": size, "sha256": sha}
    if errors:
        raise ValidationError({"manifest": errors})
    return files


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 100:  # parsers cap nesting; this only bounds our own recursion
        return False
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False
