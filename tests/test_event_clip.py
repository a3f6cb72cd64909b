"""The whole-event clip: built by the same job as the first clip, stored beside it, never replacing
it, and served through the same permission checks and access log."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from alerts.clip_build import file_sha256
from alerts.clip_jobs import clip_job_run, clip_jobs_sweep, clip_storage_name
from alerts.models import AccessAction, Alert, ClipAccess, ClipPart, ClipStatus, EventClip, clip_storage
from tests.support.clips import World
from tests.support.rtsp import make_video

pytestmark = pytest.mark.django_db


def queued_event_clip(alert: Alert, seconds: int = 12) -> EventClip:
    spool = make_video(width=320, height=240, seconds=seconds, gop=50, container="ts").read_bytes()
    name = clip_storage().save(f"spool/{alert.pk}-event.ts", ContentFile(spool))
    return EventClip.objects.create(alert=alert, spool_name=name, clip_status=ClipStatus.QUEUED,
                                    clip_start=alert.clip_start, clip_end=alert.clip_start + timedelta(seconds=seconds))


def _client(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


def test_it_builds_the_whole_event_clip_beside_the_first_one(world: World, clip_settings: Path,
                                                             django_capture_on_commit_callbacks) -> None:
    alert = world.alert_a
    first = (alert.clip.name, alert.clip_sha256)
    queued_event_clip(alert)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = clip_job_run(alert_id=alert.pk, task_id="t1", part=ClipPart.EVENT)

    assert outcome.status == "ready", outcome
    whole = EventClip.objects.get(alert=alert)
    assert whole.clip_status == ClipStatus.READY
    assert whole.clip.name == clip_storage_name(alert, ClipPart.EVENT) and whole.clip.name.endswith(f"/{alert.pk}-event.mp4")
    assert file_sha256(clip_settings / whole.clip.name) == whole.clip_sha256
    assert whole.clip_duration == pytest.approx(12.0, abs=0.05)
    assert not (clip_settings / whole.spool_name).exists()
    alert.refresh_from_db()
    assert (alert.clip.name, alert.clip_sha256) == first  # the first clip is never replaced


def test_it_serves_the_whole_event_clip_to_viewers_and_downloads_it_for_reviewers_with_the_access_logged(
        world: World, django_capture_on_commit_callbacks) -> None:
    alert = world.alert_a
    queued_event_clip(alert)
    with django_capture_on_commit_callbacks(execute=True):
        clip_job_run(alert_id=alert.pk, task_id="t1", part=ClipPart.EVENT)
    whole = EventClip.objects.get(alert=alert)

    viewer = _client(world, "viewer")
    page = viewer.get(f"/alerts/{alert.pk}/").content.decode()
    assert "Whole event" in page and f'src="/alerts/{alert.pk}/clip/event/"' in page and whole.clip_sha256 in page
    played = viewer.get(f"/alerts/{alert.pk}/clip/event/", HTTP_RANGE="bytes=0-99")
    assert played.status_code == 206 and b"".join(played.streaming_content) == (
        clip_storage().open(whole.clip.name).read()[:100])
    assert viewer.get(f"/alerts/{alert.pk}/download/event/").status_code == 403

    download = _client(world, "reviewer").get(f"/alerts/{alert.pk}/download/event/")
    assert download.status_code == 200 and f'_{alert.pk}-event.mp4"' in download["Content-Disposition"]
    assert list(ClipAccess.objects.order_by("id").values_list("username", "action", "part")) == [
        ("viewer", AccessAction.VIEW, ClipPart.EVENT), ("reviewer", AccessAction.DOWNLOAD, ClipPart.EVENT)]
    assert _client(world, "other_site").get(f"/alerts/{alert.pk}/clip/event/").status_code == 404


def test_an_alert_without_a_whole_event_clip_answers_404_and_shows_none(world: World) -> None:
    viewer = _client(world, "viewer")
    assert viewer.get(f"/alerts/{world.alert_a.pk}/clip/event/").status_code == 404
    assert "Whole event" not in viewer.get(f"/alerts/{world.alert_a.pk}/").content.decode()


def test_the_sweeper_sends_a_lost_whole_event_job_again(world: World, django_capture_on_commit_callbacks,
                                                        settings) -> None:
    whole = queued_event_clip(world.alert_a)
    stale = whole.clip_status_changed_at - timedelta(seconds=settings.CLIP_QUEUE_STALE_SECONDS + 1)
    EventClip.objects.filter(pk=whole.pk).update(clip_status_changed_at=stale)

    with django_capture_on_commit_callbacks() as callbacks:
        assert clip_jobs_sweep() == 1
    assert len(callbacks) == 1
    assert EventClip.objects.get(pk=whole.pk).clip_status == ClipStatus.QUEUED
