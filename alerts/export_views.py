"""The police export button: POST /alerts/<id>/export/ streams the alert's signed evidence ZIP."""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from alerts.access import AuthenticatedHttpRequest, access_alert
from alerts.auth import client_ip
from alerts.export import ExportError, evidence_export
from cameras.models import Role

logger = logging.getLogger(__name__)


@login_required
@require_POST
def alert_export(request: AuthenticatedHttpRequest, alert_id: int) -> HttpResponseBase:
    alert = access_alert(request, alert_id, Role.REVIEWER).alert
    folder = Path(tempfile.mkdtemp(prefix="shoplift-export-view-"))
    try:
        out = folder / f"evidence-alert-{alert.pk}.zip"
        try:
            evidence_export(alert_ids=[alert.pk], user=request.user, out=out, ip_address=client_ip(request),
                            user_agent=request.headers.get("User-Agent", ""))
        except ExportError as exc:
            logger.warning("evidence export refused alert=%s user=%s: %s", alert.pk, request.user.get_username(), exc)
            messages.error(request, f"The export could not be made: {exc}")
            return redirect("alerts:detail", alert_id=alert.pk)
        # Opened before the folder goes: the open file streams on, and nothing is left on disk.
        handle = out.open("rb")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return FileResponse(handle, as_attachment=True, filename=out.name, content_type="application/zip")
