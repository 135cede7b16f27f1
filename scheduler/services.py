"""Schedule writes and firing (filled by the scheduler work)."""


def fire_due_schedules() -> dict:
    """Fire every due schedule once; called by django-q2's scheduler every minute."""
    return {"fired": 0}
