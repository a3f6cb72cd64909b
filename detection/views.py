"""The Model page, for managers: a site's learned models (training history and each run's report),
score histograms of confirmed against dismissed alerts, the thresholds in force, and what the
model suppressed in the last 7 days. Server-rendered; the charts are SVG (alerts.charts).

GET /model/ opens the first site the user manages (403 when none); GET /model/<site id>/ answers
404 for a site outside the user's sites and 403 to a viewer or reviewer of it.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET

from alerts.charts import histogram
from cameras.models import Role, Site
from cameras.selectors import has_role, site_list_for
from detection.behaviour.rules import EVENT_TYPES
from detection.learning import selectors
from detection.learning.train import report_text

SUPPRESSED_DAYS = 7


def _site_for_manager(request: HttpRequest, site_id: int) -> Site:
    """The site, if the user manages it: 404 outside the user's sites (whether it exists or not), 403 below manager."""
    site = get_object_or_404(site_list_for(user=request.user), pk=site_id)
    if not has_role(user=request.user, site_id=site.pk, min_role=Role.MANAGER):
        raise PermissionDenied(f"The Model page needs the Manager role at {site.name}.")
    return site


@login_required
@require_GET
def model_page(request: HttpRequest, site_id: int | None = None) -> HttpResponse:
    if site_id is None:
        first = site_list_for(user=request.user, min_role=Role.MANAGER).order_by("name").first()
        if first is None:
            raise PermissionDenied("The Model page is for managers.")
        return redirect("detection:model_site", site_id=first.pk)
    site = _site_for_manager(request, site_id)
    since = timezone.now() - timedelta(days=SUPPRESSED_DAYS)
    history = selectors.model_history(site=site)
    suppressed_count, suppressed = selectors.suppressed_since(site=site, since=since)
    return render(request, "detection/model.html", {
        "nav": "model", "site": site, "since": since, "days": SUPPRESSED_DAYS,
        "sites": site_list_for(user=request.user, min_role=Role.MANAGER).order_by("name"),
        "current": next((m for m in history if m.deployed), None),
        "runs": [(m, report_text(m)) for m in history],
        "charts": _charts(site, since), "thresholds": selectors.thresholds_in_force(site=site),
        "event_types": EVENT_TYPES, "suppressed_count": suppressed_count, "suppressed": suppressed,
    })


def _charts(site: Site, since: datetime) -> dict[str, SafeString]:
    scores = selectors.review_scores(site=site)
    suppressed = selectors.suppressed_scores_since(site=site, since=since)
    return {
        "rule": histogram(series={"Confirmed": scores.rule_confirmed, "Dismissed": scores.rule_dismissed},
                          title="Rule scores of reviewed alerts"),
        "learned": histogram(series={"Confirmed": scores.learned_confirmed, "Dismissed": scores.learned_dismissed,
                                     f"Suppressed (last {SUPPRESSED_DAYS} days)": suppressed},
                             title="Learned model scores"),
    }
