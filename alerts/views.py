"""The alert dashboard: list, live updates, detail, review, clip playback and download.

Every view that touches one alert fetches it through access.access_alert.
"""
from __future__ import annotations

import logging
import mimetypes
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models.fields.files import FieldFile
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from alerts.access import AlertAccess, AuthenticatedHttpRequest, access_alert
from alerts.audit import audit_tamper, stored_sha256
from alerts.auth import client_ip
from alerts.cases import case_open_at_site, cases_of_alert
from alerts.clip_jobs import download_filename
from alerts.forms import AlertFilterForm, ReviewForm
from alerts.models import AccessAction, Alert, ClipFields, ClipPart, ClipStatus, EventClip, ReviewStatus, clip_storage
from alerts.selectors import (
    Cursor,
    alert_any_after,
    alert_event_types_for,
    alert_latest_id_for,
    alert_list_for,
    alert_new_for,
    alert_page,
    alert_rows_for,
    clip_access_list,
)
from alerts.services import alert_review, clip_access_note
from alerts.streaming import RangeNotSatisfiable, parse_range, ranged_file_response
from cameras.models import Role
from cameras.selectors import best_role

logger = logging.getLogger(__name__)


def _int_list(raw: str, limit: int = 100) -> list[int]:
    return [int(part) for part in raw.split(",")[:limit] if part.strip().isdigit() and len(part.strip()) < 19]


def _int(raw: str) -> int:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) < 19 else 0


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    form = AlertFilterForm(request.GET, user=request.user, event_types=alert_event_types_for(user=request.user))
    form.is_valid()
    ignored = form.ignored()
    before = Cursor.decode(request.GET["before"]) if request.GET.get("before") else None
    if request.GET.get("before") and before is None:
        ignored.append("The page position was not understood; showing the newest alerts.")
    filters = form.filters()
    page = alert_page(alerts=alert_list_for(user=request.user, filters=filters), before=before)
    return render(request, "alerts/list.html", {
        "form": form, "page": page, "ignored": ignored, "is_first_page": before is None,
        "latest_id": alert_latest_id_for(user=request.user, filters=filters) if before is None else 0,
        "poll_seconds": settings.DASHBOARD_POLL_SECONDS, "nav": "alerts",
    })


@login_required
@require_GET
def alert_poll(request: HttpRequest) -> JsonResponse:
    """New rows since `after`, and the current state of the `pending` rows (clips not yet final).

    Open list pages call it every DASHBOARD_POLL_SECONDS (0.5 s), so the usual answer, "nothing
    new", costs one indexed query and no rendering; see README "Live updates" for why polling."""
    after = _int(request.GET.get("after", ""))
    pending = _int_list(request.GET.get("pending", ""))
    if not pending and not alert_any_after(after_id=after):
        return JsonResponse({"latest_id": after, "new_html": "", "updated": {}})
    form = AlertFilterForm(request.GET, user=request.user)
    form.is_valid()
    new = alert_new_for(user=request.user, filters=form.filters(), after_id=after)
    updated = alert_rows_for(user=request.user, ids=pending)
    # Given once, so each row's own render does not ask the database again (the context processor would).
    reviews = best_role(user=request.user) in (Role.REVIEWER, Role.MANAGER)
    return JsonResponse({
        "latest_id": max([after] + [alert.pk for alert in new]),
        "new_html": render_to_string("alerts/_rows.html", {"alerts": new, "is_new": True, "reviews_a_site": reviews},
                                     request),
        "updated": {str(alert.pk): render_to_string("alerts/_row.html", {"alert": alert, "reviews_a_site": reviews},
                                                    request) for alert in updated},
    })


def _detail_context(request: HttpRequest, access: AlertAccess, review_form: ReviewForm | None = None) -> dict[str, Any]:
    alert = access.alert
    return {
        "alert": alert, "access": access, "nav": "alerts",
        "can_review": access.can(Role.REVIEWER), "can_manage": access.can(Role.MANAGER),
        "review_form": review_form or ReviewForm(initial={"note": alert.review_note}),
        "accesses": clip_access_list(alert=alert) if access.can(Role.MANAGER) else None,
        "poll_seconds": settings.DASHBOARD_POLL_SECONDS,
        "admin_url": _admin_url(alert) if access.can(Role.MANAGER) and request.user.is_staff else "",
        "track_overlay": _track_overlay(alert),
        "event_clip": EventClip.objects.filter(alert=alert).first(),
        "cases": cases_of_alert(alert=alert),
        "open_cases": (case_open_at_site(site_id=alert.camera.site_id, exclude_alert=alert)
                       if access.can(Role.REVIEWER) else []),
    }


def _track_overlay(alert: Alert) -> dict[str, Any] | None:
    """What static/js/track_overlay.js draws over the clip, or None where there is nothing to draw.

    Given while the clip is still being built too: the player is swapped in by polling later.
    """
    track = alert.track
    if (not isinstance(track, dict) or not track.get("points") or alert.clip_start is None
            or alert.clip_status == ClipStatus.FAILED):
        return None
    # Points carry epoch seconds; the clip's first frame is at clip_start.
    return {"clip_start": alert.clip_start.timestamp(), "skeleton": track.get("skeleton") or [], "track": track}


def _admin_url(alert: Alert) -> str:
    try:
        return reverse("admin:alerts_alert_change", args=[alert.pk])
    except NoReverseMatch:  # the alert admin is not registered in this deployment
        return ""


@login_required
@require_GET
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    access = access_alert(request, alert_id, Role.VIEWER)
    return render(request, "alerts/detail.html", _detail_context(request, access))


@login_required
@require_POST
def alert_review_view(request: AuthenticatedHttpRequest, alert_id: int) -> HttpResponse:
    access = access_alert(request, alert_id, Role.REVIEWER)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return render(request, "alerts/detail.html", _detail_context(request, access, form), status=400)
    alert_review(alert=access.alert, user=request.user, status=ReviewStatus(form.cleaned_data["decision"]),
                 note=form.cleaned_data["note"], ip_address=client_ip(request))
    messages.success(request, f"Alert #{alert_id} {access.alert.get_review_status_display().lower()}.")
    return redirect("alerts:detail", alert_id=alert_id)


@login_required
@require_GET
def alert_status(request: HttpRequest, alert_id: int) -> JsonResponse:
    """The clip's state for a detail page waiting on it; the player's HTML once it is ready."""
    alert = access_alert(request, alert_id, Role.VIEWER).alert
    final = alert.clip_status in (ClipStatus.READY, ClipStatus.FAILED)
    return JsonResponse({
        "clip_status": alert.clip_status,
        "final": final,
        "player_html": render_to_string("alerts/_player.html", {"alert": alert}, request) if final else "",
    })


def _clip_name(row: ClipFields) -> str:
    clip: FieldFile = row.clip
    if row.clip_status != ClipStatus.READY or not clip.name:
        raise Http404("The clip is not ready yet.")
    return clip.name


def _clip_row(alert: Alert, part: str) -> ClipFields:
    if part != ClipPart.EVENT:
        return alert
    row = EventClip.objects.filter(alert=alert).first()
    if row is None:
        raise Http404("This alert has no whole-event clip.")
    return row


def _asks_whole_file(request: HttpRequest, size: int, etag: str) -> bool:
    """Whether ranged_file_response will send every byte: no Range (or one it ignores), or one from 0 to the end."""
    if_range = request.headers.get("If-Range")
    try:
        byte_range = parse_range(request.headers.get("Range"), size) if not if_range or if_range == etag else None
    except RangeNotSatisfiable:
        return False
    return byte_range is None or (byte_range.start == 0 and byte_range.end >= size - 1)


def _serve_and_record(request: AuthenticatedHttpRequest, alert: Alert, part: str,
                      action: AccessAction) -> HttpResponseBase:
    """Every response that carries clip bytes is recorded, whatever its Range header asked."""
    row = _clip_row(alert, part)
    name = _clip_name(row)
    storage = clip_storage()
    if not storage.exists(name):
        logger.error("clip file missing alert=%s part=%s name=%s", alert.pk, part, name)
        raise Http404("The clip file is missing from storage.")
    etag = f'"{row.clip_sha256}"' if row.clip_sha256 else ""
    # The whole file is re-hashed before it goes out whole: a download, or a request for every byte.
    # The player's ranged requests for a part are not: each seek would re-read the whole clip.
    if row.clip_sha256 and (action == AccessAction.DOWNLOAD or _asks_whole_file(request, storage.size(name), etag)):
        actual = stored_sha256(name)
        if actual != row.clip_sha256:
            audit_tamper(row=row, actual_sha256=actual, via=str(action), user=request.user,
                         ip_address=client_ip(request))
            return HttpResponse(
                f"This clip is not served: the stored file no longer matches the SHA-256 recorded when it was built "
                f"({row.clip_sha256}; it now hashes to {actual}), so it may have been altered. A manager has been told "
                "through the audit log.", status=409, content_type="text/plain; charset=utf-8")
    response = ranged_file_response(request, storage=storage, name=name, content_type="video/mp4",
                                    filename=download_filename(alert, part),
                                    as_attachment=action == AccessAction.DOWNLOAD, etag=etag)
    if response.status_code in (200, 206):
        clip_access_note(alert=alert, user=request.user, action=action, part=ClipPart(part),
                         ip_address=client_ip(request), user_agent=request.headers.get("User-Agent", ""))
    return response


@login_required
@require_GET
def alert_clip(request: AuthenticatedHttpRequest, alert_id: int, part: str = ClipPart.FIRST) -> HttpResponseBase:
    return _serve_and_record(request, access_alert(request, alert_id, Role.VIEWER).alert, part, AccessAction.VIEW)


@login_required
@require_GET
def alert_download(request: AuthenticatedHttpRequest, alert_id: int, part: str = ClipPart.FIRST) -> HttpResponseBase:
    return _serve_and_record(request, access_alert(request, alert_id, Role.REVIEWER).alert, part,
                             AccessAction.DOWNLOAD)


@login_required
@require_GET
def alert_thumbnail(request: HttpRequest, alert_id: int) -> HttpResponseBase:
    alert = access_alert(request, alert_id, Role.VIEWER).alert
    storage = clip_storage()
    if not alert.thumbnail.name or not storage.exists(alert.thumbnail.name):
        raise Http404("No thumbnail.")
    response = ranged_file_response(request, storage=storage, name=alert.thumbnail.name, content_type=mimetypes.guess_type(alert.thumbnail.name)[0] or "image/jpeg",
                                    filename=f"alert-{alert.pk}-thumbnail.jpg", as_attachment=False)
    response["Cache-Control"] = "private, max-age=300"
    return response
