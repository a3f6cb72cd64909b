"""Writes about alerts made by people: reviews and the clip access log."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from alerts.audit import ACCESS_ACTIONS, audit_record
from alerts.models import AccessAction, Alert, AuditAction, ClipAccess, ClipPart, ReviewStatus

logger = logging.getLogger(__name__)

# A player fetches one clip in many range requests, and may start again from byte 0 when seeking
# back: count one view per user and alert in this window.
VIEW_DEDUP_SECONDS = 60


def alert_review(*, alert: Alert, user: User, status: ReviewStatus, note: str,
                 ip_address: str | None = None) -> Alert:
    if status not in (ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED):
        raise ValueError(f"A review confirms or dismisses an alert; {status!r} is neither.")
    old_status, old_note = ReviewStatus(alert.review_status), alert.review_note
    alert.review_status = status
    alert.review_note = note.strip()
    alert.reviewed_by = user
    alert.reviewed_at = timezone.now()
    with transaction.atomic():
        alert.save(update_fields=["review_status", "review_note", "reviewed_by", "reviewed_at"])
        audit_record(action=AuditAction.REVIEW, user=user, site_id=alert.camera.site_id, object_type="alert",
                     object_id=alert.pk, ip_address=ip_address,
                     summary=f"Alert #{alert.pk}: {old_status.label.lower()} -> {status.label.lower()}",
                     detail={"old_status": str(old_status), "new_status": str(status), "old_note": old_note,
                             "new_note": alert.review_note})
    logger.info("alert reviewed alert=%s status=%s user=%s", alert.pk, status, user.get_username())
    return alert


def clip_access_record(*, alert: Alert, user: User, action: AccessAction, ip_address: str | None,
                       user_agent: str, part: ClipPart = ClipPart.FIRST) -> ClipAccess:
    # The access log row and its audit entry commit together: `verify_audit` checks they agree.
    with transaction.atomic():
        access = ClipAccess.objects.create(alert=alert, user=user, username=user.get_username(), action=action,
                                           part=part, ip_address=ip_address, user_agent=user_agent[:300])
        audit_record(action=ACCESS_ACTIONS[AccessAction(action)], user=user, site_id=alert.camera.site_id,
                     object_type="alert", object_id=alert.pk, ip_address=ip_address,
                     summary=f"Alert #{alert.pk}: {AccessAction(action).label.lower()} the "
                             f"{ClipPart(part).label.lower()}",
                     detail={"clip_access_id": access.pk, "part": str(part), "alert_id": alert.pk})
    logger.info("clip access alert=%s part=%s action=%s user=%s ip=%s", alert.pk, part, action, user.get_username(),
                ip_address)
    return access


def clip_access_note(*, alert: Alert, user: User, action: AccessAction, ip_address: str | None,
                     user_agent: str, part: ClipPart = ClipPart.FIRST) -> ClipAccess | None:
    """Record that clip bytes were served, whatever the Range asked for, unless the same user
    had the same access to this clip moments ago: seeking makes many range requests for one
    playback, and they are one line of the log."""
    since = timezone.now() - timedelta(seconds=VIEW_DEDUP_SECONDS)
    if ClipAccess.objects.filter(alert=alert, user=user, action=action, part=part, at__gte=since).exists():
        return None
    return clip_access_record(alert=alert, user=user, action=action, ip_address=ip_address, user_agent=user_agent,
                              part=part)
