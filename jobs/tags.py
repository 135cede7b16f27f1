"""Job tags: short labels set when a job is created, searched with `?tag=`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
# Letters, digits and . _ : - (ASCII), starting with a letter or digit: safe in URLs,
# in the admin's search box (tag:nightly) and on a command line.
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
TAG_HELP = (
    f"Up to {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters: letters, digits and "
    ". _ : - (starting with a letter or digit)."
)


def tag_problem(tag: Any) -> str | None:
    """Why `tag` is not a valid tag, or None."""
    if not isinstance(tag, str):
        return f"A tag must be text, not {type(tag).__name__}."
    if not tag or len(tag) > MAX_TAG_LENGTH or not TAG_RE.match(tag):
        return f"Invalid tag {tag[:60]!r}: {TAG_HELP}"
    return None


def clean_tags(tags: Any, *, field: str = "tags") -> list[str]:
    """`tags` as a list of unique valid tags in their order; ValidationError under `field`."""
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ValidationError({field: ["Give a list of tags."]})
    tags = list(tags)
    errors = [p for p in (tag_problem(t) for t in tags) if p]
    if errors:
        raise ValidationError({field: errors[:5]})
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValidationError({field: [f"At most {MAX_TAGS} tags."]})
    return unique
