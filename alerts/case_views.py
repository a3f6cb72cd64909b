"""The case pages: list, new (from alerts), detail, edit, adding and removing alerts, close and reopen.

Every view that touches one case fetches it through access.access_case: viewers see cases,
reviewers open and edit them, managers close and reopen them. The export is in export_views.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts.access import AuthenticatedHttpRequest, CaseAccess, access_alert, access_case
from alerts.auth import client_ip
from alerts.cases import (
    CASE_FIELDS,
    CaseError,
    CaseFilters,
    case_add_alerts,
    case_alerts,
    case_close,
    case_create,
    case_history,
    case_list_for,
    case_remove_alert,
    case_reopen,
    case_update,
)
from alerts.forms import CaseCloseForm, CaseForm
from alerts.models import Alert, CaseStatus
from alerts.selectors import alert_list_for
from cameras.models import Role
from cameras.selectors import site_list_for

CASES_PER_PAGE = 50
STATUS_CHOICES = {"open": CaseStatus.OPEN, "closed": CaseStatus.CLOSED, "all": None}


def _ids(values: list[str], limit: int = 100) -> list[int]:
    """Alert ids from ?alerts=3,4 or ?alerts=3&alerts=4 (the alert list's checkboxes)."""
    parts = [part.strip() for value in values for part in value.split(",")]
    return list(dict.fromkeys(int(part) for part in parts if part.isdigit() and len(part) < 19))[:limit]


@login_required
@require_GET
def case_list(request: HttpRequest) -> HttpResponse:
    status_key = request.GET.get("status", "open")
    if status_key not in STATUS_CHOICES:
        status_key = "open"
    sites = list(site_list_for(user=request.user))
    site = next((s for s in sites if str(s.pk) == request.GET.get("site", "")), None)
    cases = case_list_for(user=request.user, filters=CaseFilters(status=STATUS_CHOICES[status_key],
                                                                 site_id=site.pk if site else None))
    page = Paginator(cases, CASES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "alerts/case_list.html", {
        "page": page, "sites": sites, "site": site, "status": status_key, "nav": "cases",
        "status_tabs": [("open", "Open"), ("closed", "Closed"), ("all", "All")],
    })


@login_required
@require_http_methods(["GET", "POST"])
def case_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A new case from alerts the user may review: /cases/new/?alerts=3,4."""
    source = request.POST if request.method == "POST" else request.GET
    ids = _ids(source.getlist("alerts"))
    if not ids:
        messages.info(request, "Pick the alerts of the case on the alert list, or open one from an alert's page.")
        return redirect("alerts:list")
    alerts = [access_alert(request, pk, Role.REVIEWER).alert for pk in ids]
    sites = {alert.camera.site.name for alert in alerts}
    problem = (f"These alerts are at {len(sites)} sites ({', '.join(sorted(sites))}): a case holds the alerts of one "
               "site only." if len(sites) > 1 else "")
    form = CaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            case = case_create(user=request.user, alerts=alerts, ip_address=client_ip(request),
                               **{name: form.cleaned_data[name] for name in CASE_FIELDS})
        except CaseError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{case.reference} opened.")
            return redirect("alerts:case_detail", case_id=case.pk)
    return render(request, "alerts/case_form.html", {
        "form": form, "alerts": alerts, "alert_ids": ",".join(map(str, ids)), "problem": problem, "case": None,
        "nav": "cases",
    }, status=400 if form.errors else 200)


def _detail_context(access: CaseAccess) -> dict[str, Any]:
    case = access.case
    return {
        "case": case, "access": access, "alerts": case_alerts(case=case), "nav": "cases",
        "can_review": access.can(Role.REVIEWER), "can_manage": access.can(Role.MANAGER),
        "is_open": case.status == CaseStatus.OPEN,
        "close_form": CaseCloseForm(initial={"outcome": case.outcome}),
        # The audit log is the managers' to read (alerts.audit), so the case's part of it is too.
        "history": case_history(case=case) if access.can(Role.MANAGER) else None,
    }


@login_required
@require_GET
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    return render(request, "alerts/case_detail.html", _detail_context(access_case(request, case_id, Role.VIEWER)))


@login_required
@require_http_methods(["GET", "POST"])
def case_edit(request: AuthenticatedHttpRequest, case_id: int) -> HttpResponse:
    case = access_case(request, case_id, Role.REVIEWER).case
    if case.status != CaseStatus.OPEN:
        messages.error(request, f"{case.reference} is closed: a manager must reopen it before it can be changed.")
        return redirect("alerts:case_detail", case_id=case.pk)
    form = CaseForm(request.POST or None, instance=case)
    if request.method == "POST" and form.is_valid():
        try:
            case_update(case=case, user=request.user, ip_address=client_ip(request),
                        data={name: form.cleaned_data[name] for name in CASE_FIELDS})
        except CaseError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{case.reference} saved.")
            return redirect("alerts:case_detail", case_id=case.pk)
    return render(request, "alerts/case_form.html", {"form": form, "case": case, "alerts": case_alerts(case=case),
                                                     "nav": "cases"}, status=400 if form.errors else 200)


def _add_alert(request: AuthenticatedHttpRequest, access: CaseAccess, alert: Alert) -> None:
    try:
        case_add_alerts(case=access.case, user=request.user, alerts=[alert], ip_address=client_ip(request))
    except CaseError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Alert #{alert.pk} added to {access.case.reference}.")


@login_required
@require_POST
def case_add_alert(request: AuthenticatedHttpRequest, case_id: int) -> HttpResponse:
    """The case page's "Add alert" box: an alert number typed in."""
    access = access_case(request, case_id, Role.REVIEWER)
    raw = request.POST.get("alert", "").strip().lstrip("#")
    # Looked up among the alerts the user sees, so a number from another site reads as unknown.
    alert = alert_list_for(user=request.user).filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 19 else None
    if alert is None:
        messages.error(request, f"No alert #{raw} among the alerts you can see." if raw else "Enter an alert number.")
    else:
        _add_alert(request, access, alert)
    return redirect("alerts:case_detail", case_id=access.case.pk)


@login_required
@require_POST
def alert_add_to_case(request: AuthenticatedHttpRequest, alert_id: int) -> HttpResponse:
    """The alert page's "Add to case": one of the site's open cases, chosen from a list."""
    alert = access_alert(request, alert_id, Role.REVIEWER).alert
    raw = request.POST.get("case", "")
    if not raw.isdigit() or len(raw) >= 19:
        messages.error(request, "Choose the case to add this alert to.")
        return redirect("alerts:detail", alert_id=alert.pk)
    access = access_case(request, int(raw), Role.REVIEWER)
    _add_alert(request, access, alert)
    return redirect("alerts:detail", alert_id=alert.pk)


@login_required
@require_POST
def case_remove_alert_view(request: AuthenticatedHttpRequest, case_id: int, alert_id: int) -> HttpResponse:
    access = access_case(request, case_id, Role.REVIEWER)
    alert = access.case.alerts.filter(pk=alert_id).first()
    if alert is None:
        messages.error(request, f"Alert #{alert_id} is not in {access.case.reference}.")
    else:
        try:
            case_remove_alert(case=access.case, user=request.user, alert=alert, ip_address=client_ip(request))
        except CaseError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Alert #{alert_id} removed from {access.case.reference}.")
    return redirect("alerts:case_detail", case_id=access.case.pk)


@login_required
@require_POST
def case_close_view(request: AuthenticatedHttpRequest, case_id: int) -> HttpResponse:
    access = access_case(request, case_id, Role.MANAGER)
    form = CaseCloseForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Outcome: {' '.join(map(str, form.errors['outcome']))}")  # its only field
        return redirect("alerts:case_detail", case_id=access.case.pk)
    try:
        case = case_close(case=access.case, user=request.user, outcome=form.cleaned_data["outcome"],
                          ip_address=client_ip(request))
    except CaseError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{case.reference} closed: {case.get_outcome_display().lower()}.")
    return redirect("alerts:case_detail", case_id=access.case.pk)


@login_required
@require_POST
def case_reopen_view(request: AuthenticatedHttpRequest, case_id: int) -> HttpResponse:
    access = access_case(request, case_id, Role.MANAGER)
    try:
        case_reopen(case=access.case, user=request.user, ip_address=client_ip(request))
    except CaseError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{access.case.reference} reopened.")
    return redirect("alerts:case_detail", case_id=access.case.pk)
