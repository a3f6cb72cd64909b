"""The audit log for managers: GET /audit/ (newest first, a page at a time) and GET /audit/export.csv.

A manager sees the entries of the sites they manage and the sign-ins of those sites' members
(alerts.audit.audit_entries_for); a superuser sees everything. Anyone else gets 403.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.access import AuthenticatedHttpRequest
from alerts.audit import audit_entries_for, audit_record
from alerts.auth import client_ip
from alerts.models import AuditAction, AuditEntry
from cameras.models import Role, Site
from cameras.selectors import site_list_for

PAGE_SIZE = 50
CSV_HEADER = ["seq", "time_utc", "user", "action", "site", "object", "summary", "detail_json", "ip_address",
              "prev_hash", "entry_hash"]


class AuditFilterForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False, empty_label="All my sites")
    action = forms.ChoiceField(choices=[("", "Any action"), *AuditAction.choices], required=False)
    user = forms.CharField(required=False, max_length=150, label="User name")
    since = forms.DateField(required=False, label="From (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (UTC)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data: Any, *, sites: QuerySet[Site]) -> None:
        super().__init__(data)
        site_field = self.fields["site"]
        assert isinstance(site_field, forms.ModelChoiceField)
        site_field.queryset = sites.order_by("name")

    def filtered(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        """The entries the valid filters keep; a filter that is not valid is left out (its error shows)."""
        self.is_valid()
        data = self.cleaned_data
        if data.get("site"):
            entries = entries.filter(site_id=data["site"].pk)
        if data.get("action"):
            entries = entries.filter(action=data["action"])
        if data.get("user"):
            entries = entries.filter(username__icontains=data["user"].strip())
        if data.get("since"):
            entries = entries.filter(at__gte=datetime.combine(data["since"], time.min, UTC))
        if data.get("until"):
            entries = entries.filter(at__lt=datetime.combine(data["until"], time.min, UTC) + timedelta(days=1))
        return entries

    def described(self) -> dict[str, str]:
        """The filters in use, for the export's own audit entry."""
        return {name: str(value.pk if isinstance(value, Site) else value)
                for name, value in self.cleaned_data.items() if value not in (None, "")}


@dataclass(frozen=True)
class AuditRow:
    entry: AuditEntry
    site_name: str


def _sites_managed(request: AuthenticatedHttpRequest) -> QuerySet[Site]:
    sites = site_list_for(user=request.user, min_role=Role.MANAGER)
    if not request.user.is_superuser and not sites.exists():
        raise PermissionDenied("The audit log is for managers: it needs the Manager role at a site.")
    return sites


def _before(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _site_names() -> dict[int, str]:
    return dict(Site.objects.values_list("pk", "name"))


def _site_label(site_id: int | None, names: dict[int, str]) -> str:
    return "" if site_id is None else names.get(site_id, f"site #{site_id} (deleted)")


@login_required
@require_GET
def audit_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET, sites=_sites_managed(request))
    entries = form.filtered(audit_entries_for(user=request.user))
    before = _before(request.GET.get("before", ""))
    if before is not None:
        entries = entries.filter(seq__lt=before)
    page = list(entries.order_by("-seq")[:PAGE_SIZE + 1])
    names = _site_names()
    return render(request, "alerts/audit.html", {
        "form": form, "rows": [AuditRow(entry, _site_label(entry.site_id, names)) for entry in page[:PAGE_SIZE]],
        "next_before": page[PAGE_SIZE - 1].seq if len(page) > PAGE_SIZE else None,
        "is_first_page": before is None, "nav": "audit",
    })


class _Echo:
    """The file csv.writer writes to: hands each row back to the streaming response."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    """Keep a spreadsheet from running text as a formula: a failed sign-in's user name is typed by anyone."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_rows(entries: QuerySet[AuditEntry], names: dict[int, str]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for entry in entries.iterator(chunk_size=1000):
        yield writer.writerow([
            entry.seq, entry.at.astimezone(UTC).isoformat(timespec="microseconds"), _cell(entry.username or "system"),
            entry.action, _cell(_site_label(entry.site_id, names)),
            f"{entry.object_type} #{entry.object_id}" if entry.object_id else entry.object_type,
            _cell(entry.summary), _cell(json.dumps(entry.detail, sort_keys=True, ensure_ascii=False)),
            entry.ip_address or "", entry.prev_hash, entry.entry_hash,
        ])


@login_required
@require_GET
def audit_export(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    """The filtered entries, oldest first (so each row's prev_hash is the row before's entry_hash
    when nothing is filtered out). The export is itself an entry: the rows are those before it."""
    form = AuditFilterForm(request.GET, sites=_sites_managed(request))
    entries = form.filtered(audit_entries_for(user=request.user))
    site = form.cleaned_data.get("site")
    with transaction.atomic():
        count = entries.count()
        export = audit_record(action=AuditAction.AUDIT_EXPORT, user=request.user, site_id=site.pk if site else None,
                              summary=f"Exported {count} audit entries as CSV", ip_address=client_ip(request),
                              detail={"filters": form.described(), "rows": count})
    rows = entries.filter(seq__lt=export.seq).order_by("seq")
    response = StreamingHttpResponse(_csv_rows(rows, _site_names()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
