"""Validation rules for what operators type into the admin and the commands.

Every message says what was wrong and what is expected, because the reader is an installer
standing in a stockroom, not a developer.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError

from shoplift.masking import mask_url

RTSP_SCHEMES = ("rtsp", "rtsps")
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def validate_rtsp_url(value: str) -> None:
    shown = mask_url(value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(
            f"'{shown}' is not a valid URL ({exc}). Expected rtsp://[user:password@]host[:port]/path."
        ) from None
    if parts.scheme.lower() not in RTSP_SCHEMES:
        raise ValidationError(
            f"'{shown}' must start with rtsp:// or rtsps:// (got '{parts.scheme or 'no scheme'}'). "
            "Use the RTSP address your DVR gives for the channel, e.g. rtsp://user:password@10.0.0.5:554/ch1."
        )
    if not parts.hostname:
        raise ValidationError(f"'{shown}' has no host. Expected rtsp://[user:password@]host[:port]/path.")
    if port == 0:
        raise ValidationError(f"'{shown}' has port 0; RTSP normally uses 554.")
    if any(ch.isspace() for ch in value):
        raise ValidationError(f"'{shown}' contains whitespace; percent-encode it (%20) or remove it.")


def validate_threshold(value: float | None) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or value != value or not 0.0 <= float(value) <= 1.0:
        raise ValidationError(f"Threshold {value!r} is out of range: a score threshold is a number from 0 to 1 (e.g. 0.5).")


def validate_non_negative_seconds(value: float | None) -> None:
    if value is not None and value < 0:
        raise ValidationError(f"{value} s is negative: durations are 0 seconds or more.")


def validate_clip_timing(*, pre: float, during: float, post: float, ring: float) -> None:
    """Pre-roll comes out of the ring buffer, so the ring must be longer than the pre-roll."""
    for label, value in (("pre-roll", pre), ("during", during), ("post-roll", post), ("ring window", ring)):
        if value < 0:
            raise ValidationError(f"The {label} is {value} s: durations are 0 seconds or more.")
    if pre >= ring:
        raise ValidationError(
            f"The pre-roll ({pre} s) must be shorter than the ring window ({ring} s): the seconds before an "
            "event come from the ring buffer. Lower the pre-roll or raise the ring window."
        )


def _segments_cross(p1: Sequence[float], p2: Sequence[float], q1: Sequence[float], q2: Sequence[float]) -> bool:
    def orient(a: Sequence[float], b: Sequence[float], c: Sequence[float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on_segment(a: Sequence[float], b: Sequence[float], c: Sequence[float]) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and on_segment(q1, q2, p1))
        or (d2 == 0 and on_segment(q1, q2, p2))
        or (d3 == 0 and on_segment(p1, p2, q1))
        or (d4 == 0 and on_segment(p1, p2, q2))
    )


MAX_POLYGON_POINTS = 100  # the checks below are quadratic: 20,000 points kept a web worker busy for 30 s


def validate_polygon(value: Any) -> None:
    """A zone polygon: a list of at least 3 [x, y] points in normalized [0, 1] image coordinates."""
    if not isinstance(value, list):
        raise ValidationError(
            f"A zone polygon is a list of [x, y] points, e.g. [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]; got {type(value).__name__}."
        )
    if len(value) < 3:
        raise ValidationError(f"A zone polygon needs at least 3 points; it has {len(value)}.")
    if len(value) > MAX_POLYGON_POINTS:
        raise ValidationError(
            f"A zone polygon may have at most {MAX_POLYGON_POINTS} points; it has {len(value)}. Outline the zone "
            "with fewer corners."
        )
    points: list[tuple[float, float]] = []
    for i, point in enumerate(value, start=1):
        if (
            not isinstance(point, (list, tuple))
            or len(point) != 2
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in point)
        ):
            raise ValidationError(f"Point {i} of the polygon is {point!r}; each point is [x, y] with two numbers.")
        x, y = float(point[0]), float(point[1])
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValidationError(
                f"Point {i} ({x:g}, {y:g}) lies outside the picture: coordinates are fractions of the width "
                "and height, from 0 to 1."
            )
        points.append((x, y))
    if len(set(points)) != len(points):
        raise ValidationError("The polygon repeats a point; each corner must be different.")
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbouring edges share a corner
            if _segments_cross(*edges[i], *edges[j]):
                raise ValidationError(
                    f"The polygon crosses itself (edge {i + 1} meets edge {j + 1}). Click the corners in order "
                    "around the zone's outline."
                )
    area2 = sum(a[0] * b[1] - b[0] * a[1] for a, b in edges)
    if abs(area2) < 1e-9:
        raise ValidationError("The polygon has no area: its points lie on one line.")


def validate_event_types(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError('Event types are a list of names, e.g. ["zone_activity", "loitering"]; empty means all.')
    for name in value:
        if not EVENT_TYPE_RE.match(name):
            raise ValidationError(
                f"'{name}' is not an event type name: use lower-case letters, digits and underscores, e.g. loitering."
            )


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"'{value}' is not a time zone name; use an IANA name such as Europe/Paris or America/New_York."
        ) from None
    if value not in available_timezones() and value != "UTC":
        raise ValidationError(f"'{value}' is not a time zone name; use an IANA name such as Europe/Paris.")
