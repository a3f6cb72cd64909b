"""Reads about alerts, always scoped to what the user may see."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import QuerySet

from alerts.models import Alert, ClipAccess
from cameras.selectors import AnyUser, site_list_for

PAGE_SIZE = 50
POLL_LIMIT = 50
EVENT_TYPES_CACHE_SECONDS = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AlertFilters:
    site_id: int | None = None
    camera_id: int | None = None
    zone_id: int | None = None
    event_type: str | None = None
    review_status: str | None = None
    clip_status: str | None = None
    detected_from: datetime | None = None  # inclusive
    detected_until: datetime | None = None  # exclusive
    min_score: float | None = None


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: (detected_at, id) of the last row already shown."""

    detected_at: datetime
    id: int

    _FORMAT = re.compile(r"^(-?\d{1,20})-(\d{1,20})$")

    def encode(self) -> str:
        return f"{(self.detected_at - _EPOCH) // timedelta(microseconds=1)}-{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor | None:
        match = cls._FORMAT.match(raw.strip())
        if match is None:
            return None
        try:
            detected_at = _EPOCH + timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            return None
        return cls(detected_at=detected_at, id=int(match.group(2)))


@dataclass(frozen=True)
class AlertPage:
    alerts: list[Alert]
    next_cursor: str | None  # None on the last page


def _visible(user: AnyUser) -> QuerySet[Alert]:
    alerts = Alert.objects.all()
    if not (user.is_active and getattr(user, "is_superuser", False)):
        alerts = alerts.filter(camera__site__in=site_list_for(user=user))
    return alerts


def alert_list_for(*, user: AnyUser, filters: AlertFilters = AlertFilters()) -> QuerySet[Alert]:
    """The user's alerts matching the filters, newest first, with what a list row shows joined in."""
    alerts = _visible(user).select_related("camera__site")
    f = filters
    if f.site_id is not None:
        alerts = alerts.filter(camera__site_id=f.site_id)
    if f.camera_id is not None:
        alerts = alerts.filter(camera_id=f.camera_id)
    if f.zone_id is not None:
        alerts = alerts.filter(zone_id=f.zone_id)
    if f.event_type:
        alerts = alerts.filter(event_type=f.event_type)
    if f.review_status:
        alerts = alerts.filter(review_status=f.review_status)
    if f.clip_status:
        alerts = alerts.filter(clip_status=f.clip_status)
    if f.detected_from is not None:
        alerts = alerts.filter(detected_at__gte=f.detected_from)
    if f.detected_until is not None:
        alerts = alerts.filter(detected_at__lt=f.detected_until)
    if f.min_score is not None:
        alerts = alerts.filter(score__gte=f.min_score)
    return alerts.order_by("-detected_at", "-id")


def alert_page(*, alerts: QuerySet[Alert], before: Cursor | None = None, size: int = PAGE_SIZE) -> AlertPage:
    """One page by keyset: rows after the cursor, so page 2000 costs what page 1 costs (no OFFSET)."""
    if before is not None:
        # Written as "<= t, except the rows at t already shown" so that the database walks the
        # detected_at index backwards with one range condition instead of OR-ing two scans.
        alerts = alerts.filter(detected_at__lte=before.detected_at).exclude(
            detected_at=before.detected_at, id__gte=before.id
        )
    rows = list(alerts[: size + 1])
    if len(rows) <= size:
        return AlertPage(alerts=rows, next_cursor=None)
    rows = rows[:size]
    return AlertPage(alerts=rows, next_cursor=Cursor(detected_at=rows[-1].detected_at, id=rows[-1].pk).encode())


def alert_latest_id_for(*, user: AnyUser, filters: AlertFilters = AlertFilters()) -> int:
    """The highest alert id the list has seen; polling asks for ids above it."""
    return alert_list_for(user=user, filters=filters).order_by("-id").values_list("id", flat=True).first() or 0


def alert_any_after(*, after_id: int) -> bool:
    """Whether any alert at all was created after this id: the live poll's cheap first question
    (a primary-key probe), before it asks which of them this user may see."""
    return Alert.objects.filter(id__gt=after_id).exists()


def alert_new_for(*, user: AnyUser, filters: AlertFilters, after_id: int) -> list[Alert]:
    """Alerts created since the list (or the last poll) was rendered, newest first."""
    return list(alert_list_for(user=user, filters=filters).filter(id__gt=after_id)[:POLL_LIMIT])


def alert_rows_for(*, user: AnyUser, ids: list[int]) -> list[Alert]:
    """Current state of some rows already on screen (to refresh their clip status)."""
    return list(alert_list_for(user=user).filter(id__in=ids[:POLL_LIMIT]))


def alert_event_types_for(*, user: AnyUser) -> list[str]:
    """The event types among the user's alerts, for the list's filter. Cached a minute per user:
    the DISTINCT scans every visible alert (tens of ms at 100,000), and the answer rarely changes."""
    key = f"alerts:event-types:{user.pk}"
    types: list[str] | None = cache.get(key)
    if types is None:
        types = list(_visible(user).order_by("event_type").values_list("event_type", flat=True).distinct())
        cache.set(key, types, EVENT_TYPES_CACHE_SECONDS)
    return types


def clip_access_list(*, alert: Alert, limit: int = 200) -> list[ClipAccess]:
    return list(ClipAccess.objects.filter(alert=alert).order_by("-at", "-id")[:limit])
