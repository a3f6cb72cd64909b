"""The police export buttons: POST /alerts/<id>/export/ and /cases/<id>/export/ stream the signed evidence ZIP."""
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

from alerts.access import AuthenticatedHttpRequest, access_alert, access_case
from alerts.auth import client_ip
from alerts.export import ExportError, evidence_export
from alerts.models import Case
from cameras.models import Role

logger = logging.getLogger(__name__)


def _export_response(request: AuthenticatedHttpRequest, *, name: str, alert_ids: list[int], case: Case | None,
                     back: HttpResponseBase) -> HttpResponseBase:
    """Build the ZIP in a temporary folder and stream it; on an ExportError, say why and go `back`."""
    folder = Path(tempfile.mkdtemp(prefix="shoplift-export-view-"))
    try:
        out = folder / name
        try:
            evidence_export(alert_ids=alert_ids, case=case, user=request.user, out=out, ip_address=client_ip(request),
                            user_agent=request.headers.get("User-Agent", ""))
        except ExportError as exc:
            logger.warning("evidence export refused %s user=%s: %s", name, request.user.get_username(), exc)
            messages.error(request, f"The export could not be made: {exc}")
            return back
        # Opened before the folder goes: the open file streams on, and nothing is left on disk.
        handle = out.open("rb")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return FileResponse(handle, as_attachment=True, filename=out.name, content_type="application/zip")


@login_required
@require_POST
def alert_export(request: AuthenticatedHttpRequest, alert_id: int) -> HttpResponseBase:
    alert = access_alert(request, alert_id, Role.REVIEWER).alert
    return _export_response(request, name=f"evidence-alert-{alert.pk}.zip", alert_ids=[alert.pk], case=None,
                            back=redirect("alerts:detail", alert_id=alert.pk))


@login_required
@require_POST
def case_export(request: AuthenticatedHttpRequest, case_id: int) -> HttpResponseBase:
    case = access_case(request, case_id, Role.REVIEWER).case
    return _export_response(request, name=f"evidence-case-{case.pk}.zip", alert_ids=[], case=case,
                            back=redirect("alerts:case_detail", case_id=case.pk))
