"""Reads the detection configuration from the database into frozen rules for the frame loop.

Called at start-up and on refresh by the detector supervisor, never per frame.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from cameras.models import Camera, Zone
from detection.inference.events import CameraRules, ZoneRule


def zone_rule_from(zone: Zone) -> ZoneRule:
    return ZoneRule(
        id=zone.pk, name=zone.name, polygon=tuple((float(x), float(y)) for x, y in zone.polygon),
        enabled=zone.enabled, threshold=zone.threshold, event_types=frozenset(zone.event_types or ()), kind=zone.kind,
    )


def camera_rules_from(camera: Camera) -> CameraRules:
    timing = camera.timing()
    return CameraRules(
        camera_id=camera.pk, name=str(camera), zones=tuple(zone_rule_from(z) for z in camera.zones.all()),
        threshold=camera.threshold, detector=camera.detector or settings.DETECTOR,
        pre_seconds=timing.pre, during_seconds=timing.during, post_seconds=timing.post,
    )


def camera_rules_list(*, camera_ids: Iterable[int] | None = None) -> dict[int, CameraRules]:
    """Rules of the enabled cameras (optionally only these ids), keyed by camera id."""
    cameras = Camera.objects.filter(enabled=True).select_related("site").prefetch_related("zones")
    if camera_ids is not None:
        cameras = cameras.filter(pk__in=list(camera_ids))
    return {camera.pk: camera_rules_from(camera) for camera in cameras}
