"""The Cameras page: a wall of live pictures, and whether each camera is delivering frames, and if not, why.

Three views, all limited to the cameras of the user's sites:
  camera_status      the page: a tile per camera (zones drawn over it by static/js/wall.js), then
                     the status table (also served alone as a fragment, refreshed by dashboard.js)
  camera_live_frame  GET /cameras/<id>/live.jpg: the camera's latest picture from Redis
                     (cameras.live), or 204 when there is none fresh
  camera_wall_poll   GET /cameras/poll/?after=<alert id>: each camera's state and its newest alert
                     after that id, so a tile can flash and open it
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Max, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.models import Alert
from alerts.templatetags.dashboard import badge, event_label
from cameras.live import live_client, live_frame_get
from cameras.models import Camera, Site, Zone
from cameras.selectors import camera_list_for
from shoplift.masking import mask_text, mask_url

logger = logging.getLogger(__name__)

STATE_LABELS = {"online": "Online", "stale": "No recent frame", "offline": "Offline", "disabled": "Disabled"}
STATUS_REFRESH_SECONDS = 5.0
REDIS_WARNING_EVERY_SECONDS = 60.0
# After Redis failed to answer, this process answers 503 without asking it for a while: a hung
# Redis would otherwise hold a web worker for its timeout on every tile of every open wall.
REDIS_PAUSE_SECONDS = 5.0
_redis_warned_at = -REDIS_WARNING_EVERY_SECONDS
_redis_paused_until = 0.0


@dataclass(frozen=True)
class CameraState:
    camera: Camera
    state: str  # online, stale, offline, disabled
    error: str  # passwords masked: errors often quote the RTSP URL

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


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


def _camera_for_user(request: HttpRequest, camera_id: int) -> Camera:
    """The camera if it is at one of the user's sites; the same 404 whether it exists elsewhere or not."""
    return get_object_or_404(camera_list_for(user=request.user), pk=camera_id)


def _latest_alerts(cameras: QuerySet[Camera], *, after: int) -> dict[int, Alert]:
    """Each camera's newest alert with an id above `after` (two queries, however many cameras)."""
    latest = (Alert.objects.filter(camera__in=cameras, pk__gt=after).values("camera_id")
              .annotate(latest=Max("pk")).values_list("latest", flat=True))
    return {alert.camera_id: alert for alert in Alert.objects.filter(pk__in=list(latest)).only("pk", "camera_id",
                                                                                               "event_type")}


def _wall_data(cameras: QuerySet[Camera]) -> dict[str, Any]:
    """What static/js/wall.js needs beyond the markup: zones per camera, timings, the alert baseline."""
    zones: dict[str, list[dict[str, Any]]] = {}
    for zone in Zone.objects.filter(camera__in=cameras, enabled=True).order_by("camera_id", "name"):
        zones.setdefault(str(zone.camera_id), []).append({"name": zone.name, "kind": zone.kind, "points": zone.polygon})
    after = Alert.objects.filter(camera__in=cameras).aggregate(latest=Max("pk"))["latest"] or 0
    return {"zones": zones, "frame_seconds": settings.LIVE_FRAME_SECONDS, "poll_seconds": settings.DASHBOARD_POLL_SECONDS,
            "after": after}


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
    # A camera's status row changes at most every few seconds (the capture heartbeat): no need to
    # re-render the table at the alert list's pace.
    context: dict[str, Any] = {"sites": sites, "counts": counts, "total": len(states), "now": now, "nav": "cameras",
                               "poll_seconds": max(settings.DASHBOARD_POLL_SECONDS, STATUS_REFRESH_SECONDS)}
    if request.GET.get("fragment"):
        return render(request, "cameras/_status_sites.html", context)
    context["wall"] = _wall_data(cameras)
    return render(request, "cameras/status.html", context)


@login_required
@require_GET
def camera_live_frame(request: HttpRequest, camera_id: int) -> HttpResponse:
    """The camera's latest picture (JPEG, people drawn), or 204 when none is fresh: its detector
    stopped, LIVE_FRAME_SECONDS is 0, or the camera is disabled. 503 while Redis does not answer."""
    camera = _camera_for_user(request, camera_id)
    frame = None
    unavailable = time.monotonic() < _redis_paused_until
    if not unavailable:
        try:
            frame = live_frame_get(live_client(settings.REDIS_URL), camera.pk)
        except redis.RedisError as exc:
            _redis_down(exc)
            unavailable = True
    if unavailable:
        response = HttpResponse("The live picture store (Redis) does not answer.", status=503,
                                content_type="text/plain; charset=utf-8")
    elif frame is None:
        response = HttpResponse(status=204)
    else:
        response = HttpResponse(frame.jpeg, content_type="image/jpeg")
        response["X-Captured-At"] = f"{frame.captured_at:.3f}"
    response["Cache-Control"] = "no-store"
    return response


def _redis_down(exc: redis.RedisError) -> None:
    """Pause asking Redis; log at most once a minute per process (every open wall asks every second)."""
    global _redis_warned_at, _redis_paused_until
    now = time.monotonic()
    _redis_paused_until = now + REDIS_PAUSE_SECONDS
    if now - _redis_warned_at >= REDIS_WARNING_EVERY_SECONDS:
        _redis_warned_at = now
        logger.warning("live pictures: Redis at %s does not answer (%s); the Cameras page shows none for %.0f s, "
                       "then asks again", mask_url(settings.REDIS_URL), mask_text(str(exc)), REDIS_PAUSE_SECONDS)


@login_required
@require_GET
def camera_wall_poll(request: HttpRequest) -> JsonResponse:
    """Each of the user's cameras: its state, and its newest alert above `after` (the page's baseline)."""
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    now = timezone.now()
    cameras = camera_list_for(user=request.user)
    states = {str(camera.pk): camera_state(camera, now) for camera in cameras}
    alerts = _latest_alerts(cameras, after=after)
    response = JsonResponse({
        "cameras": {pk: {"state": s.state, "label": s.label, "badge": badge(s.state)}
                    for pk, s in states.items()},
        "alerts": {str(camera_id): {"id": alert.pk, "url": reverse("alerts:detail", args=[alert.pk]),
                                    "event": event_label(alert.event_type)}
                   for camera_id, alert in alerts.items()},
    })
    response["Cache-Control"] = "no-store"
    return response
