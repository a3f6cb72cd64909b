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


@dataclass(frozen=True)
class AlertAccess:
    alert: Alert
    role: Role  # the user's role at the alert's site (a superuser counts as manager)

    def can(self, min_role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[min_role]


def access_alert(request: HttpRequest, alert_id: int, min_role: Role = Role.VIEWER) -> AlertAccess:
    """Fetch the alert for this user: Http404 outside the user's sites, PermissionDenied for a weaker role.

    The 404 is the same whether the alert exists or not, so ids of other sites reveal nothing.
    """
    alert = Alert.objects.select_related("camera__site", "zone", "reviewed_by").filter(pk=alert_id).first()
    role = role_at_site(user=request.user, site_id=alert.camera.site_id) if alert is not None else None
    if alert is None or role is None:
        raise Http404("No such alert.")
    access = AlertAccess(alert=alert, role=role)
    if not access.can(min_role):
        raise PermissionDenied(f"This needs the {min_role.label} role at {alert.camera.site.name}.")
    return access


@dataclass(frozen=True)
class CaseAccess:
    case: Case
    role: Role  # the user's role at the case's site (a superuser counts as manager)

    def can(self, min_role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[min_role]


def access_case(request: HttpRequest, case_id: int, min_role: Role = Role.VIEWER) -> CaseAccess:
    """Fetch the case for this user, as access_alert does an alert: Http404 outside the user's sites
    (whether the case exists or not), PermissionDenied for a weaker role."""
    case = Case.objects.select_related("site", "created_by", "closed_by").filter(pk=case_id).first()
    role = role_at_site(user=request.user, site_id=case.site_id) if case is not None else None
    if case is None or role is None:
        raise Http404("No such case.")
    access = CaseAccess(case=case, role=role)
    if not access.can(min_role):
        raise PermissionDenied(f"This needs the {min_role.label} role at {case.site.name}.")
    return access
