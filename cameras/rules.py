"""How per-deployment, per-camera and per-zone settings combine."""
from __future__ import annotations

from django.conf import settings

from cameras.models import Camera, Zone


def threshold_for(camera: Camera, zone: Zone | None = None) -> float:
    """The score an event must reach: the zone's threshold, else the camera's, else the deployment default."""
    if zone is not None and zone.threshold is not None:
        return zone.threshold
    if camera.threshold is not None:
        return camera.threshold
    return float(settings.DETECTION_THRESHOLD)
