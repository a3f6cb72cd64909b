"""Who may do what with cases: every persona against every case view, as for alerts.

The cases are at Riverside, where viewer, reviewer and manager hold their roles; `other_site` is a
manager of Hilltop only (the strongest role, so a 404 proves site isolation, not rank). Viewers
see cases; reviewers open, edit, add and remove alerts and export; managers close and reopen.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from alerts.cases import case_close, case_create
from alerts.models import AccessAction, Alert, AuditAction, AuditEntry, Case, CaseOutcome, CaseStatus, ClipAccess
from tests.support.clips import SampleClip, World, attach_clip
from tests.support.factories import make_alert

LOGIN = "/login/"


@dataclass
class Cases:
    open: Case  # alert A and `second`
    closed: Case
    second: Alert
    spare: Alert  # in no case: the one added


@pytest.fixture
def cases(world: World, test_clip: SampleClip) -> Cases:
    reviewer, manager = world.users["reviewer"], world.users["manager"]
    assert isinstance(reviewer, User) and isinstance(manager, User)

    def alert(minutes: int) -> Alert:
        return make_alert(world.camera_a, at=world.alert_a.detected_at + timedelta(minutes=minutes))

    second, spare, closed_alert = attach_clip(alert(2), test_clip), alert(3), alert(4)
    open_case = case_create(user=reviewer, alerts=[world.alert_a, second], title="Gin into a rucksack")
    closed = case_create(user=reviewer, alerts=[closed_alert], title="Closed one")
    case_close(case=closed, user=manager, outcome=CaseOutcome.FALSE_ALARM)
    return Cases(open=open_case, closed=closed, second=second, spare=spare)


def _request(client: Client, world: World, cases: Cases, action: str) -> Any:
    c, closed = cases.open.pk, cases.closed.pk
    match action:
        case "list":
            response = client.get("/cases/?status=all")
        case "detail":
            response = client.get(f"/cases/{c}/")
        case "edit_page":
            response = client.get(f"/cases/{c}/edit/")
        case "edit":
            response = client.post(f"/cases/{c}/edit/", {"title": "Changed", "outcome": ""})
        case "add_alert":
            response = client.post(f"/cases/{c}/alerts/add/", {"alert": str(cases.spare.pk)})
        case "add_from_alert_page":
            response = client.post(f"/alerts/{cases.spare.pk}/case/", {"case": str(c)})
        case "remove_alert":
            response = client.post(f"/cases/{c}/alerts/{cases.second.pk}/remove/")
        case "close":
            response = client.post(f"/cases/{c}/close/", {"outcome": CaseOutcome.THEFT_CONFIRMED})
        case "reopen":
            response = client.post(f"/cases/{closed}/reopen/")
        case "export":
            response = client.post(f"/cases/{c}/export/")
        case "new_page":
            response = client.get(f"/cases/new/?alerts={world.alert_a.pk}")
        case "new":
            response = client.post("/cases/new/", {"alerts": str(cases.spare.pk), "title": "New"})
        case _:
            raise AssertionError(action)
    return response


ACTIONS = ["list", "detail", "edit_page", "edit", "add_alert", "add_from_alert_page", "remove_alert", "close",
           "reopen", "export", "new_page", "new"]
OK_REVIEWER = {"list": 200, "detail": 200, "edit_page": 200, "edit": 302, "add_alert": 302,
               "add_from_alert_page": 302, "remove_alert": 302, "export": 200, "new_page": 200, "new": 302}
MATRIX: dict[str, dict[str, int]] = {
    "anonymous": {action: 302 for action in ACTIONS},
    "viewer": {action: 403 for action in ACTIONS} | {"list": 200, "detail": 200},
    "reviewer": OK_REVIEWER | {"close": 403, "reopen": 403},
    "manager": OK_REVIEWER | {"close": 302, "reopen": 302},
    "other_site": {action: 404 for action in ACTIONS} | {"list": 200},
    "superuser": OK_REVIEWER | {"close": 302, "reopen": 302},
}
CASES = [(persona, action, status) for persona, row in MATRIX.items() for action, status in row.items()]


@pytest.mark.parametrize(("persona", "action", "status"), CASES, ids=[f"{p}-{a}" for p, a, _ in CASES])
def test_case_views_answer_each_persona(world: World, cases: Cases, persona: str, action: str, status: int) -> None:
    client = Client()
    if world.users[persona] is not None:
        client.force_login(world.users[persona])  # type: ignore[arg-type]
    before = AuditEntry.objects.count()

    response = _request(client, world, cases, action)

    assert response.status_code == status, response.content[:300]
    if persona == "anonymous":
        assert response["Location"].startswith(LOGIN)
    if status in (403, 404):  # refused: nothing changed, nothing exported
        assert AuditEntry.objects.count() == before
        assert not ClipAccess.objects.filter(action=AccessAction.EXPORT).exists()
        assert set(Case.objects.get(pk=cases.open.pk).alerts.all()) == {world.alert_a, cases.second}
        assert Case.objects.get(pk=cases.open.pk).status == CaseStatus.OPEN
        assert Case.objects.get(pk=cases.closed.pk).status == CaseStatus.CLOSED
    if action == "list" and persona != "anonymous":
        shown = "Gin into a rucksack" in response.content.decode()
        assert shown is (persona != "other_site")


@pytest.mark.parametrize("persona", ["reviewer", "other_site"])
def test_a_case_that_does_not_exist_is_the_same_404_as_another_sites(world: World, persona: str) -> None:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    missing = (Case.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000

    assert client.get(f"/cases/{missing}/").status_code == 404
    assert client.post(f"/cases/{missing}/export/").status_code == 404
    assert client.post(f"/cases/{missing}/alerts/add/", {"alert": str(world.alert_a.pk)}).status_code == 404


def test_a_reviewer_cannot_add_an_alert_to_another_sites_case_from_the_alert_page(world: World) -> None:
    root = world.users["superuser"]
    assert isinstance(root, User)
    hilltop = case_create(user=root, alerts=[world.alert_b], title="At Hilltop")
    client = Client()
    client.force_login(world.users["reviewer"])  # type: ignore[arg-type]

    response = client.post(f"/alerts/{world.alert_a.pk}/case/", {"case": str(hilltop.pk)})

    assert response.status_code == 404
    assert list(hilltop.alerts.all()) == [world.alert_b]
    assert not AuditEntry.objects.filter(action=AuditAction.CASE_UPDATE).exists()


def test_the_viewers_case_page_has_no_buttons_it_may_not_use(world: World, cases: Cases) -> None:
    client = Client()
    client.force_login(world.users["viewer"])  # type: ignore[arg-type]

    page = client.get(f"/cases/{cases.open.pk}/").content.decode()

    assert "Gin into a rucksack" in page
    for control in ('id="edit-case"', 'id="export"', 'id="add-alert"', "Remove", "Close case", 'id="reopen-case"'):
        assert control not in page, control


def test_the_admin_shows_cases_read_only_to_their_sites_managers(world: World, cases: Cases) -> None:
    manager, other = Client(), Client()
    manager.force_login(world.users["manager"])  # type: ignore[arg-type]
    other.force_login(world.users["other_site"])  # type: ignore[arg-type]

    listing = manager.get("/admin/alerts/case/")
    page = manager.get(f"/admin/alerts/case/{cases.open.pk}/change/")
    changed = manager.post(f"/admin/alerts/case/{cases.open.pk}/change/", {"title": "Changed"})

    assert listing.status_code == 200 and "Gin into a rucksack" in listing.content.decode()
    assert page.status_code == 200 and f'href="/cases/{cases.open.pk}/"' in page.content.decode()
    assert changed.status_code == 403 and Case.objects.get(pk=cases.open.pk).title == "Gin into a rucksack"
    assert "Gin into a rucksack" not in other.get("/admin/alerts/case/").content.decode()
    assert other.get(f"/admin/alerts/case/{cases.open.pk}/change/").status_code == 302
