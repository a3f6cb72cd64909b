"""What writes to the audit log: sign-ins, clip views and downloads (and refusals of a tampered clip),
reviews, changes made in the admin (old and new values, no secrets), and retention's deletions. Each
through the real view, admin form or service, then the chain still verifies."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from alerts.audit import audit_verify
from alerts.export import ExportError, evidence_export
from alerts.models import (
    AccessAction,
    Alert,
    AuditAction,
    AuditEntry,
    ClipAccess,
    NotificationTarget,
    ReviewStatus,
    clip_storage,
)
from alerts.retention import retention_apply
from cameras.models import Camera, Role, SiteMembership, Zone
from tests.support.clips import SampleClip, World, attach_clip
from tests.support.factories import PASSWORD, SQUARE, make_alert, make_camera, make_site, make_user

pytestmark = pytest.mark.usefixtures("fast_passwords")


def _client(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


def _entries(action: AuditAction) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("seq"))


def _only(action: AuditAction) -> AuditEntry:
    entries = _entries(action)
    assert len(entries) == 1, [e.summary for e in entries]
    return entries[0]


def _drain(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def _tamper(alert: Alert) -> None:
    path = Path(clip_storage().path(alert.clip.name))
    data = bytearray(path.read_bytes())
    data[5000] ^= 1
    path.write_bytes(bytes(data))


# --- Signing in and out ------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_records_a_sign_in_a_failed_sign_in_and_a_sign_out() -> None:
    alice = make_user("alice", site=make_site(), role=Role.VIEWER)
    client = Client()

    client.post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.7")
    client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.8")
    client.post("/logout/", REMOTE_ADDR="10.0.0.8")

    failed, login, logout = _only(AuditAction.LOGIN_FAILED), _only(AuditAction.LOGIN), _only(AuditAction.LOGOUT)
    assert (failed.username, failed.actor_id, failed.ip_address, failed.site_id) == ("alice", None, "10.0.0.7", None)
    assert "wrong" not in json.dumps(failed.detail) + failed.summary
    assert (login.username, login.actor_id, login.ip_address, login.site_id) == ("alice", alice.pk, "10.0.0.8", None)
    assert (logout.username, logout.actor_id, logout.ip_address) == ("alice", alice.pk, "10.0.0.8")
    assert failed.seq < login.seq < logout.seq
    assert audit_verify().problem == ""


@pytest.mark.django_db
def test_it_records_the_name_typed_in_a_failed_sign_in_of_no_account() -> None:
    Client().post("/login/", {"username": "mallory", "password": "guess"}, REMOTE_ADDR="10.0.0.9")

    failed = _only(AuditAction.LOGIN_FAILED)
    assert (failed.username, failed.actor_id, failed.summary) == ("mallory", None, "Failed sign-in as 'mallory'")


@pytest.mark.django_db
def test_it_records_a_sign_in_refused_by_the_failure_limit(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = 2
    make_user("alice", site=make_site(), role=Role.VIEWER)
    for _ in range(3):
        Client().post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.7")

    failed = _entries(AuditAction.LOGIN_FAILED)
    assert len(failed) == 3
    refused = [entry for entry in failed if entry.detail.get("refused")]
    assert len(refused) == 1
    assert (refused[0].username, refused[0].ip_address, refused[0].detail["limit"]) == ("alice", "10.0.0.7", "username")
    assert audit_verify().problem == ""


@pytest.mark.django_db
def test_it_records_create_staff_granting_and_changing_a_role(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management import call_command

    site = make_site("Riverside")
    monkeypatch.setenv("BOB_PW", "a long enough passphrase 42")
    call_command("create_staff", "bob", "--role", "viewer", "--site", "Riverside", "--password-env", "BOB_PW")
    call_command("create_staff", "bob", "--role", "manager", "--site", "Riverside")

    added, changed = _only(AuditAction.ADMIN_ADD), _only(AuditAction.ADMIN_CHANGE)
    membership = SiteMembership.objects.get(user__username="bob", site=site)
    assert (added.site_id, added.object_type, added.object_id) == (site.pk, "sitemembership", str(membership.pk))
    assert added.detail["created"] is True and added.detail["new_role"] == "viewer"
    assert (changed.detail["old_role"], changed.detail["new_role"]) == ("viewer", "manager")
    assert "passphrase" not in json.dumps(added.detail) + added.summary
    assert audit_verify().problem == ""


# --- Clips -------------------------------------------------------------------------------------

def test_it_records_a_clip_view_and_download_with_their_access_rows(world: World, test_clip: SampleClip) -> None:
    client = _client(world, "reviewer")
    alert = world.alert_a

    viewed = client.get(f"/alerts/{alert.pk}/clip/", REMOTE_ADDR="10.0.0.7")
    downloaded = client.get(f"/alerts/{alert.pk}/download/", REMOTE_ADDR="10.0.0.7")

    assert _drain(viewed) == _drain(downloaded) == test_clip.data
    view, download = _only(AuditAction.CLIP_VIEW), _only(AuditAction.CLIP_DOWNLOAD)
    accesses = {access.action: access for access in ClipAccess.objects.filter(alert=alert)}
    for entry, action in ((view, AccessAction.VIEW), (download, AccessAction.DOWNLOAD)):
        assert entry.detail == {"clip_access_id": accesses[action].pk, "part": "first", "alert_id": alert.pk}
        assert (entry.site_id, entry.object_type, entry.object_id) == (world.site_a.pk, "alert", str(alert.pk))
        assert (entry.username, entry.ip_address) == ("reviewer", "10.0.0.7")
    assert audit_verify().problem == ""


@pytest.mark.parametrize("path, headers", [
    ("download", {}),
    ("clip", {}),
    ("clip", {"HTTP_RANGE": "bytes=0-"}),
])
def test_it_refuses_a_whole_clip_whose_file_no_longer_matches_its_hash(world: World, path: str,
                                                                      headers: dict[str, str]) -> None:
    alert = world.alert_a
    _tamper(alert)

    response = _client(world, "reviewer").get(f"/alerts/{alert.pk}/{path}/", REMOTE_ADDR="10.0.0.7", **headers)

    assert response.status_code == 409
    assert "no longer matches the SHA-256 recorded when it was built" in response.content.decode()
    assert "A manager has been told" in response.content.decode()
    tamper = _only(AuditAction.TAMPER)
    assert (tamper.site_id, tamper.object_id, tamper.username, tamper.ip_address) == (
        world.site_a.pk, str(alert.pk), "reviewer", "10.0.0.7")
    assert tamper.detail["recorded_sha256"] == alert.clip_sha256
    assert tamper.detail["actual_sha256"] != alert.clip_sha256
    assert not ClipAccess.objects.exists()  # nothing was served


def test_it_does_not_re_hash_a_players_ranged_request(world: World) -> None:
    _tamper(world.alert_a)

    response = _client(world, "viewer").get(f"/alerts/{world.alert_a.pk}/clip/", HTTP_RANGE="bytes=1000-1999")

    assert response.status_code == 206 and len(_drain(response)) == 1000
    assert not _entries(AuditAction.TAMPER)


def test_it_records_tampering_found_by_the_police_export(world: World, tmp_path: Path) -> None:
    _tamper(world.alert_a)

    with pytest.raises(ExportError, match="was altered"):
        evidence_export(alert_ids=[world.alert_a.pk], user=world.users["reviewer"],  # type: ignore[arg-type]
                        out=tmp_path / "export.zip")

    tamper = _only(AuditAction.TAMPER)
    assert (tamper.site_id, tamper.detail["via"]) == (world.site_a.pk, "export")


# --- Reviews -----------------------------------------------------------------------------------

def test_it_records_a_review_with_the_old_and_new_status_and_note(world: World) -> None:
    client = _client(world, "reviewer")

    client.post(f"/alerts/{world.alert_a.pk}/review/", {"decision": "confirmed", "note": "Seen on CCTV."})
    client.post(f"/alerts/{world.alert_a.pk}/review/", {"decision": "dismissed", "note": "A staff member."})

    first, second = _entries(AuditAction.REVIEW)
    assert first.detail == {"old_status": "unreviewed", "new_status": "confirmed", "old_note": "",
                            "new_note": "Seen on CCTV."}
    assert second.detail == {"old_status": "confirmed", "new_status": "dismissed", "old_note": "Seen on CCTV.",
                             "new_note": "A staff member."}
    assert (second.site_id, second.username, second.object_id) == (world.site_a.pk, "reviewer", str(world.alert_a.pk))
    assert Alert.objects.get(pk=world.alert_a.pk).review_status == ReviewStatus.DISMISSED


# --- The admin ---------------------------------------------------------------------------------

def _camera_form(camera: Camera, zone: Zone, **extra: str) -> dict[str, str]:
    data = {
        "site": str(camera.site_id), "name": camera.name, "channel": str(camera.channel),
        "stream_url": camera.stream_url.replace("s3cret", "****"), "detect_url": "", "enabled": "on",
        "detector": "", "detection_fps": "5", "threshold": "", "pre_seconds": "", "during_seconds": "",
        "post_seconds": "", "ring_seconds": "",
        "zones-TOTAL_FORMS": "1", "zones-INITIAL_FORMS": "1", "zones-MIN_NUM_FORMS": "0",
        "zones-MAX_NUM_FORMS": "1000", "zones-0-id": str(zone.pk), "zones-0-camera": str(camera.pk),
        "zones-0-name": zone.name, "zones-0-kind": zone.kind, "zones-0-enabled": "on",
        "zones-0-polygon": json.dumps(SQUARE), "zones-0-threshold": "", "zones-0-event_types": "[]",
    }
    data.update(extra)
    return data


def _no_secrets() -> None:
    text = json.dumps([[e.summary, e.detail] for e in AuditEntry.objects.all()])
    assert "s3cret" not in text and "webhook-signing-secret" not in text and "tok3n" not in text


def test_it_records_a_managers_camera_and_zone_changes_with_old_and_new_values(world: World) -> None:
    camera, zone = world.camera_a, world.zone_a
    client = _client(world, "manager")

    response = client.post(f"/admin/cameras/camera/{camera.pk}/change/", _camera_form(
        camera, zone, threshold="0.7", stream_url=camera.stream_url.replace("s3cret", "****").replace("/ch", "/main"),
        **{"zones-0-threshold": "0.6"}), REMOTE_ADDR="10.0.0.7")

    assert response.status_code == 302, response.content.decode()[:2000]
    camera_entry, zone_entry = _entries(AuditAction.ADMIN_CHANGE)
    assert (camera_entry.object_type, camera_entry.object_id, camera_entry.site_id) == (
        "camera", str(camera.pk), world.site_a.pk)
    assert (camera_entry.username, camera_entry.ip_address) == ("manager", "10.0.0.7")
    changes = camera_entry.detail["changes"]
    assert changes["threshold"] == {"old": None, "new": 0.7}
    assert changes["stream_url"]["old"].startswith("rtsp://admin:****@10.0.0.5:554/ch")
    assert changes["stream_url"]["new"].startswith("rtsp://admin:****@10.0.0.5:554/main")
    assert "threshold None -> 0.7" in camera_entry.summary
    assert (zone_entry.object_type, zone_entry.object_id, zone_entry.site_id) == ("zone", str(zone.pk), world.site_a.pk)
    assert zone_entry.detail["changes"] == {"threshold": {"old": None, "new": 0.6}}
    _no_secrets()
    assert audit_verify().problem == ""


def test_it_records_zones_added_and_deleted_in_the_camera_form(world: World) -> None:
    camera, zone = world.camera_a, world.zone_a
    data = _camera_form(camera, zone, **{
        "zones-0-DELETE": "on", "zones-TOTAL_FORMS": "2", "zones-1-name": "Till", "zones-1-kind": "checkout",
        "zones-1-enabled": "on", "zones-1-polygon": json.dumps(SQUARE), "zones-1-threshold": "",
        "zones-1-event_types": "[]", "zones-1-camera": str(camera.pk)})

    response = _client(world, "manager").post(f"/admin/cameras/camera/{camera.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    added, deleted = _only(AuditAction.ADMIN_ADD), _only(AuditAction.ADMIN_DELETE)
    assert added.object_id == str(Zone.objects.get(name="Till").pk) and added.detail["values"]["kind"] == "checkout"
    assert (deleted.object_type, deleted.object_id, deleted.site_id) == ("zone", str(zone.pk), world.site_a.pk)
    assert not _entries(AuditAction.ADMIN_CHANGE)  # the camera itself was not changed


def test_it_records_cameras_disabled_by_an_admin_action(world: World) -> None:
    response = _client(world, "manager").post("/admin/cameras/camera/", {
        "action": "disable_cameras", "_selected_action": [str(world.camera_a.pk)]})

    assert response.status_code == 302
    entry = _only(AuditAction.ADMIN_CHANGE)
    assert entry.detail["changes"] == {"enabled": {"old": True, "new": False}}
    assert (entry.object_id, entry.site_id) == (str(world.camera_a.pk), world.site_a.pk)


def test_it_records_a_membership_change_with_the_old_and_new_role(world: World) -> None:
    membership = SiteMembership.objects.get(user=world.users["viewer"])

    response = _client(world, "superuser").post(f"/admin/cameras/sitemembership/{membership.pk}/change/", {
        "user": str(membership.user_id), "site": str(membership.site_id), "role": "reviewer"})

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = _only(AuditAction.ADMIN_CHANGE)
    assert (entry.object_type, entry.object_id, entry.site_id, entry.username) == (
        "sitemembership", str(membership.pk), world.site_a.pk, "root")
    assert entry.detail["changes"] == {"role": {"old": "viewer", "new": "reviewer"}}


def test_it_records_a_membership_added_in_the_site_form(world: World) -> None:
    newcomer = make_user("newcomer")
    site = world.site_a
    members = list(SiteMembership.objects.filter(site=site).order_by("pk"))
    data = {"name": site.name, "time_zone": site.time_zone, "retention_days": "",
            "memberships-TOTAL_FORMS": str(len(members) + 1), "memberships-INITIAL_FORMS": str(len(members)),
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000"}
    for n, member in enumerate(members):
        data |= {f"memberships-{n}-id": str(member.pk), f"memberships-{n}-site": str(site.pk),
                 f"memberships-{n}-user": str(member.user_id), f"memberships-{n}-role": member.role}
    n = len(members)
    data |= {f"memberships-{n}-site": str(site.pk), f"memberships-{n}-user": str(newcomer.pk),
             f"memberships-{n}-role": "viewer"}

    response = _client(world, "superuser").post(f"/admin/cameras/site/{site.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:3000]
    entry = _only(AuditAction.ADMIN_ADD)
    assert (entry.object_type, entry.site_id) == ("sitemembership", site.pk)
    assert entry.detail["values"]["user"] == f"newcomer (#{newcomer.pk})"


def test_it_never_logs_a_notification_targets_secret_or_webhook_path(world: World) -> None:
    client = _client(world, "manager")
    form = {"site": str(world.site_a.pk), "name": "Control room", "channel": "webhook",
            "address": "https://hooks.example.com/services/tok3n", "secret": "webhook-signing-secret-1",
            "event_types": "[]", "min_score": "0.5", "enabled": "on"}
    assert client.post("/admin/alerts/notificationtarget/add/", form).status_code == 302
    target = NotificationTarget.objects.get(name="Control room")

    response = client.post(f"/admin/alerts/notificationtarget/{target.pk}/change/",
                           form | {"secret": "webhook-signing-secret-2", "min_score": "0.6"})

    assert response.status_code == 302, response.content.decode()[:2000]
    added, changed = _only(AuditAction.ADMIN_ADD), _only(AuditAction.ADMIN_CHANGE)
    assert added.detail["values"]["secret"] == "(set)"
    assert added.detail["values"]["address"].startswith("https://hooks.example.com/… (sha256 ")
    assert changed.detail["changes"] == {"secret": "(changed)", "min_score": {"old": 0.5, "new": 0.6}}
    _no_secrets()


def test_it_records_deletions_from_the_delete_page_and_the_delete_action(world: World) -> None:
    targets = [NotificationTarget.objects.create(site=world.site_a, name=f"Till printer {n}", channel="email",
                                                 address="till@example.com") for n in range(3)]
    client = _client(world, "manager")

    one = client.post(f"/admin/alerts/notificationtarget/{targets[0].pk}/delete/", {"post": "yes"})
    bulk = client.post("/admin/alerts/notificationtarget/", {
        "action": "delete_selected", "post": "yes", "_selected_action": [str(t.pk) for t in targets[1:]]})

    assert one.status_code == bulk.status_code == 302
    deleted = _entries(AuditAction.ADMIN_DELETE)
    assert {(e.object_type, e.object_id, e.site_id) for e in deleted} == {
        ("notificationtarget", str(t.pk), world.site_a.pk) for t in targets}
    assert deleted[0].summary == "Deleted notification target 'Till printer 0 (E-mail)'"
    assert not NotificationTarget.objects.filter(site=world.site_a).exists()


def test_it_records_a_legal_hold_set_in_the_alert_admin(world: World) -> None:
    alert = world.alert_a

    response = _client(world, "manager").post(f"/admin/alerts/alert/{alert.pk}/change/", {
        "review_status": "unreviewed", "review_note": "", "legal_hold": "on"})

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = _only(AuditAction.ADMIN_CHANGE)
    assert entry.detail["changes"] == {"legal_hold": {"old": False, "new": True}}
    assert (entry.object_type, entry.site_id) == ("alert", world.site_a.pk)


# --- Retention ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_records_each_alert_retention_empties(clip_settings: Path, test_clip: SampleClip) -> None:
    camera = make_camera(make_site("Riverside"), "Aisle 3")
    old = attach_clip(make_alert(camera, at=timezone.now() - timedelta(days=40)), test_clip)
    attach_clip(make_alert(camera, at=timezone.now() - timedelta(days=3)), test_clip)

    retention_apply(dry_run=True)
    assert not _entries(AuditAction.RETENTION_DELETE)
    retention_apply()

    entry = _only(AuditAction.RETENTION_DELETE)
    assert (entry.actor_id, entry.username, entry.site_id, entry.object_id) == (None, "", camera.site_id, str(old.pk))
    assert entry.detail["clip_sha256"] == test_clip.sha256
    assert entry.detail["bytes"] == len(test_clip.data) + len(test_clip.thumbnail)
    assert {f["name"] for f in entry.detail["files"]} == {old.clip.name, old.thumbnail.name}
    assert entry.detail["reason"] == "retention: older than 31 days"
    assert audit_verify().problem == ""
