"""Regression tests for the holes a security probe found (issue 13), each replaying the attack
through the real views: credential lookups in the admin, a stored password sent to a new host,
unlogged clip copies, look-alike user names, and the smaller ones."""
from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from alerts.models import AccessAction, ClipAccess
from cameras.models import Camera, Role
from cameras.validators import validate_polygon
from shoplift.logs import KeyValueFormatter
from tests.support.clips import World
from tests.support.factories import PASSWORD, make_camera, make_site, make_user

SECRET_URL = "rtsp://admin:s3cretpw@10.0.0.5:554/ch1"


def _as(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


def _body(response) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- Medium 1: reading a masked password through admin lookups ---------------------------------

@pytest.mark.parametrize("persona", ["manager", "superuser"])
def test_it_refuses_admin_lookups_on_stream_urls_whatever_the_guess(world: World, persona: str) -> None:
    Camera.objects.filter(pk=world.camera_a.pk).update(stream_url=SECRET_URL, detect_url=SECRET_URL)
    client = _as(world, persona)
    answers = []
    for query in [f"id__exact={world.camera_a.pk}&stream_url__contains=s3cret",
                  f"id__exact={world.camera_a.pk}&stream_url__contains=wrong",
                  "detect_url__startswith=rtsp://admin:s",
                  "stream_url__regex=s3",
                  "zones__camera__stream_url__contains=s3"]:
        response = client.get(f"/admin/cameras/camera/?{query}")
        answers.append((response.status_code, b"1 camera" in response.content))
    assert answers == [(400, False)] * 5
    # Through a relation from another admin too.
    response = client.get("/admin/alerts/alert/?camera__stream_url__contains=s3cret")
    assert response.status_code == 400


# --- Medium 2: the stored password re-attached to a host of the manager's choosing ---------------

def _camera_form(camera: Camera, url: str) -> dict[str, str]:
    return {
        "site": str(camera.site_id), "name": camera.name, "channel": str(camera.channel), "stream_url": url,
        "detect_url": "", "enabled": "on", "detector": "", "detection_fps": "5", "threshold": "", "pre_seconds": "",
        "during_seconds": "", "post_seconds": "", "ring_seconds": "",
        "zones-TOTAL_FORMS": "0", "zones-INITIAL_FORMS": "0", "zones-MIN_NUM_FORMS": "0", "zones-MAX_NUM_FORMS": "1000",
    }


@pytest.mark.parametrize("url", [
    "rtsp://admin:****@attacker.example:554/steal",  # another host
    "rtsp://admin:****@10.0.0.5:8554/ch1",  # another port
    "rtsp://root:****@10.0.0.5:554/ch1",  # another user
    "rtsps://admin:****@10.0.0.5:554/ch1",  # another scheme
])
def test_it_never_sends_the_stored_password_to_a_changed_endpoint(world: World, url: str) -> None:
    camera = make_camera(world.site_a, "Door", stream_url=SECRET_URL)
    client = _as(world, "manager")
    response = client.post(f"/admin/cameras/camera/{camera.pk}/change/", _camera_form(camera, url))
    assert response.status_code == 200
    assert "type the camera&#x27;s password again" in response.content.decode().lower()
    camera.refresh_from_db()
    assert camera.stream_url == SECRET_URL


def test_it_keeps_the_stored_password_when_only_the_path_changes(world: World) -> None:
    camera = make_camera(world.site_a, "Door", stream_url=SECRET_URL)
    response = _as(world, "manager").post(f"/admin/cameras/camera/{camera.pk}/change/",
                                          _camera_form(camera, "rtsp://admin:****@10.0.0.5:554/ch2"))
    assert response.status_code == 302
    camera.refresh_from_db()
    assert camera.stream_url == "rtsp://admin:s3cretpw@10.0.0.5:554/ch2"


# --- Medium 3: whole clips copied without an access-log row ----------------------------------------

@pytest.mark.parametrize("header", ["bytes=-999999999", "bytes=00-", "bytes=10-5", "bytes=5-9,0-1", "items=0-5",
                                    "bytes=" + "9" * 5000 + "-"])
@pytest.mark.parametrize(("path", "persona", "action"), [("clip", "viewer", AccessAction.VIEW),
                                                         ("download", "reviewer", AccessAction.DOWNLOAD)])
def test_it_records_every_clip_access_whatever_the_range(world: World, header: str, path: str, persona: str,
                                                         action: AccessAction) -> None:
    response = _as(world, persona).get(f"/alerts/{world.alert_a.pk}/{path}/", HTTP_RANGE=header)
    assert response.status_code in (200, 206)  # a 4,300-digit number is no 500 either
    assert len(_body(response)) > 0
    assert list(ClipAccess.objects.values_list("alert_id", "username", "action")) == [
        (world.alert_a.pk, persona, action)
    ]


# --- Medium 4: look-alike user names get fresh tries -----------------------------------------------

@pytest.mark.django_db
def test_look_alike_names_share_the_lock_of_the_name_they_log_in_as(fast_passwords) -> None:
    make_user("ra", site=make_site(), role=Role.VIEWER)
    fullwidth, bold = "\uff52\uff41", "\U0001d42b\U0001d41a"  # ｒａ and 𝐫𝐚
    # The attack's premise: Django's form applies NFKC, so both log in as "ra".
    assert Client().post("/login/", {"username": fullwidth, "password": PASSWORD}).status_code == 302
    client = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        client.post("/login/", {"username": "ra", "password": "wrong-guess-1"}, REMOTE_ADDR="10.0.0.1")
    for name in (fullwidth, bold, " RA "):
        refused = Client().post("/login/", {"username": name, "password": PASSWORD}, REMOTE_ADDR="10.9.9.9")
        assert refused.status_code == 429, name


# --- Low -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("persona", ["manager", "superuser"])
def test_the_site_admin_change_page_opens_and_saves(world: World, persona: str) -> None:
    client = _as(world, persona)
    url = f"/admin/cameras/site/{world.site_a.pk}/change/"
    assert client.get(url).status_code == 200
    data = {"name": world.site_a.name, "time_zone": "Europe/Paris",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0", "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000"}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    world.site_a.refresh_from_db()
    assert world.site_a.time_zone == "Europe/Paris"
    assert _as(world, "manager").get(f"/admin/cameras/site/{world.site_b.pk}/change/").status_code in (302, 404)


def test_admin_list_filters_name_only_the_managers_sites(world: World) -> None:
    page = _as(world, "manager").get("/admin/cameras/camera/").content.decode()
    assert "Riverside" in page and "Hilltop" not in page
    page = _as(world, "manager").get("/admin/alerts/alert/").content.decode()
    assert "Hilltop" not in page


def test_it_refuses_a_polygon_with_too_many_points_at_once() -> None:
    huge = [[0.5 + 0.4 * (i % 2), i / 20_000] for i in range(20_000)]
    with pytest.raises(ValidationError, match="at most 100 points; it has 20000"):
        validate_polygon(huge)


def test_log_lines_cannot_be_forged_with_control_characters() -> None:
    forged = "bob\n2026-12-01 10:00:00,000 INFO alerts.auth login username=root ip=1.2.3.4"
    record = logging.LogRecord("alerts.auth", logging.WARNING, __file__, 1, "login failed username=%s",
                               (forged,), None)
    record.camera = "Aisle\r\n3\x1b[31m"
    line = KeyValueFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "username=bob\\n2026-12-01" in line and 'camera="Aisle\\\\r\\\\n3\\\\x1b[31m"' not in line
    assert "camera=Aisle\\r\\n3\\x1b[31m" in line


@pytest.mark.django_db
def test_password_change_counts_wrong_current_passwords_like_failed_logins(fast_passwords) -> None:
    make_user("alice", site=make_site(), role=Role.VIEWER)
    stolen = Client()
    assert stolen.login(username="alice", password=PASSWORD)
    statuses = []
    for n in range(settings.LOGIN_FAILURE_LIMIT + 2):
        response = stolen.post("/password/", {"old_password": f"guess-{n}-xyz", "new_password1": "N3w-passw0rd-ok",
                                              "new_password2": "N3w-passw0rd-ok"}, REMOTE_ADDR="10.0.0.8")
        statuses.append(response.status_code)
    assert statuses == [200] * settings.LOGIN_FAILURE_LIMIT + [429, 429]
    # Even the right password is refused now, and the owner's login is locked for the window too.
    right = stolen.post("/password/", {"old_password": PASSWORD, "new_password1": "N3w-passw0rd-ok",
                                       "new_password2": "N3w-passw0rd-ok"}, REMOTE_ADDR="10.0.0.8")
    assert right.status_code == 429 and "Try again in" in right.content.decode()
    assert Client().post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_parallel_login_attempts_never_exceed_the_limit(fast_passwords) -> None:
    """Twenty simultaneous wrong guesses: at most LOGIN_FAILURE_LIMIT are tried, the rest refused."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    make_user("bob", site=make_site(), role=Role.VIEWER)
    barrier = Barrier(20)

    def attempt(n: int) -> int:
        try:
            barrier.wait()
            return Client().post("/login/", {"username": "bob", "password": f"wrong-{n}"},
                                 REMOTE_ADDR=f"10.1.0.{n}").status_code
        finally:
            connection.close()

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serializes writers; the race needs a server database (CI runs PostgreSQL)")
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(200) <= settings.LOGIN_FAILURE_LIMIT, statuses
    assert statuses.count(429) >= 20 - settings.LOGIN_FAILURE_LIMIT


def test_clips_and_logs_are_written_private_to_the_service_whatever_the_umask(clip_settings, tmp_path) -> None:
    import os
    import stat

    from django.core.files.base import ContentFile

    from alerts.models import clip_storage
    from shoplift.logs import rotating_file_handler

    old = os.umask(0o022)
    try:
        name = clip_storage().save("clips/site/cam/2026/12/01/1.mp4", ContentFile(b"\x00" * 100))
        handler = rotating_file_handler(tmp_path / "log" / "web.log", max_bytes=200, backups=2)
        for n in range(10):
            handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "line %s " + "x" * 50, (n,), None))
        handler.close()
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "log").iterdir()}
    assert stat.S_IMODE((clip_settings / name).stat().st_mode) == 0o640
    assert stat.S_IMODE((clip_settings / name).parent.stat().st_mode) == 0o750
    assert "web.log.1.gz" in modes and set(modes.values()) == {0o640}, modes


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "SECRET_", "DEBUG"))}
    for line in (root / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.split("   #")[0].strip()
    env.update(DATA_DIR=str(tmp_path), CLIP_STORAGE_DIR=str(tmp_path / "clips"), LOG_DIR=str(tmp_path / "log"),
               DJANGO_SETTINGS_MODULE="shoplift.settings")
    run = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout
