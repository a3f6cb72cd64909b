"""Cases: a reviewer groups alerts of one site, edits what happened, adds and removes alerts; a
manager closes it with an outcome and may reopen it. Every change is in the audit log, and an
open case holds its alerts' clips from retention."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from alerts.audit import audit_verify
from alerts.cases import (
    CaseError,
    CaseFilters,
    case_add_alerts,
    case_close,
    case_create,
    case_list_for,
    case_remove_alert,
    case_reopen,
    case_update,
)
from alerts.models import Alert, AuditAction, AuditEntry, Case, CaseOutcome, CaseStatus, ReviewStatus, alerts_held
from tests.support.clips import World
from tests.support.factories import make_alert


def _user(world: World, persona: str) -> User:
    user = world.users[persona]
    assert isinstance(user, User)
    return user


def _client(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(_user(world, persona))
    return client


def _second_alert(world: World, minutes: int = 2) -> Alert:
    assert world.alert_a.event_start is not None
    return make_alert(world.camera_a, at=world.alert_a.detected_at + timedelta(minutes=minutes), event_type="loitering")


def _open(world: World, *alerts: Alert, title: str = "Two bottles of gin into a rucksack") -> Case:
    return case_create(user=_user(world, "reviewer"), alerts=list(alerts) or [world.alert_a], title=title,
                       ip_address="10.0.0.9")


def _entries(case: Case, action: AuditAction) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type="case", object_id=str(case.pk), action=action).order_by("seq"))


def _messages(response: object) -> list[str]:
    return [str(m) for m in response.context["messages"]]  # type: ignore[attr-defined]


def test_it_opens_a_case_at_the_alerts_site_and_audits_it(world: World) -> None:
    second = _second_alert(world)
    case = _open(world, world.alert_a, second)

    assert case.site == world.site_a and case.status == CaseStatus.OPEN
    assert set(case.alerts.all()) == {world.alert_a, second}
    assert case.created_by == world.users["reviewer"] and case.reference == f"Case #{case.pk}"
    [entry] = _entries(case, AuditAction.CASE_CREATE)
    assert entry.site_id == world.site_a.pk and entry.username == "reviewer" and entry.ip_address == "10.0.0.9"
    assert entry.detail["alerts_added"] == [world.alert_a.pk, second.pk]
    assert entry.detail["fields"]["title"] == "Two bottles of gin into a rucksack"


def test_the_new_case_page_opens_a_case_from_the_alerts_in_its_address(world: World) -> None:
    second = _second_alert(world)
    client = _client(world, "reviewer")
    url = f"/cases/new/?alerts={world.alert_a.pk},{second.pk}"

    page = client.get(url)
    assert page.status_code == 200
    assert f"#{world.alert_a.pk}" in page.content.decode() and f"#{second.pk}" in page.content.decode()
    response = client.post("/cases/new/", {"alerts": f"{world.alert_a.pk},{second.pk}", "title": "Gin",
                                           "estimated_value": "45.80", "items": "2 x gin 70cl"})

    case = Case.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/cases/{case.pk}/"
    assert set(case.alerts.all()) == {world.alert_a, second} and case.estimated_value == Decimal("45.80")


def test_the_alert_lists_checkboxes_open_a_case_from_the_ticked_alerts(world: World) -> None:
    second = _second_alert(world)
    client = _client(world, "reviewer")

    page = client.get("/")
    assert 'form="case-from-alerts"' in page.content.decode()
    response = client.get(f"/cases/new/?alerts={world.alert_a.pk}&alerts={second.pk}")

    assert response.status_code == 200
    assert response.context["alert_ids"] == f"{world.alert_a.pk},{second.pk}"


def test_a_viewer_gets_no_checkboxes_to_tick(world: World) -> None:
    page = _client(world, "viewer").get("/").content.decode()

    assert 'form="case-from-alerts"' not in page
    assert "New case from ticked alerts" not in page


def test_it_refuses_alerts_of_another_site(world: World) -> None:
    root = _user(world, "superuser")  # sees both sites: only the rule stops it
    with pytest.raises(CaseError, match=r"at Hilltop, not at Riverside: a case holds the alerts of one site only"):
        case_create(user=root, alerts=[world.alert_a, world.alert_b], title="Mixed")
    case = _open(world)
    with pytest.raises(CaseError, match=rf"Alert #{world.alert_b.pk} is at Hilltop, not at Riverside"):
        case_add_alerts(case=case, user=root, alerts=[world.alert_b])

    assert list(case.alerts.all()) == [world.alert_a]
    assert not _entries(case, AuditAction.CASE_UPDATE)


def test_the_new_case_page_says_when_the_alerts_are_of_two_sites(world: World) -> None:
    client = _client(world, "superuser")

    page = client.get(f"/cases/new/?alerts={world.alert_a.pk},{world.alert_b.pk}")
    refused = client.post("/cases/new/", {"alerts": f"{world.alert_a.pk},{world.alert_b.pk}", "title": "Mixed"})

    assert "a case holds the alerts of one site only" in page.content.decode()
    assert refused.status_code == 400 and "one site only" in refused.content.decode()
    assert not Case.objects.exists()


def test_the_case_page_adds_only_alerts_the_user_can_see(world: World) -> None:
    case = _open(world)
    second = _second_alert(world)
    client = _client(world, "reviewer")

    hidden = client.post(f"/cases/{case.pk}/alerts/add/", {"alert": str(world.alert_b.pk)}, follow=True)
    added = client.post(f"/cases/{case.pk}/alerts/add/", {"alert": f"#{second.pk}"}, follow=True)

    assert f"No alert #{world.alert_b.pk} among the alerts you can see." in _messages(hidden)
    assert f"Alert #{second.pk} added to {case.reference}." in _messages(added)
    assert set(case.alerts.all()) == {world.alert_a, second}


def test_it_records_each_changed_field_old_and_new(world: World) -> None:
    case = _open(world)

    case = case_update(case=case, user=_user(world, "reviewer"), ip_address="10.0.0.9",
                       data={"title": "Gin into a rucksack", "estimated_value": Decimal("45.80"),
                             "police_reference": "  MET-2024-0601  ", "items": ""})

    assert case.title == "Gin into a rucksack" and case.police_reference == "MET-2024-0601"
    [entry] = _entries(case, AuditAction.CASE_UPDATE)
    assert entry.site_id == world.site_a.pk and entry.ip_address == "10.0.0.9"
    assert entry.detail == {"changes": {
        "title": {"from": "Two bottles of gin into a rucksack", "to": "Gin into a rucksack"},
        "estimated_value": {"from": None, "to": "45.80"},
        "police_reference": {"from": "", "to": "MET-2024-0601"},
    }}


def test_an_edit_that_changes_nothing_is_not_audited(world: World) -> None:
    case = _open(world)

    case_update(case=case, user=_user(world, "reviewer"), data={"title": case.title})

    assert not _entries(case, AuditAction.CASE_UPDATE)


def test_the_edit_page_saves_the_form(world: World) -> None:
    case = _open(world)
    client = _client(world, "reviewer")

    assert client.get(f"/cases/{case.pk}/edit/").status_code == 200
    response = client.post(f"/cases/{case.pk}/edit/", {
        "title": "Gin", "outcome": CaseOutcome.THEFT_PREVENTED, "estimated_value": "12.50", "items": "1 x gin",
        "person_description": "Tall, grey hoodie, left towards the car park", "police_reference": "", "notes": "",
    })

    case.refresh_from_db()
    assert response.status_code == 302
    assert case.outcome == CaseOutcome.THEFT_PREVENTED and case.person_description.startswith("Tall")


@pytest.mark.parametrize("value", ["-0.01", "-5"])
def test_it_refuses_a_negative_estimated_value(world: World, value: str) -> None:
    case = _open(world)

    with pytest.raises(CaseError, match="Estimated value"):
        case_update(case=case, user=_user(world, "reviewer"), data={"estimated_value": Decimal(value)})
    with pytest.raises(CaseError, match="Estimated value"):
        case_create(user=_user(world, "reviewer"), alerts=[world.alert_a], title="x", estimated_value=Decimal(value))
    response = _client(world, "reviewer").post(f"/cases/{case.pk}/edit/", {"title": "x", "estimated_value": value})

    assert response.status_code == 400
    case.refresh_from_db()
    assert case.estimated_value is None


def test_it_adds_and_removes_alerts_and_audits_each(world: World) -> None:
    case = _open(world)
    second, third = _second_alert(world, 2), _second_alert(world, 3)
    reviewer = _user(world, "reviewer")

    added = case_add_alerts(case=case, user=reviewer, alerts=[second, third, world.alert_a])
    case_remove_alert(case=case, user=reviewer, alert=second)

    assert added == [second, third]
    assert set(case.alerts.all()) == {world.alert_a, third}
    add, remove = _entries(case, AuditAction.CASE_UPDATE)
    assert add.detail == {"alerts_added": [second.pk, third.pk]} and add.site_id == world.site_a.pk
    assert remove.detail == {"alerts_removed": [second.pk]}


def test_it_keeps_at_least_one_alert_in_a_case(world: World) -> None:
    case = _open(world)

    with pytest.raises(CaseError, match="the only alert"):
        case_remove_alert(case=case, user=_user(world, "reviewer"), alert=world.alert_a)
    with pytest.raises(CaseError, match="already in"):
        case_add_alerts(case=case, user=_user(world, "reviewer"), alerts=[world.alert_a])


def test_the_case_page_removes_an_alert(world: World) -> None:
    second = _second_alert(world)
    case = _open(world, world.alert_a, second)

    response = _client(world, "reviewer").post(f"/cases/{case.pk}/alerts/{second.pk}/remove/", follow=True)

    assert f"Alert #{second.pk} removed from {case.reference}." in _messages(response)
    assert list(case.alerts.all()) == [world.alert_a]


def test_closing_needs_an_outcome(world: World) -> None:
    case = _open(world)

    with pytest.raises(CaseError, match=r"Choose the outcome \(theft confirmed, theft prevented, false alarm, other\)"):
        case_close(case=case, user=_user(world, "manager"))
    response = _client(world, "manager").post(f"/cases/{case.pk}/close/", {"outcome": ""}, follow=True)

    assert any("Choose the outcome" in m for m in _messages(response))
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN and not _entries(case, AuditAction.CASE_CLOSE)


def test_a_manager_closes_a_case_with_its_outcome_and_reopens_it(world: World) -> None:
    case = _open(world)
    client = _client(world, "manager")

    closed = client.post(f"/cases/{case.pk}/close/", {"outcome": CaseOutcome.THEFT_CONFIRMED}, follow=True)
    case.refresh_from_db()
    assert f"{case.reference} closed: theft confirmed." in _messages(closed)
    assert case.status == CaseStatus.CLOSED and case.closed_by == world.users["manager"] and case.closed_at
    [close] = _entries(case, AuditAction.CASE_CLOSE)
    assert close.detail == {"outcome": "theft_confirmed", "changes": {"outcome": {"from": "", "to": "theft_confirmed"}}}
    assert close.username == "manager" and close.site_id == world.site_a.pk

    client.post(f"/cases/{case.pk}/reopen/")
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN and case.closed_at is None and case.outcome == CaseOutcome.THEFT_CONFIRMED
    [reopen] = _entries(case, AuditAction.CASE_REOPEN)
    assert reopen.detail["was"]["closed_by"] == "manager"
    assert audit_verify().problem == ""


def test_a_closed_case_cannot_change_until_reopened(world: World) -> None:
    second = _second_alert(world)
    case = _open(world, world.alert_a, second)
    reviewer, manager = _user(world, "reviewer"), _user(world, "manager")
    case_close(case=case, user=manager, outcome=CaseOutcome.FALSE_ALARM)

    for attempt in (lambda: case_update(case=case, user=reviewer, data={"title": "Changed"}),
                    lambda: case_add_alerts(case=case, user=reviewer, alerts=[_second_alert(world, 5)]),
                    lambda: case_remove_alert(case=case, user=reviewer, alert=second)):
        with pytest.raises(CaseError, match=rf"{case.reference} is closed: a manager must reopen it"):
            attempt()
    with pytest.raises(CaseError, match="already closed"):
        case_close(case=case, user=manager, outcome=CaseOutcome.OTHER)
    edit = _client(world, "reviewer").get(f"/cases/{case.pk}/edit/", follow=True)
    assert any("is closed" in m for m in _messages(edit))

    case_reopen(case=case, user=manager)
    case_update(case=case, user=reviewer, data={"title": "Changed"})
    case.refresh_from_db()
    assert case.title == "Changed"


def test_an_open_case_holds_its_alerts_and_closing_releases_them_unless_confirmed(world: World) -> None:
    second = _second_alert(world)
    assert not alerts_held().filter(pk__in=[world.alert_a.pk, second.pk]).exists()
    case = _open(world, world.alert_a, second)
    assert set(alerts_held()) == {world.alert_a, second}

    Alert.objects.filter(pk=second.pk).update(review_status=ReviewStatus.CONFIRMED)
    case_close(case=case, user=_user(world, "manager"), outcome=CaseOutcome.THEFT_CONFIRMED)

    assert set(alerts_held()) == {second}


def test_the_list_filters_by_status_and_site_newest_first(world: World) -> None:
    root = _user(world, "superuser")
    older = _open(world, title="Older")
    newer = _open(world, _second_alert(world), title="Newer")
    at_hilltop = case_create(user=root, alerts=[world.alert_b], title="Hilltop")
    closed = _open(world, _second_alert(world, 4), title="Closed")
    case_close(case=closed, user=root, outcome=CaseOutcome.OTHER)

    assert list(case_list_for(user=root)) == [at_hilltop, newer, older]
    assert list(case_list_for(user=root, filters=CaseFilters(status=CaseStatus.CLOSED))) == [closed]
    assert list(case_list_for(user=root, filters=CaseFilters(status=None, site_id=world.site_a.pk))) == [
        closed, newer, older]
    assert list(case_list_for(user=_user(world, "other_site"), filters=CaseFilters(status=None))) == [at_hilltop]
    page = _client(world, "viewer").get("/cases/?status=all").content.decode()
    assert "Older" in page and "Closed" in page and "Hilltop" not in page


def test_the_alert_page_shows_its_cases_and_adds_it_to_an_open_one(world: World) -> None:
    second = _second_alert(world)
    case = _open(world, second, title="Earlier incident")
    client = _client(world, "reviewer")

    page = client.get(f"/alerts/{world.alert_a.pk}/").content.decode()
    assert "New case from this alert" in page and f'<option value="{case.pk}">' in page
    client.post(f"/alerts/{world.alert_a.pk}/case/", {"case": str(case.pk)})

    assert set(case.alerts.all()) == {world.alert_a, second}
    page = client.get(f"/alerts/{world.alert_a.pk}/").content.decode()
    assert f'href="/cases/{case.pk}/"' in page and f'<option value="{case.pk}">' not in page


def test_a_viewer_sees_the_alerts_cases_but_no_case_buttons(world: World) -> None:
    case = _open(world)

    page = _client(world, "viewer").get(f"/alerts/{world.alert_a.pk}/").content.decode()

    assert f'href="/cases/{case.pk}/"' in page
    assert "New case from this alert" not in page and "Add to case" not in page


def test_the_case_page_shows_managers_its_history(world: World) -> None:
    case = _open(world)
    case_update(case=case, user=_user(world, "reviewer"), data={"police_reference": "MET-2024-0601"})

    managers = _client(world, "manager").get(f"/cases/{case.pk}/").content.decode()
    reviewers = _client(world, "reviewer").get(f"/cases/{case.pk}/").content.decode()

    assert 'id="case-history"' in managers and f"Changed police reference of {case.reference}" in managers
    assert 'id="case-history"' not in reviewers
