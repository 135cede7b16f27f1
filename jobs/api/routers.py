"""URL routing shared by every API app: each route matches with and without its trailing slash.

`/api/jobs/5` and `/api/jobs/5/` reach the same view, so there is no redirect and a
POST or PUT without the slash works too; the documented, canonical form keeps it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.routers import SimpleRouter

OPTIONAL_SLASH = "/?"


class OptionalSlashRouter(SimpleRouter):
    """SimpleRouter whose routes end in an optional slash.

    DRF's `trailing_slash` argument is a boolean ("/" or ""); the regex it is pasted
    into accepts any suffix, and `/?` is the documented way to make the slash optional.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trailing_slash = OPTIONAL_SLASH
