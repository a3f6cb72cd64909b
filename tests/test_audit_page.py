"""The audit page (/audit/) and its CSV export: a manager reads their own sites' entries and their
members' sign-ins, not another site's; viewers and reviewers are refused; the CSV holds the same
entries with their hashes, and exporting it is itself an entry."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from alerts.audit import audit_entries_for, audit_record, audit_verify
from alerts.models import AuditAction, AuditEntry
from tests.support.clips import World

pytestmark = pytest.mark.usefixtures("fast_passwords")


def _client(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


def _csv(client: Client, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/audit/export.csv{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def entries(world: World) -> dict[str, AuditEntry]:
    """An entry at each site, a site-less one, and sign-ins of a member of site A and of site B's manager."""
    return {
        "a": audit_record(action=AuditAction.REVIEW, summary="Review at Riverside", site_id=world.site_a.pk,
                          user=world.users["reviewer"], object_type="alert", object_id=world.alert_a.pk,
                          detail={"old_status": "unreviewed", "new_status": "confirmed"}, ip_address="10.0.0.7"),
        "b": audit_record(action=AuditAction.REVIEW, summary="Review at Hilltop", site_id=world.site_b.pk,
                          user=world.users["other_site"], object_type="alert", object_id=world.alert_b.pk),
        "global": audit_record(action=AuditAction.ADMIN_CHANGE, summary="Changed the environment's webhook",
                               user=world.users["superuser"]),
        "member_login": audit_record(action=AuditAction.LOGIN, summary="viewer signed in", user=world.users["viewer"]),
        "other_login": audit_record(action=AuditAction.LOGIN, summary="other signed in",
                                    user=world.users["other_site"]),
        "member_failed": audit_record(action=AuditAction.LOGIN_FAILED, summary="Failed sign-in as 'viewer'",
                                      username="viewer"),
    }


def test_it_shows_a_manager_their_sites_entries_and_members_sign_ins_only(world: World,
                                                                          entries: dict[str, AuditEntry]) -> None:
    page = _client(world, "manager").get("/audit/")

    assert page.status_code == 200
    seqs = {int(seq) for seq in page.content.decode().split('data-seq="')[1:] for seq in [seq.split('"')[0]]}
    assert {entries[k].seq for k in ("a", "member_login", "member_failed")} <= seqs
    assert not {entries[k].seq for k in ("b", "global", "other_login")} & seqs
    assert "Review at Riverside" in page.content.decode() and "Review at Hilltop" not in page.content.decode()


def test_it_shows_a_superuser_every_entry_including_those_of_no_site(world: World,
                                                                     entries: dict[str, AuditEntry]) -> None:
    page = _client(world, "superuser").get("/audit/").content.decode()

    assert all(entry.summary.replace("'", "&#x27;") in page for entry in entries.values())


@pytest.mark.parametrize("persona", ["viewer", "reviewer"])
@pytest.mark.parametrize("url", ["/audit/", "/audit/export.csv"])
def test_it_refuses_viewers_and_reviewers(world: World, entries: dict[str, AuditEntry], persona: str, url: str) -> None:
    assert _client(world, persona).get(url).status_code == 403
    assert not AuditEntry.objects.filter(action=AuditAction.AUDIT_EXPORT).exists()


def test_it_sends_anonymous_users_to_the_login(world: World) -> None:
    response = Client().get("/audit/")

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_shows_the_audit_link_to_managers_only(world: World) -> None:
    assert 'href="/audit/"' in _client(world, "manager").get("/").content.decode()
    assert 'href="/audit/"' not in _client(world, "reviewer").get("/").content.decode()


def test_it_filters_by_action_user_and_site(world: World, entries: dict[str, AuditEntry]) -> None:
    client = _client(world, "superuser")

    by_action = client.get("/audit/", {"action": "login"}).content.decode()
    by_user = client.get("/audit/", {"user": "review"}).content.decode()
    by_site = client.get("/audit/", {"site": world.site_b.pk}).content.decode()

    assert "viewer signed in" in by_action and "Review at Riverside" not in by_action
    assert "Review at Riverside" in by_user and "viewer signed in" not in by_user
    assert "Review at Hilltop" in by_site and "Review at Riverside" not in by_site


def test_it_refuses_a_managers_filter_on_another_site_and_says_so(world: World,
                                                                  entries: dict[str, AuditEntry]) -> None:
    page = _client(world, "manager").get("/audit/", {"site": world.site_b.pk}).content.decode()

    assert "Review at Hilltop" not in page and "filter not applied" in page


def _seqs(page: str) -> list[int]:
    return [int(part.split('"')[0]) for part in page.split('data-seq="')[1:]]


def test_it_pages_newest_first(world: World) -> None:
    for n in range(60):
        audit_record(action=AuditAction.REVIEW, summary=f"Review number {n}", site_id=world.site_a.pk)
    client = _client(world, "manager")
    visible = list(audit_entries_for(user=world.users["manager"]).order_by("-seq").values_list("seq", flat=True))  # type: ignore[arg-type]

    first = client.get("/audit/").content.decode()
    second = client.get("/audit/", {"before": _seqs(first)[-1]}).content.decode()

    assert _seqs(first) == visible[:50] and 'rel="next"' in first
    assert _seqs(second) == visible[50:] and 'rel="next"' not in second and "« Newest" in second


def test_the_csv_holds_the_same_entries_as_the_page_with_their_hashes(world: World,
                                                                      entries: dict[str, AuditEntry]) -> None:
    client = _client(world, "manager")

    rows = _csv(client)

    own_login = AuditEntry.objects.get(action=AuditAction.LOGIN, username="manager")
    visible = [entries[k] for k in ("a", "member_login", "member_failed")] + [own_login]
    assert [int(row["seq"]) for row in rows] == sorted(e.seq for e in visible)
    row = next(r for r in rows if int(r["seq"]) == entries["a"].seq)
    entry = entries["a"]
    assert row == {
        "seq": str(entry.seq), "time_utc": entry.at.isoformat(timespec="microseconds"), "user": "reviewer",
        "action": "review", "site": "Riverside", "object": f"alert #{world.alert_a.pk}", "summary": "Review at Riverside",
        "detail_json": json.dumps(entry.detail, sort_keys=True), "ip_address": "10.0.0.7",
        "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash,
    }


def test_the_csv_export_is_itself_audited(world: World, entries: dict[str, AuditEntry]) -> None:
    client = _client(world, "manager")

    _csv(client, f"?site={world.site_a.pk}&action=review")

    export = AuditEntry.objects.get(action=AuditAction.AUDIT_EXPORT)
    assert (export.username, export.site_id) == ("manager", world.site_a.pk)
    assert export.detail == {"filters": {"site": str(world.site_a.pk), "action": "review"}, "rows": 1}
    assert [int(r["seq"]) for r in _csv(client)][-1] == export.seq  # the next export lists it
    assert audit_verify().problem == ""


def test_the_csv_keeps_a_typed_user_name_from_running_as_a_formula(world: World) -> None:
    audit_record(action=AuditAction.LOGIN_FAILED, summary="Failed sign-in as '=HYPERLINK(\"x\")'",
                 username='=HYPERLINK("x")')

    rows = _csv(_client(world, "superuser"))

    failed = next(row for row in rows if row["action"] == "login_failed")
    assert failed["user"] == "'=HYPERLINK(\"x\")" and failed["summary"].startswith("Failed sign-in as")
