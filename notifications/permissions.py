"""Who may see and change notification rules.

- Any active signed-in user may create rules; a rule notifies of what its owner may
  see (jobs.permissions.visible_jobs), so it can never reveal another user's jobs.
- Seeing, changing, testing and deleting a rule: its owner, holders of
  `notifications.manage_all_rules`, superusers. A rule one may not see is a 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import NotificationRule

MANAGE_ALL_RULES = "notifications.manage_all_rules"


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def may_create(user: Any) -> bool:
    return _active(user)


def sees_all(user: Any) -> bool:
    return _active(user) and user.has_perm(MANAGE_ALL_RULES)


def visible_rules(rules: QuerySet[NotificationRule], user: Any) -> QuerySet[NotificationRule]:
    if not _active(user):
        return rules.none()
    return rules if sees_all(user) else rules.filter(created_by=user)


def may_manage(user: Any, rule: NotificationRule) -> bool:
    if not _active(user):
        return False
    return sees_all(user) or (rule.created_by_id is not None and rule.created_by_id == user.pk)
