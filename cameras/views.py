"""The camera status page: is each camera delivering frames, and if not, why."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from cameras.models import Camera, Site
from cameras.selectors import camera_list_for
from shoplift.masking import mask_text


@dataclass(frozen=True)
class CameraState:
    camera: Camera
    state: str  # online, stale, offline, disabled
    error: str  # passwords masked: errors often quote the RTSP URL


def camera_state(camera: Camera, now: datetime) -> CameraState:
    if not camera.enabled:
        state = "disabled"
    elif not camera.online:
        state = "offline"
    elif camera.last_frame_at is None or now - camera.last_frame_at > timedelta(seconds=settings.CAPTURE_WATCHDOG_SECONDS):
        state = "stale"  # marked online, but no frame for longer than the watchdog allows
    else:
        state = "online"
    return CameraState(camera=camera, state=state, error=mask_text(camera.last_error))


@login_required
@require_GET
def camera_status(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    cameras = camera_list_for(user=request.user).order_by("site__name", "site_id", "channel", "name")
    states = [camera_state(camera, now) for camera in cameras]
    sites: list[tuple[Site, list[CameraState]]] = [
        (group[0].camera.site, group) for group in (list(g) for _, g in groupby(states, key=lambda s: s.camera.site_id))
    ]
    counts = {name: sum(1 for s in states if s.state == name) for name in ("online", "stale", "offline", "disabled")}
    template = "cameras/_status_sites.html" if request.GET.get("fragment") else "cameras/status.html"
    return render(request, template, {"sites": sites, "counts": counts, "total": len(states), "now": now,
                                      "nav": "cameras", "poll_seconds": settings.DASHBOARD_POLL_SECONDS})
