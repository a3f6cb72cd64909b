"""The fetch-and-authorize helpers every alert and case view goes through."""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from alerts.models import Alert, Case
from cameras.models import ROLE_RANK, Role
from cameras.selectors import role_at_site


class AuthenticatedHttpRequest(HttpRequest):
    """The request a @login_required view gets: its user is signed in, never AnonymousUser."""

    user: User


def _role_or_refuse(request: HttpRequest, site_id: int | None, site_name: str, min_role: Role, what: str) -> Role:
    """The user's role at the site; Http404 outside the user's sites (or when `site_id` is None: the
    object does not exist, and both answers are the same, so ids of other sites reveal nothing),
    PermissionDenied for a weaker role."""
    role = role_at_site(user=request.user, site_id=site_id) if site_id is not None else None
    if role is None:
        raise Http404(f"No such {what}.")
    if ROLE_RANK[role] < ROLE_RANK[min_role]:
        raise PermissionDenied(f"This needs the {min_role.label} role at {site_name}.")
    return role


@dataclass(frozen=True)
class SiteAccess:
    role: Role  # the user's role at the object's site (a superuser counts as manager)

    def can(self, min_role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[min_role]


@dataclass(frozen=True, kw_only=True)
class AlertAccess(SiteAccess):
    alert: Alert


def access_alert(request: HttpRequest, alert_id: int, min_role: Role = Role.VIEWER) -> AlertAccess:
    """Fetch the alert for this user: Http404 outside the user's sites, PermissionDenied for a weaker role."""
    alert = Alert.objects.select_related("camera__site", "zone", "reviewed_by").filter(pk=alert_id).first()
    role = _role_or_refuse(request, alert.camera.site_id if alert else None, alert.camera.site.name if alert else "",
                           min_role, "alert")
    assert alert is not None
    return AlertAccess(alert=alert, role=role)


@dataclass(frozen=True, kw_only=True)
class CaseAccess(SiteAccess):
    case: Case


def access_case(request: HttpRequest, case_id: int, min_role: Role = Role.VIEWER) -> CaseAccess:
    """Fetch the case for this user, as access_alert does an alert."""
    case = Case.objects.select_related("site", "created_by", "closed_by").filter(pk=case_id).first()
    role = _role_or_refuse(request, case.site_id if case else None, case.site.name if case else "", min_role, "case")
    assert case is not None
    return CaseAccess(case=case, role=role)
