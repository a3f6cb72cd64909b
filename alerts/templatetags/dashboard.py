"""Small filters for the dashboard templates: site-local times, labels and badge colours."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django import template
from django.utils import dateformat

register = template.Library()

_BADGES = {
    # clip status
    "recording": "amber", "queued": "slate", "building": "blue", "ready": "green", "failed": "red",
    # review status
    "unreviewed": "outline", "confirmed": "red-solid", "dismissed": "slate",
    # camera state
    "online": "green", "stale": "amber", "offline": "red", "disabled": "slate",
}


def _in_site_zone(value: datetime | None, time_zone: str, fmt: str) -> str:
    return "—" if value is None else dateformat.format(value.astimezone(ZoneInfo(time_zone)), fmt)


@register.filter
def site_time(value: datetime | None, time_zone: str) -> str:
    """The moment in the site's own time zone, with the zone's abbreviation: evidence needs no guessing."""
    return _in_site_zone(value, time_zone, "Y-m-d H:i:s T")


@register.filter
def site_clock(value: datetime | None, time_zone: str) -> str:
    return _in_site_zone(value, time_zone, "H:i:s")


@register.filter
def site_day(value: datetime | None, time_zone: str) -> str:
    return _in_site_zone(value, time_zone, "D j M Y")


@register.filter
def event_label(value: str) -> str:
    return value.replace("_", " ").replace("-", " ").capitalize()


@register.filter
def badge(value: str) -> str:
    return f"badge badge-{_BADGES.get(value, 'slate')}"


@register.filter
def percent(value: float | None) -> int:
    return 0 if value is None else max(0, min(100, round(value * 100)))


@register.filter
def seconds_between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.1f} s"
