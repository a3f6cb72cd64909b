"""Cases (incidents): a reviewer groups alerts of one site into a case and records what happened;
a manager closes it with an outcome. Writes and the reads the case pages need.

Every write locks the case row, checks the rules against what is stored (not the caller's copy),
and appends its audit entry in the same transaction, so a change and its record commit together.
Services only: the views (alerts.case_views) check who may call them.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.text import capfirst

from alerts.audit import audit_record
from alerts.models import Alert, AuditAction, AuditEntry, Case, CaseOutcome, CaseStatus
from cameras.selectors import AnyUser, site_list_for

logger = logging.getLogger(__name__)

# What a reviewer writes about a case; status and who opened or closed it are the services' own.
CASE_FIELDS = ("title", "outcome", "estimated_value", "items", "person_description", "police_reference", "notes")
_OUTCOMES = ", ".join(label.lower() for value, label in CaseOutcome.choices if value)


class CaseError(Exception):
    """A case change the rules refuse; the message says what to do instead."""


def _refs(alerts: Sequence[Alert]) -> str:
    return ", ".join(f"#{alert.pk}" for alert in alerts)


def _audit_value(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


def _label(name: str) -> str:
    return capfirst(str(getattr(Case._meta.get_field(name), "verbose_name", name)))


def _check_fields(case: Case) -> None:
    """The model's own rules (required title, known outcome, value >= 0, lengths) as one readable line."""
    try:
        case.full_clean(exclude=["site", "created_by", "closed_by"], validate_unique=False)
    except ValidationError as exc:
        problems = [f"{_label(name)}: {' '.join(messages)}" if name in CASE_FIELDS else " ".join(messages)
                    for name, messages in exc.message_dict.items()]
        raise CaseError("; ".join(problems)) from None


def _check_same_site(case: Case, alerts: Sequence[Alert]) -> None:
    elsewhere = [alert for alert in alerts if alert.camera.site_id != case.site_id]
    if elsewhere:
        sites = sorted({alert.camera.site.name for alert in elsewhere})
        raise CaseError(f"Alert{'s' if len(elsewhere) > 1 else ''} {_refs(elsewhere)} {'are' if len(elsewhere) > 1 else 'is'} "
                        f"at {', '.join(sites)}, not at {case.site.name}: a case holds the alerts of one site only.")


def _check_open(case: Case, doing: str) -> None:
    if case.status != CaseStatus.OPEN:
        raise CaseError(f"{case.reference} is closed: a manager must reopen it before {doing}.")


def _locked(case: Case) -> Case:
    """The stored case, locked until the transaction ends: checks and audit see what is committed."""
    return Case.objects.select_for_update().select_related("site").get(pk=case.pk)


def case_create(*, user: User, alerts: Sequence[Alert], title: str, outcome: str = CaseOutcome.UNDECIDED,
                estimated_value: Decimal | None = None, items: str = "", person_description: str = "",
                police_reference: str = "", notes: str = "", ip_address: str | None = None) -> Case:
    """Open a case at the alerts' site (they must all be of one site)."""
    alerts = list({alert.pk: alert for alert in alerts}.values())
    if not alerts:
        raise CaseError("A case starts from one or more alerts: pick them on the alert list or an alert's page.")
    site = alerts[0].camera.site
    case = Case(site=site, title=title.strip(), outcome=outcome, estimated_value=estimated_value, items=items.strip(),
                person_description=person_description.strip(), police_reference=police_reference.strip(),
                notes=notes.strip(), created_by=user)
    _check_same_site(case, alerts)
    _check_fields(case)
    with transaction.atomic():
        case.save()
        case.alerts.add(*alerts)
        audit_record(action=AuditAction.CASE_CREATE, summary=f"Opened {case.reference} ({case.title}) with alert"
                     f"{'s' if len(alerts) > 1 else ''} {_refs(alerts)}", user=user, site_id=site.pk,
                     object_type="case", object_id=case.pk, ip_address=ip_address,
                     detail={"alerts_added": [alert.pk for alert in alerts],
                             "fields": {name: _audit_value(getattr(case, name)) for name in CASE_FIELDS}})
    logger.info("case opened case=%s site=%s alerts=%s user=%s", case.pk, site.pk, [a.pk for a in alerts],
                user.get_username())
    return case


def case_update(*, case: Case, user: User, data: Mapping[str, Any], ip_address: str | None = None) -> Case:
    """Change what the case says (any of CASE_FIELDS). Returns the case as saved."""
    unknown = set(data) - set(CASE_FIELDS)
    if unknown:
        raise ValueError(f"Not a case field that can be edited: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        case = _locked(case)
        _check_open(case, "it can be changed")
        changes: dict[str, dict[str, object]] = {}
        for name, value in data.items():
            if isinstance(value, str):
                value = value.strip()
            if getattr(case, name) != value:
                changes[name] = {"from": _audit_value(getattr(case, name)), "to": _audit_value(value)}
                setattr(case, name, value)
        if not changes:
            return case
        _check_fields(case)
        case.updated_at = timezone.now()
        case.save(update_fields=[*changes, "updated_at"])
        audit_record(action=AuditAction.CASE_UPDATE, summary=f"Changed {', '.join(_label(n).lower() for n in changes)} of {case.reference}",
                     user=user, site_id=case.site_id, object_type="case", object_id=case.pk, ip_address=ip_address,
                     detail={"changes": changes})
    logger.info("case changed case=%s fields=%s user=%s", case.pk, list(changes), user.get_username())
    return case


def case_add_alerts(*, case: Case, user: User, alerts: Sequence[Alert], ip_address: str | None = None) -> list[Alert]:
    """Add alerts of the case's site; returns those that were not in it already."""
    with transaction.atomic():
        case = _locked(case)
        _check_open(case, "alerts can be added")
        _check_same_site(case, alerts)
        present = set(case.alerts.values_list("pk", flat=True))
        added = [alert for alert in {alert.pk: alert for alert in alerts}.values() if alert.pk not in present]
        if not added:
            raise CaseError(f"Alert{'s' if len(alerts) > 1 else ''} {_refs(alerts)} {'are' if len(alerts) > 1 else 'is'} "
                            f"already in {case.reference}.")
        case.alerts.add(*added)
        case.updated_at = timezone.now()
        case.save(update_fields=["updated_at"])
        audit_record(action=AuditAction.CASE_UPDATE, summary=f"Added alert{'s' if len(added) > 1 else ''} "
                     f"{_refs(added)} to {case.reference}", user=user, site_id=case.site_id, object_type="case",
                     object_id=case.pk, ip_address=ip_address, detail={"alerts_added": [alert.pk for alert in added]})
    logger.info("case alerts added case=%s alerts=%s user=%s", case.pk, [a.pk for a in added], user.get_username())
    return added


def case_remove_alert(*, case: Case, user: User, alert: Alert, ip_address: str | None = None) -> Case:
    with transaction.atomic():
        case = _locked(case)
        _check_open(case, "alerts can be removed")
        remaining = set(case.alerts.values_list("pk", flat=True))
        if alert.pk not in remaining:
            raise CaseError(f"Alert #{alert.pk} is not in {case.reference}.")
        if remaining == {alert.pk}:
            raise CaseError(f"Alert #{alert.pk} is the only alert of {case.reference}: a case keeps at least one. "
                            "Add the right alert first, or have a manager close the case.")
        case.alerts.remove(alert)
        case.updated_at = timezone.now()
        case.save(update_fields=["updated_at"])
        audit_record(action=AuditAction.CASE_UPDATE, summary=f"Removed alert #{alert.pk} from {case.reference}",
                     user=user, site_id=case.site_id, object_type="case", object_id=case.pk, ip_address=ip_address,
                     detail={"alerts_removed": [alert.pk]})
    logger.info("case alert removed case=%s alert=%s user=%s", case.pk, alert.pk, user.get_username())
    return case


def case_close(*, case: Case, user: User, outcome: str = "", ip_address: str | None = None) -> Case:
    """Close the case with `outcome`, or with the outcome it already has. Its alerts are then no
    longer held by it (a confirmed alert stays held; see alerts.models.alert_held_q)."""
    with transaction.atomic():
        case = _locked(case)
        if case.status == CaseStatus.CLOSED:
            raise CaseError(f"{case.reference} is already closed.")
        changes: dict[str, dict[str, object]] = {}
        if outcome and outcome != case.outcome:
            changes["outcome"] = {"from": case.outcome, "to": outcome}
            case.outcome = outcome
        if not case.outcome:
            raise CaseError(f"Choose the outcome ({_OUTCOMES}) to close {case.reference}.")
        _check_fields(case)
        case.status, case.closed_by, case.closed_at = CaseStatus.CLOSED, user, timezone.now()
        case.updated_at = case.closed_at
        case.save(update_fields=["outcome", "status", "closed_by", "closed_at", "updated_at"])
        audit_record(action=AuditAction.CASE_CLOSE, summary=f"Closed {case.reference}: {case.get_outcome_display()}",
                     user=user, site_id=case.site_id, object_type="case", object_id=case.pk, ip_address=ip_address,
                     detail={"outcome": case.outcome, "changes": changes})
    logger.info("case closed case=%s outcome=%s user=%s", case.pk, case.outcome, user.get_username())
    return case


def case_reopen(*, case: Case, user: User, ip_address: str | None = None) -> Case:
    with transaction.atomic():
        case = _locked(case)
        if case.status != CaseStatus.CLOSED:
            raise CaseError(f"{case.reference} is open already.")
        closed = {"closed_by": case.closed_by.get_username() if case.closed_by else None,
                  "closed_at": case.closed_at.isoformat() if case.closed_at else None}
        case.status, case.closed_by, case.closed_at = CaseStatus.OPEN, None, None
        case.updated_at = timezone.now()
        case.save(update_fields=["status", "closed_by", "closed_at", "updated_at"])
        audit_record(action=AuditAction.CASE_REOPEN, summary=f"Reopened {case.reference}", user=user,
                     site_id=case.site_id, object_type="case", object_id=case.pk, ip_address=ip_address,
                     detail={"was": closed})
    logger.info("case reopened case=%s user=%s", case.pk, user.get_username())
    return case


# Reads, always scoped to what the user may see.

@dataclass(frozen=True)
class CaseFilters:
    status: str | None = CaseStatus.OPEN  # None: open and closed
    site_id: int | None = None


def case_list_for(*, user: AnyUser, filters: CaseFilters = CaseFilters()) -> QuerySet[Case]:
    """The cases at the user's sites matching the filters, newest first, with their alert count."""
    cases = Case.objects.all()
    if not (user.is_active and getattr(user, "is_superuser", False)):
        cases = cases.filter(site__in=site_list_for(user=user))
    if filters.status:
        cases = cases.filter(status=filters.status)
    if filters.site_id is not None:
        cases = cases.filter(site_id=filters.site_id)
    return (cases.select_related("site", "created_by", "closed_by").annotate(alert_count=Count("alerts"))
            .order_by("-created_at", "-id"))


def case_alerts(*, case: Case) -> list[Alert]:
    """The case's alerts in the order they happened."""
    return list(case.alerts.select_related("camera__site").order_by("detected_at", "id"))


def cases_of_alert(*, alert: Alert) -> list[Case]:
    """The cases an alert is in (all at its own site, so visible to whoever sees the alert)."""
    return list(alert.cases.select_related("site").order_by("-created_at", "-id"))


def case_open_at_site(*, site_id: int, exclude_alert: Alert | None = None, limit: int = 100) -> list[Case]:
    """The site's open cases, newest first: where a reviewer can add an alert."""
    cases = Case.objects.filter(site_id=site_id, status=CaseStatus.OPEN)
    if exclude_alert is not None:
        cases = cases.exclude(alerts=exclude_alert)
    return list(cases.order_by("-created_at", "-id")[:limit])


def case_history(*, case: Case, limit: int = 200) -> list[AuditEntry]:
    """The case's audit entries, oldest first: who opened, changed, closed and exported it."""
    return list(AuditEntry.objects.filter(object_type="case", object_id=str(case.pk)).order_by("seq")[:limit])
