"""Plain functions that build test objects. Fixtures that need several of them live beside the tests."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from alerts.models import Alert
from cameras.models import Camera, Role, Site, SiteMembership, Zone

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"
SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def make_site(name: str | None = None, time_zone: str = "UTC") -> Site:
    return Site.objects.create(name=name or f"Store {next(_seq)}", time_zone=time_zone)


def make_camera(site: Site, name: str | None = None, **fields: Any) -> Camera:
    n = next(_seq)
    fields.setdefault("channel", n)
    fields.setdefault("stream_url", f"rtsp://admin:s3cret@10.0.0.5:554/ch{n}")
    return Camera.objects.create(site=site, name=name or f"Camera {n}", **fields)


def make_zone(camera: Camera, name: str | None = None, **fields: Any) -> Zone:
    fields.setdefault("polygon", SQUARE)
    return Zone.objects.create(camera=camera, name=name or f"Zone {next(_seq)}", **fields)


def make_user(username: str | None = None, *, site: Site | None = None, role: Role | None = None,
              superuser: bool = False) -> AbstractUser:
    User = get_user_model()
    username = username or f"user{next(_seq)}"
    if superuser:
        user = User.objects.create_superuser(username=username, password=PASSWORD, email=f"{username}@example.com")
    else:
        user = User.objects.create_user(username=username, password=PASSWORD, is_staff=role == Role.MANAGER)
    if site is not None and role is not None:
        SiteMembership.objects.create(user=user, site=site, role=role)
    return user


def make_alert(camera: Camera, *, zone: Zone | None = None, at: datetime | None = None, **fields: Any) -> Alert:
    at = at or timezone.now()
    fields.setdefault("event_type", "zone_activity")
    fields.setdefault("score", 0.9)
    fields.setdefault("event_start", at)
    fields.setdefault("clip_start", at - timedelta(seconds=2))
    fields.setdefault("clip_end", at + timedelta(seconds=4))
    return Alert.objects.create(camera=camera, zone=zone, zone_name=zone.name if zone else "", detected_at=at, **fields)
