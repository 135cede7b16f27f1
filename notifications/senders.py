"""Sending one delivery: a signed webhook POST or an email. Called by the notify.* jobs.

A failure raises, so the job retries with backoff (jobs.engine.retry_delay); a
delivery already sent is never sent again, whatever redelivers its job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.http.request import validate_host
from django.utils import timezone

from jobs.worker.context import JobContext

from .models import Channel, Delivery

SIGNATURE_HEADER = "X-Jobdeck-Signature-256"
DELIVERY_HEADER = "X-Jobdeck-Delivery"
EVENT_HEADER = "X-Jobdeck-Event"
USER_AGENT = "Jobdeck-Webhook/1"


class DeliveryFailed(Exception):
    """The receiver refused the delivery or could not be reached (the job retries)."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` + HMAC-SHA256(secret, body) in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: compare the header with its own signature, in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


def host_allowed(url: str) -> bool:
    """Is `url` an http(s) URL whose host JOBDECK_WEBHOOK_ALLOWED_HOSTS allows?

    The patterns are ALLOWED_HOSTS's: `hooks.example.com`, `.example.com` (the domain
    and its subdomains), `*` (anything). Empty allows nothing.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return validate_host(parts.hostname, settings.JOBDECK_WEBHOOK_ALLOWED_HOSTS)


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure, never followed: it could leave the allow-list."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_webhook(url: str, secret: str, delivery: Delivery) -> int:
    """POST the delivery's payload to `url`; the HTTP status (2xx) or DeliveryFailed."""
    if not host_allowed(url):
        raise DeliveryFailed(
            f"{urlsplit(url).hostname!r} is not in JOBDECK_WEBHOOK_ALLOWED_HOSTS; not sent"
        )
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: str(delivery.delivery_id),
        EVENT_HEADER: delivery.event,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=settings.JOBDECK_WEBHOOK_TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"the receiver answered HTTP {exc.code}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"could not reach the receiver: {reason}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {status}", status)
    return status


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of an email delivery."""
    event = payload.get("event", "")
    job = payload.get("job") or {}
    queue = payload.get("queue") or {}
    if job:
        subject = (
            f"[Jobdeck] {event}: job #{job.get('id')} {job.get('job_type')} {job.get('status')}"
        )
    elif queue:
        subject = f"[Jobdeck] {event}: queue {queue.get('name')}"
    else:
        subject = f"[Jobdeck] {event}: {payload.get('rule', {}).get('name', '')}"
    lines = [f"Rule: {payload.get('rule', {}).get('name', '')}", f"Event: {event}"]
    if job:
        lines += [f"{key}: {value}" for key, value in job.items() if key != "error"]
        if job.get("error"):
            lines += ["", "Error:", str(job["error"])]
    if queue:
        lines += [f"{key}: {value}" for key, value in queue.items()]
    lines += ["", f"Delivery: {payload.get('delivery_id')}"]
    return subject[:200], "\n".join(lines) + "\n"


def deliver(ctx: JobContext, delivery_id: int) -> dict[str, Any]:
    """Send delivery `delivery_id` once (the notify.* jobs' handler)."""
    delivery = Delivery.objects.select_related("rule").filter(pk=delivery_id).first()
    if delivery is None:
        ctx.log("the delivery no longer exists (its rule was deleted): nothing to send")
        return {"sent": False, "reason": "gone"}
    if delivery.sent_at is not None:
        # A redelivered or retried job whose send had already gone out.
        ctx.log(f"delivery {delivery.delivery_id} was already sent at {delivery.sent_at}")
        return {"sent": True, "already": True}
    rule = delivery.rule
    Delivery.objects.filter(pk=delivery.pk).update(attempts=ctx.attempt)
    try:
        if delivery.channel == Channel.WEBHOOK:
            ctx.log(f"POST {rule.url} (delivery {delivery.delivery_id}, attempt {ctx.attempt})")
            status = post_webhook(rule.url, rule.secret, delivery)
            outcome: dict[str, Any] = {"sent": True, "status": status}
        else:
            recipients = list(delivery.payload.get("recipients") or [])
            if not recipients:
                ctx.log("no recipient: nothing to send")
                return {"sent": False, "reason": "no recipients"}
            subject, text = email_text(delivery.payload)
            ctx.log(f"mailing {len(recipients)} recipient(s): {subject}")
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, recipients)
            status, outcome = 0, {"sent": True, "recipients": len(recipients)}
    except Exception as exc:
        code = exc.http_status if isinstance(exc, DeliveryFailed) else None
        Delivery.objects.filter(pk=delivery.pk).update(
            last_error=f"{type(exc).__name__}: {exc}"[:2000], response_status=code
        )
        ctx.log(f"attempt {ctx.attempt} failed: {exc}")
        raise
    Delivery.objects.filter(pk=delivery.pk).update(
        sent_at=timezone.now(), response_status=status or None, last_error=""
    )
    ctx.log("sent")
    return outcome
