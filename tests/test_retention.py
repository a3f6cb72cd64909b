"""Retention (alerts.retention): clips kept per site's days, free-space headroom on the clips folder,
held alerts never touched, deleted clips leave their row and hash, orphans swept. Real files in a
real local clips storage; the headroom test fills a real 4 MiB tmpfs."""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from moto.server import ThreadedMotoServer
from pytest_django.fixtures import Settings

from alerts.models import Alert, ClipStatus, EventClip, ReviewStatus, alerts_held, clip_storage
from alerts.retention import retention_apply
from alerts.tasks import apply_retention
from cameras.models import Camera, Role
from shoplift.settings import clips_s3_storage
from tests.support.clips import SampleClip, attach_clip, small_clip_disk
from tests.support.factories import make_alert, make_camera, make_site, make_user
from tests.support.rtsp import free_port

pytestmark = pytest.mark.django_db


def _store(name: str, data: bytes) -> str:
    return clip_storage().save(name, ContentFile(data))


def _exists(name: str) -> bool:
    return bool(name) and clip_storage().exists(name)


def _age(location: Path, name: str, hours: float) -> None:
    stamp = (timezone.now() - timedelta(hours=hours)).timestamp()
    os.utime(location / name, (stamp, stamp))


def _old_alert(camera: Camera, clip: SampleClip, days: float, **fields: object) -> Alert:
    alert = attach_clip(make_alert(camera, at=timezone.now() - timedelta(days=days), **fields), clip)
    return alert


@pytest.fixture
def camera(clip_settings: Path) -> Camera:
    return make_camera(make_site("Riverside"), "Aisle 3")


def test_it_deletes_an_old_unheld_alerts_clips_and_marks_the_row_keeping_its_hash(
        camera: Camera, test_clip: SampleClip) -> None:
    alert = _old_alert(camera, test_clip, days=40)
    event = EventClip.objects.create(alert=alert, clip=_store(f"clips/{alert.pk}-event.mp4", test_clip.data),
                                     clip_sha256=test_clip.sha256, clip_size=len(test_clip.data),
                                     clip_status=ClipStatus.READY)
    recent = _old_alert(camera, test_clip, days=30)
    names = [alert.clip.name, alert.thumbnail.name, event.clip.name]
    now = timezone.now()

    report = retention_apply(now=now)

    assert not any(_exists(name) for name in names)
    alert.refresh_from_db()
    assert alert.clip.name == "" and alert.thumbnail.name == ""
    assert alert.clip_deleted_at == now and alert.clip_deleted_reason == "retention: older than 31 days"
    assert alert.clip_sha256 == test_clip.sha256 and alert.clip_size == len(test_clip.data)
    assert alert.clip_status == ClipStatus.READY
    event.refresh_from_db()
    assert event.clip.name == "" and event.clip_sha256 == test_clip.sha256
    assert report.expired_alerts == 1 and report.errors == 0
    assert report.expired_bytes == 2 * len(test_clip.data) + len(test_clip.thumbnail)
    assert {f.name for f in report.files} == set(names)
    recent.refresh_from_db()
    assert _exists(recent.clip.name) and recent.clip_deleted_at is None


def test_it_keeps_confirmed_and_legal_hold_alerts(camera: Camera, test_clip: SampleClip, settings: Settings) -> None:
    confirmed = _old_alert(camera, test_clip, days=400, review_status=ReviewStatus.CONFIRMED)
    held = _old_alert(camera, test_clip, days=400, legal_hold=True)
    dismissed = _old_alert(camera, test_clip, days=400, review_status=ReviewStatus.DISMISSED)
    assert set(alerts_held()) == {confirmed, held}

    report = retention_apply()

    assert _exists(confirmed.clip.name) and _exists(confirmed.thumbnail.name) and _exists(held.clip.name)
    assert not _exists(dismissed.clip.name)
    assert report.held_kept == 2 and report.expired_alerts == 1

    settings.CLIP_RETENTION_HOLD_CONFIRMED = False
    report = retention_apply()

    assert not _exists(confirmed.clip.name) and _exists(held.clip.name)
    assert report.held_kept == 1 and report.expired_alerts == 1


def test_it_keeps_a_clip_still_being_built(camera: Camera, test_clip: SampleClip) -> None:
    building = _old_alert(camera, test_clip, days=40)
    Alert.objects.filter(pk=building.pk).update(clip_status=ClipStatus.BUILDING)

    assert retention_apply().expired_alerts == 0
    assert _exists(building.clip.name)


def test_it_honours_each_sites_days(clip_settings: Path, test_clip: SampleClip) -> None:
    week = make_camera(make_site("Week", time_zone="Europe/London"))
    week.site.retention_days = 7
    week.site.save()
    default = make_camera(make_site("Default"))
    long = make_camera(make_site("Long"))
    long.site.retention_days = 60
    long.site.save()
    week_alert = _old_alert(week, test_clip, days=10)
    week_fresh = _old_alert(week, test_clip, days=6)
    default_alert = _old_alert(default, test_clip, days=10)
    default_old = _old_alert(default, test_clip, days=32)
    long_alert = _old_alert(long, test_clip, days=40)

    report = retention_apply()

    assert not _exists(week_alert.clip.name) and not _exists(default_old.clip.name)
    assert all(_exists(a.clip.name) for a in (week_fresh, default_alert, long_alert))
    week_alert.refresh_from_db()
    assert week_alert.clip_deleted_reason == "retention: older than 7 days"
    assert report.expired_alerts == 2


@pytest.fixture
def small_disk(tmp_path: Path, settings: Settings) -> Iterator[Path]:
    """A 4 MiB tmpfs as the clips folder: a disk that really fills up."""
    with small_clip_disk(tmp_path / "small-disk", settings, size_bytes=4 * 1024 * 1024) as mount:
        yield mount


def test_it_deletes_the_oldest_unheld_clips_until_the_disk_has_its_headroom(
        small_disk: Path, settings: Settings) -> None:
    size = 160 * 4096  # whole pages: tmpfs counts in pages
    camera = make_camera(make_site())
    alerts = []
    for days in (10, 9, 8, 7, 6):  # all within the site's 31 days
        alert = make_alert(camera, at=timezone.now() - timedelta(days=days),
                           review_status=ReviewStatus.CONFIRMED if days == 10 else ReviewStatus.UNREVIEWED)
        alert.clip.name = _store(f"clips/{alert.pk}.mp4", os.urandom(size))
        alert.clip_status, alert.clip_size, alert.clip_sha256 = ClipStatus.READY, size, "ab" * 32
        alert.save()
        alerts.append(alert)
    held, oldest, second, third, newest = alerts
    free = shutil.disk_usage(small_disk).free
    settings.CLIP_STORAGE_MIN_FREE_PERCENT = 0.0
    settings.CLIP_STORAGE_MIN_FREE_BYTES = free + size * 3 // 2  # two clips must go; one is not enough

    dry = retention_apply(dry_run=True)
    assert [f.alert_id for f in dry.files] == [oldest.pk, second.pk]
    assert shutil.disk_usage(small_disk).free == free

    report = retention_apply()

    assert report.headroom_alerts == 2 and report.headroom_bytes == 2 * size and report.expired_alerts == 0
    assert shutil.disk_usage(small_disk).free >= settings.CLIP_STORAGE_MIN_FREE_BYTES
    assert report.headroom.startswith("restored")
    assert _exists(held.clip.name) and _exists(third.clip.name) and _exists(newest.clip.name)
    for alert in (oldest, second):
        alert.refresh_from_db()
        assert alert.clip.name == "" and alert.clip_sha256 == "ab" * 32
        assert alert.clip_deleted_reason.startswith("retention: the clips storage was below its free-space headroom")

    assert retention_apply().headroom_alerts == 0  # the headroom holds: nothing more goes


def test_it_sweeps_orphan_spools_thumbnails_and_snapshots_but_keeps_fresh_and_referenced_ones(
        camera: Camera, clip_settings: Path) -> None:
    failed = make_alert(camera, clip_status=ClipStatus.FAILED)
    failed.spool_name = _store(f"spool/{failed.pk}.ts", b"\x47" * 188 * 10)  # kept for inspection
    failed.thumbnail.name = _store(f"thumbnails/{camera.pk}/2024/06/01/{failed.pk}.jpg", b"\xff\xd8 kept")
    failed.save()
    orphan_spool = _store("spool/999.ts", b"\x47" * 188 * 20)
    fresh_spool = _store("spool/1000.ts", b"\x47" * 188)  # being written: its row comes next
    orphan_thumb = _store(f"thumbnails/{camera.pk}/2024/06/01/999.jpg", b"\xff\xd8 orphan")
    snapshot = _store(f"snapshots/{camera.pk}.jpg", b"\xff\xd8 live")
    gone_snapshot = _store("snapshots/99999.jpg", b"\xff\xd8 camera removed")
    for name in (failed.spool_name, failed.thumbnail.name, orphan_spool, orphan_thumb, snapshot, gone_snapshot):
        _age(clip_settings, name, hours=2)

    report = retention_apply()

    assert not _exists(orphan_spool) and not _exists(orphan_thumb) and not _exists(gone_snapshot)
    assert _exists(fresh_spool) and _exists(failed.spool_name) and _exists(failed.thumbnail.name) and _exists(snapshot)
    assert report.orphan_files == 3 and report.orphan_bytes == 188 * 20 + len(b"\xff\xd8 orphan") + len(
        b"\xff\xd8 camera removed")
    assert (clip_settings / "spool").is_dir()


def test_it_deletes_an_expired_failed_alerts_spool(camera: Camera, clip_settings: Path) -> None:
    failed = make_alert(camera, at=timezone.now() - timedelta(days=40), clip_status=ClipStatus.FAILED)
    failed.spool_name = _store(f"spool/{failed.pk}.ts", b"\x47" * 188)
    failed.save()

    report = retention_apply()

    assert not _exists(failed.spool_name) and report.expired_alerts == 1
    failed.refresh_from_db()
    assert failed.spool_name == "" and failed.clip_deleted_at is None  # it never had a clip to delete


def test_it_deletes_nothing_in_a_dry_run(camera: Camera, test_clip: SampleClip, clip_settings: Path) -> None:
    alert = _old_alert(camera, test_clip, days=40)
    orphan = _store("spool/999.ts", b"\x47" * 188)
    _age(clip_settings, orphan, hours=2)

    report = retention_apply(dry_run=True)

    assert report.expired_alerts == 1 and report.orphan_files == 1
    assert {f.name for f in report.files} == {alert.clip.name, alert.thumbnail.name, orphan}
    assert _exists(alert.clip.name) and _exists(alert.thumbnail.name) and _exists(orphan)
    alert.refresh_from_db()
    assert alert.clip_deleted_at is None and alert.clip.name


def test_the_command_prints_its_report(camera: Camera, test_clip: SampleClip) -> None:
    alert = _old_alert(camera, test_clip, days=40)

    out = StringIO()
    call_command("apply_retention", "--dry-run", stdout=out)
    assert f"would delete {alert.clip.name} ({len(test_clip.data)} bytes, alert #{alert.pk}, age)" in out.getvalue()
    assert "retention would free" in out.getvalue() and "1 alert(s) past their site's days" in out.getvalue()
    assert _exists(alert.clip.name)

    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert f"deleted {alert.clip.name}" in out.getvalue() and "retention freed" in out.getvalue()
    assert not _exists(alert.clip.name)


def test_a_storage_error_on_one_file_does_not_stop_the_rest(
        camera: Camera, test_clip: SampleClip, clip_settings: Path) -> None:
    stuck = _old_alert(camera, test_clip, days=41)
    other = _old_alert(camera, test_clip, days=40)
    # A non-empty folder where the clip file was: the storage's delete fails with a real OSError.
    path = clip_settings / stuck.clip.name
    path.unlink()
    path.mkdir()
    (path / "inside").write_bytes(b"x")

    with pytest.raises(CommandError, match="1 file"):
        call_command("apply_retention", stdout=StringIO())

    assert not _exists(other.clip.name) and not _exists(stuck.thumbnail.name)
    stuck.refresh_from_db()
    assert stuck.clip.name and stuck.clip_deleted_at is None and stuck.thumbnail.name == ""
    other.refresh_from_db()
    assert other.clip_deleted_at is not None

    shutil.rmtree(path)  # fixed: the next run finishes the job
    report = retention_apply()
    stuck.refresh_from_db()
    assert report.errors == 0 and stuck.clip.name == "" and stuck.clip_deleted_at is not None


def test_the_detail_page_says_the_clip_was_deleted_and_keeps_its_hash(
        camera: Camera, test_clip: SampleClip, client: Client) -> None:
    alert = _old_alert(camera, test_clip, days=40)
    retention_apply()
    client.force_login(make_user(site=camera.site, role=Role.VIEWER))

    page = client.get(f"/alerts/{alert.pk}/").content.decode()

    assert "Clip deleted by retention on" in page and test_clip.sha256 in page
    assert "retention: older than 31 days" in page and "<video" not in page


def test_a_manager_sets_a_legal_hold_in_the_admin(camera: Camera, test_clip: SampleClip, client: Client) -> None:
    alert = _old_alert(camera, test_clip, days=40)
    client.force_login(make_user(site=camera.site, role=Role.MANAGER))
    page = client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert 'name="legal_hold"' in page and 'name="clip_deleted_at"' not in page

    response = client.post(f"/admin/alerts/alert/{alert.pk}/change/", {
        "review_status": ReviewStatus.UNREVIEWED, "review_note": "", "legal_hold": "on",
        "event_clip-TOTAL_FORMS": "0", "event_clip-INITIAL_FORMS": "0",
    })

    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.legal_hold
    retention_apply()
    assert _exists(alert.clip.name)


def test_the_beat_runs_the_task_every_interval(camera: Camera, test_clip: SampleClip) -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["apply-retention"]
    assert entry == {"task": apply_retention.name, "schedule": django_settings.CLIP_RETENTION_INTERVAL_SECONDS}
    alert = _old_alert(camera, test_clip, days=40)

    assert "1 alert(s) past their site's days" in apply_retention()
    assert not _exists(alert.clip.name)


@pytest.fixture
def s3_clips(settings: Settings) -> Iterator[None]:
    """A bucket on moto's S3 server (a real S3-compatible HTTP server in this process) as the clips storage."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    server.start()
    try:
        endpoint, name = f"http://127.0.0.1:{port}", f"clips-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k",
                     aws_secret_access_key="s").create_bucket(Bucket=name)
        settings.STORAGES = {**settings.STORAGES, "clips": clips_s3_storage(
            bucket=name, endpoint_url=endpoint, region="us-east-1", access_key="k", secret_key="s", prefix="shoplift")}
        yield
    finally:
        server.stop()
        werkzeug.setLevel(level)


def test_on_s3_it_deletes_by_age_and_sweeps_but_skips_the_headroom(s3_clips: None, test_clip: SampleClip) -> None:
    camera = make_camera(make_site())
    alert = _old_alert(camera, test_clip, days=40)
    kept = _old_alert(camera, test_clip, days=1)
    orphan = _store("spool/999.ts", b"\x47" * 188)

    first = retention_apply()

    assert not _exists(alert.clip.name) and not _exists(alert.thumbnail.name) and _exists(kept.clip.name)
    assert first.expired_alerts == 1 and first.errors == 0
    assert first.headroom.startswith("skipped: the clips storage (S3Storage)")
    assert _exists(orphan) and first.orphan_files == 0  # not an hour old yet

    later = retention_apply(now=timezone.now() + timedelta(hours=2))
    assert not _exists(orphan) and later.orphan_files == 1 and later.expired_alerts == 0


def test_only_a_superuser_sets_how_long_a_sites_evidence_is_kept(db) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    from cameras.models import Role
    from tests.support.factories import PASSWORD, make_site, make_user

    site = make_site("Main St")
    make_user("manager", site=site, role=Role.MANAGER)
    client = Client()
    assert client.login(username="manager", password=PASSWORD)
    page = client.get(f"/admin/cameras/site/{site.pk}/change/").content.decode()
    assert 'name="retention_days"' not in page and 'name="time_zone"' in page
