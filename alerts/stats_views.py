"""The loss-prevention statistics page (GET /stats/) and its CSV (GET /stats/csv/), for managers.

A manager sees the sites they manage, one at a time or all together; a user who manages no site
gets 403, a site id outside their sites 404, a site where they hold a weaker role 403.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET

from alerts.charts import bar_chart, hbar_chart, percent
from alerts.stats import (
    DEFAULT_DAYS,
    MAX_DAYS,
    PRESET_DAYS,
    LossPreventionStats,
    Period,
    StatsRow,
    loss_prevention_stats,
    period_ending_today,
    site_today,
)
from cameras.models import Role, Site
from cameras.selectors import role_at_site, site_list_for

CUSTOM = "custom"


class StatsFilterForm(forms.Form):
    """Which sites and which days. Dates, when given, win over the preset period."""

    site = forms.ChoiceField(required=False, label="Site")
    period = forms.ChoiceField(required=False, label="Period", initial=str(DEFAULT_DAYS),
                               choices=[(str(days), f"Last {days} days") for days in PRESET_DAYS]
                               + [(CUSTOM, "Custom dates")])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data: QueryDict | None = None, *, sites: list[Site]) -> None:
        if data is not None:
            # Shown as it was counted: dates make the period custom, no period is the default one.
            data = data.copy()
            if data.get("date_from") or data.get("date_to"):
                data["period"] = CUSTOM
            elif not data.get("period"):
                data["period"] = str(DEFAULT_DAYS)
        super().__init__(data)
        self.sites = sites
        site_field = self.fields["site"]
        assert isinstance(site_field, forms.ChoiceField)
        site_field.choices = [("", "All my sites")] + [(str(site.pk), site.name) for site in sites]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if self.errors:
            return cleaned
        if cleaned.get("period") == CUSTOM:
            today = site_today(sites=self.sites)
            if not (start and end):
                raise forms.ValidationError("Enter both a start date and an end date for a custom period.")
            if end < start:
                self.add_error("date_to", f"The end date ({end:%d %b %Y}) is before the start date ({start:%d %b %Y}).")
            elif end > today:
                self.add_error("date_to", f"The end date is after today ({today:%d %b %Y}).")
            elif (end - start).days + 1 > MAX_DAYS:
                self.add_error("date_from", f"Pick at most {MAX_DAYS} days; this period has {(end - start).days + 1}.")
            elif start.year < 2000:
                self.add_error("date_from", "Pick a start date in 2000 or later.")
        return cleaned

    def chosen_period(self, sites: list[Site]) -> Period:
        """The chosen days; the default period when the form is not valid."""
        data = self.cleaned_data if self.is_valid() else {}
        start: date | None = data.get("date_from")
        end: date | None = data.get("date_to")
        if data.get("period") == CUSTOM and start and end:
            return Period(first=start, last=end)
        days = int(data.get("period") or DEFAULT_DAYS)
        return period_ending_today(days=days, sites=sites)


def _sites_for(request: HttpRequest, raw_site: str) -> tuple[list[Site], list[Site]]:
    """(the sites the user manages, the sites to count): fetch and authorize in one place."""
    managed = list(site_list_for(user=request.user, min_role=Role.MANAGER))
    if not managed:
        raise PermissionDenied("The statistics are for managers, and you manage no site.")
    if not raw_site:
        return managed, managed
    site_id = int(raw_site) if raw_site.isdigit() and len(raw_site) < 19 else None
    site = next((site for site in managed if site.pk == site_id), None)
    if site is not None:
        return managed, [site]
    if site_id is not None and role_at_site(user=request.user, site_id=site_id) is not None:
        raise PermissionDenied("The statistics of this site need the Manager role there.")
    raise Http404("No such site.")


def _stats_request(request: HttpRequest) -> tuple[StatsFilterForm, LossPreventionStats]:
    managed, sites = _sites_for(request, request.GET.get("site", "").strip())
    form = StatsFilterForm(request.GET or None, sites=managed)
    return form, loss_prevention_stats(sites=sites, period=form.chosen_period(sites))


def _rate_bars(rows: list[StatsRow]) -> list[tuple[str, float | None]]:
    return [(row.label, row.counts.confirmation_rate) for row in rows]


def _charts(stats: LossPreventionStats) -> dict[str, SafeString]:
    def rates(rows: list[StatsRow], what: str) -> SafeString:
        return hbar_chart(bars=_rate_bars(rows), title=f"Confirmation rate per {what}", max_value=1.0,
                          value_format=percent, missing="nothing reviewed")

    return {
        "per_day": bar_chart(bars=[(f"{day:%d %b}", count) for day, count in stats.per_day],
                             title="Alerts per day", unit="alerts", width=960, height=260),
        "camera": rates(stats.by_camera, "camera"),
        "zone": rates(stats.by_zone, "zone"),
        "event_type": rates(stats.by_event_type, "event type"),
        "review_times": bar_chart(bars=[(label, count) for _, label, count in stats.review_times.buckets],
                                  title="Time from alert to review", unit="alerts"),
    }


@login_required
@require_GET
def stats_page(request: HttpRequest) -> HttpResponse:
    form, stats = _stats_request(request)
    return render(request, "alerts/stats.html", {
        "form": form, "stats": stats, "charts": _charts(stats), "nav": "stats",
        "tables": [("camera", "Per camera", stats.by_camera), ("zone", "Per zone", stats.by_zone),
                   ("event_type", "Per event type", stats.by_event_type)],
        "errors": _error_lines(form),
    })


def _error_lines(form: StatsFilterForm) -> list[str]:
    """One readable line per problem, naming its field: "To: The end date is after today (...)"."""
    if not form.is_bound:
        return []
    return [f"{form.fields[name].label}: {error}" if name in form.fields else str(error)
            for name, errors in form.errors.items() for error in errors]


def _csv_cell(value: object) -> object:
    """Keep a spreadsheet from running a camera name as a formula (=, +, -, @ at the start)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_rows(stats: LossPreventionStats) -> Iterator[list[object]]:
    """(table, key, name, measure, value) for every figure of the page."""
    for day, count in stats.per_day:
        yield ["day", day.isoformat(), day.isoformat(), "alerts", count]
    for table, rows in (("camera", stats.by_camera), ("zone", stats.by_zone), ("event_type", stats.by_event_type)):
        for row in rows:
            c = row.counts
            rate = "" if c.confirmation_rate is None else f"{c.confirmation_rate:.4f}"
            for measure, value in (("alerts", c.alerts), ("reviewed", c.reviewed), ("confirmed", c.confirmed),
                                   ("dismissed", c.dismissed), ("confirmation_rate", rate)):
                yield [table, _csv_cell(row.key), _csv_cell(row.label), measure, value]
    cases = stats.cases
    case_figures: list[tuple[str, object]] = [
        ("cases", cases.cases), ("theft_prevented_cases", cases.prevented),
        ("theft_prevented_value", cases.prevented_value), ("theft_prevented_without_value", cases.prevented_unvalued),
        ("theft_confirmed_cases", cases.thefts), ("theft_confirmed_value", cases.theft_value),
        ("theft_confirmed_without_value", cases.thefts_unvalued), ("false_alarm_cases", cases.false_alarms),
        ("undecided_cases", cases.undecided)]
    for measure, figure in case_figures:
        yield ["cases", "", "", measure, figure]
    times = stats.review_times
    time_figures: list[tuple[str, object]] = [
        ("reviewed", times.count), ("unreviewed", times.unreviewed),
        ("median_seconds", "" if times.median is None else round(times.median.total_seconds())),
        ("p90_seconds", "" if times.p90 is None else round(times.p90.total_seconds()))]
    for measure, figure in time_figures:
        yield ["review_time", "", "", measure, figure]
    for key, label, count in times.buckets:
        yield ["review_time", key, label, "alerts", count]


@login_required
@require_GET
def stats_csv(request: HttpRequest) -> HttpResponse:
    """The page's tables as one long table (table, key, name, measure, value): every figure on a
    row of its own, so it pivots in any spreadsheet."""
    _, stats = _stats_request(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", "key", "name", "measure", "value"])
    writer.writerows(_csv_rows(stats))
    period = stats.period
    scope = stats.sites[0].name if len(stats.sites) == 1 else "all-sites"
    name = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "-"
                   for ch in f"loss-prevention-{scope}-{period.first:%Y%m%d}-{period.last:%Y%m%d}.csv")
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
