"""Who may do what: every persona of the issue against every alert view, the clip and the admin.

Alert A is at site Riverside, where viewer, reviewer and manager hold their roles; `other_site`
is a manager of Hilltop only (the strongest role, so a pass proves site isolation, not rank).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.test import Client

from alerts.models import AccessAction, ClipAccess, ReviewStatus
from tests.support.clips import World

LOGIN = "/login/"
ADMIN_LOGIN = "/admin/login/"
ADMIN_INDEX = "/admin/"


@dataclass(frozen=True)
class Expect:
    status: int
    location: str | None = None  # the redirect target's path prefix
    shows_alert_a: bool | None = None  # for lists: must (True) or must not (False) show alert A


def _request(client: Client, world: World, action: str):  # type: ignore[no-untyped-def]
    a, b = world.alert_a.pk, world.alert_b.pk
    match action:
        case "list":
            return client.get("/")
        case "detail":
            return client.get(f"/alerts/{a}/")
        case "review":
            return client.post(f"/alerts/{a}/review/", {"decision": "confirmed", "note": "Bottle in the bag."})
        case "stream":
            return client.get(f"/alerts/{a}/clip/", HTTP_RANGE="bytes=0-99")
        case "download":
            return client.get(f"/alerts/{a}/download/")
        case "admin_list":
            return client.get("/admin/alerts/alert/")
        case "admin_change_a":
            return client.get(f"/admin/alerts/alert/{a}/change/")
        case "admin_change_b":
            return client.get(f"/admin/alerts/alert/{b}/change/")
    raise AssertionError(action)


R = Expect(302, LOGIN)  # anonymous: to the login page
ADMIN_R = Expect(302, ADMIN_LOGIN)  # not staff: the admin sends them to its login
GONE = Expect(302, ADMIN_INDEX)  # the admin's answer for an object outside its queryset
MATRIX: dict[str, dict[str, Expect]] = {
    "anonymous": {
        "list": R, "detail": R, "review": R, "stream": R, "download": R,
        "admin_list": ADMIN_R, "admin_change_a": ADMIN_R, "admin_change_b": ADMIN_R,
    },
    "viewer": {
        "list": Expect(200, shows_alert_a=True), "detail": Expect(200), "review": Expect(403),
        "stream": Expect(206), "download": Expect(403),
        "admin_list": ADMIN_R, "admin_change_a": ADMIN_R, "admin_change_b": ADMIN_R,
    },
    "reviewer": {
        "list": Expect(200, shows_alert_a=True), "detail": Expect(200), "review": Expect(302, "/alerts/"),
        "stream": Expect(206), "download": Expect(200),
        "admin_list": ADMIN_R, "admin_change_a": ADMIN_R, "admin_change_b": ADMIN_R,
    },
    "manager": {
        "list": Expect(200, shows_alert_a=True), "detail": Expect(200), "review": Expect(302, "/alerts/"),
        "stream": Expect(206), "download": Expect(200),
        "admin_list": Expect(200, shows_alert_a=True), "admin_change_a": Expect(200), "admin_change_b": GONE,
    },
    "other_site": {
        "list": Expect(200, shows_alert_a=False), "detail": Expect(404), "review": Expect(404),
        "stream": Expect(404), "download": Expect(404),
        "admin_list": Expect(200, shows_alert_a=False), "admin_change_a": GONE, "admin_change_b": Expect(200),
    },
    "superuser": {
        "list": Expect(200, shows_alert_a=True), "detail": Expect(200), "review": Expect(302, "/alerts/"),
        "stream": Expect(206), "download": Expect(200),
        "admin_list": Expect(200, shows_alert_a=True), "admin_change_a": Expect(200), "admin_change_b": Expect(200),
    },
}
CASES = [(persona, action) for persona, actions in MATRIX.items() for action in actions]


def _shows_alert_a(content: str, world: World, action: str) -> bool:
    if action == "admin_list":
        return f"/admin/alerts/alert/{world.alert_a.pk}/change/" in content
    return f'data-id="{world.alert_a.pk}"' in content


@pytest.mark.parametrize(("persona", "action"), CASES, ids=[f"{p}-{a}" for p, a in CASES])
def test_it_allows_only_what_the_role_at_the_alerts_site_allows(world: World, persona: str, action: str) -> None:
    client = Client()
    user = world.users[persona]
    if user is not None:
        client.force_login(user)
    expect = MATRIX[persona][action]

    response = _request(client, world, action)

    assert response.status_code == expect.status, (persona, action, response.status_code)
    if expect.location is not None:
        assert response["Location"].startswith(expect.location), response["Location"]
    if expect.shows_alert_a is not None:
        assert _shows_alert_a(response.content.decode(), world, action) is expect.shows_alert_a


@pytest.mark.parametrize("persona", ["viewer", "other_site"])
def test_it_changes_nothing_when_review_is_refused(world: World, persona: str) -> None:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]

    client.post(f"/alerts/{world.alert_a.pk}/review/", {"decision": "dismissed", "note": "x"})

    world.alert_a.refresh_from_db()
    assert world.alert_a.review_status == ReviewStatus.UNREVIEWED
    assert world.alert_a.reviewed_by is None


@pytest.mark.parametrize("persona", ["anonymous", "viewer", "other_site"])
def test_it_records_no_access_when_download_is_refused(world: World, persona: str) -> None:
    client = Client()
    if world.users[persona] is not None:
        client.force_login(world.users[persona])  # type: ignore[arg-type]

    client.get(f"/alerts/{world.alert_a.pk}/download/")

    assert not ClipAccess.objects.filter(action=AccessAction.DOWNLOAD).exists()


def test_it_answers_404_alike_for_another_sites_alert_and_a_missing_one(world: World) -> None:
    client = Client()
    client.force_login(world.users["other_site"])  # type: ignore[arg-type]

    foreign = client.get(f"/alerts/{world.alert_a.pk}/")
    missing = client.get("/alerts/999999/")

    assert foreign.status_code == missing.status_code == 404
    without_token = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')
    assert without_token.sub(b"", foreign.content) == without_token.sub(b"", missing.content)


@pytest.mark.parametrize("persona", ["other_site", "viewer"])
def test_it_shows_other_sites_nothing_in_polls_and_status(world: World, persona: str) -> None:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    hidden = world.alert_b if persona == "viewer" else world.alert_a

    poll = client.get("/alerts/poll/", {"after": 0, "pending": f"{hidden.pk}"}).json()
    status = client.get(f"/alerts/{hidden.pk}/status/")
    thumb = client.get(f"/alerts/{hidden.pk}/thumbnail/")

    assert f'data-id="{hidden.pk}"' not in poll["new_html"]
    assert str(hidden.pk) not in poll["updated"]
    assert status.status_code == thumb.status_code == 404
