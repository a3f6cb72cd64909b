"""Clip construction and the clip job's state machine, in-process (the worker tests run it for real)."""
from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import av
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from alerts.clip_build import ClipError, clip_build, file_sha256, moov_before_mdat
from alerts.clip_jobs import clip_job_claim, clip_job_retry, clip_job_run, clip_jobs_sweep, clip_storage_name
from alerts.models import Alert, ClipStatus
from cameras.models import Camera
from tests.support.factories import make_alert, make_camera, make_site
from tests.support.rtsp import MEDIA_DIR, make_video


def make_hevc(seconds: int = 7, size: str = "320x240") -> Path:
    path = MEDIA_DIR / f"hevc-{size}-{seconds}s.mkv"
    if not path.exists():
        MEDIA_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={size}:rate=25", "-t", str(seconds), "-c:v", "libx265", "-g", "50",
                        "-x265-params", "log-level=error", str(path)], check=True, timeout=120)
    return path


def test_it_remuxes_h264_without_re_encoding(tmp_path):
    spool = make_video(width=320, height=240, seconds=8, gop=50, container="ts")
    built = clip_build(spool=spool, out=tmp_path / "c.mp4", expected_seconds=6, max_extra_seconds=10)
    assert not built.transcoded and built.source_codec == "h264"
    assert moov_before_mdat(built.path)
    assert built.frames == 200
    assert built.duration == pytest.approx(8.0, abs=0.05)
    assert built.sha256 == file_sha256(built.path)
    # Remuxed, not re-encoded: lossy re-encoding could not give back identical pixels.
    assert decoded_frames(built.path, 30) == decoded_frames(spool, 30)


def decoded_frames(path: Path, count: int) -> list[bytes]:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="gray").tobytes())
            if len(frames) == count:
                break
        return frames


def test_it_transcodes_h265_to_playable_h264(tmp_path):
    built = clip_build(spool=make_hevc(), out=tmp_path / "c.mp4", expected_seconds=7)
    assert built.transcoded and built.source_codec == "hevc"
    with av.open(str(built.path)) as out:
        stream = out.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"  # what browsers decode
        assert sum(1 for _ in out.decode(stream)) == 175
    assert moov_before_mdat(built.path)


def test_it_refuses_a_spool_that_is_not_video(tmp_path):
    junk = tmp_path / "spool.ts"
    junk.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(ClipError, match="cannot be opened as video|no video"):
        clip_build(spool=junk, out=tmp_path / "c.mp4")


def test_it_refuses_a_clip_shorter_than_its_window(tmp_path):
    spool = make_video(width=320, height=240, seconds=8, gop=50, container="ts")
    with pytest.raises(ClipError, match="does not cover the event"):
        clip_build(spool=spool, out=tmp_path / "c.mp4", expected_seconds=20)


# --- The job -------------------------------------------------------------------------------------

@pytest.fixture
def clip_dir(clip_settings: Path) -> Path:
    return clip_settings


def queued_alert(spool_bytes: bytes, camera: Camera | None = None, **fields) -> Alert:
    at = timezone.now() - timedelta(seconds=10)
    camera = camera or make_camera(make_site("Main St"), "Aisle 3")
    alert = make_alert(camera, at=at, clip_status=ClipStatus.QUEUED,
                       clip_start=at - timedelta(seconds=2), clip_end=at + timedelta(seconds=4), **fields)
    alert.spool_name = clips_storage_save(f"spool/{alert.pk}.ts", spool_bytes)
    alert.save(update_fields=["spool_name"])
    return alert


def clips_storage_save(name: str, data: bytes) -> str:
    return storages["clips"].save(name, ContentFile(data))


@pytest.mark.django_db
def test_it_builds_stores_and_hashes_a_queued_clip(clip_dir, django_capture_on_commit_callbacks):
    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        outcome = clip_job_run(alert_id=alert.pk, task_id="t1")
    assert outcome.status == "ready", outcome
    alert.refresh_from_db()
    assert alert.clip_status == ClipStatus.READY and alert.clip_error == ""
    assert alert.clip.name == clip_storage_name(alert)
    assert alert.clip.name.startswith(f"clips/main-st/aisle-3/{alert.event_start:%Y/%m/%d}/")
    stored = clip_dir / alert.clip.name
    assert file_sha256(stored) == alert.clip_sha256
    assert alert.clip_size == stored.stat().st_size
    assert alert.clip_duration == pytest.approx(8.0, abs=0.05)
    assert not (clip_dir / alert.spool_name).exists()  # the spool goes once the clip is safe


@pytest.mark.django_db
def test_it_does_nothing_on_a_second_delivery(clip_dir):
    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    assert clip_job_claim(alert_id=alert.pk, task_id="t1")
    assert not clip_job_claim(alert_id=alert.pk, task_id="t2")
    assert clip_job_run(alert_id=alert.pk, task_id="t2").status == "busy"
    Alert.objects.filter(pk=alert.pk).update(clip_status=ClipStatus.READY)
    assert clip_job_run(alert_id=alert.pk, task_id="t3").status == "skipped"


@pytest.mark.django_db
def test_it_marks_a_corrupt_spool_failed_with_the_reason_and_keeps_it(clip_dir):
    alert = queued_alert(b"\x47" + b"\x00" * 5000)
    outcome = clip_job_run(alert_id=alert.pk, task_id="t1")
    assert outcome.status == "failed" and outcome.retry_in is None
    alert.refresh_from_db()
    assert alert.clip_status == ClipStatus.FAILED
    assert alert.clip_error.startswith("Corrupt spool:")
    assert (clip_dir / alert.spool_name).exists()


@pytest.mark.django_db
def test_it_fails_with_a_retry_when_storage_fails_and_succeeds_on_the_retry(clip_dir, settings):
    settings.CLIP_RETRY_BACKOFF_SECONDS = 4
    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    (clip_dir / "clips").write_text("a file where the clips folder should be")  # makes every save fail
    outcome = clip_job_run(alert_id=alert.pk, task_id="t1")
    assert outcome.status == "retry" and outcome.retry_in == 4
    alert.refresh_from_db()
    assert alert.clip_status == ClipStatus.FAILED
    assert "Cannot store the clip" in alert.clip_error
    assert (clip_dir / alert.spool_name).exists()
    (clip_dir / "clips").unlink()
    assert clip_job_run(alert_id=alert.pk, task_id="t1").status == "ready"  # the scheduled retry: same task id


@pytest.mark.django_db
def test_it_gives_up_after_the_attempt_limit_until_an_operator_retries(clip_dir, settings):
    settings.CLIP_BUILD_MAX_ATTEMPTS = 2
    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    (clip_dir / "clips").write_text("x")
    assert clip_job_run(alert_id=alert.pk, task_id="t1").status == "retry"
    last = clip_job_run(alert_id=alert.pk, task_id="t1")
    assert last.status == "failed" and "gave up after 2 attempts" in last.detail
    (clip_dir / "clips").unlink()
    assert clip_job_retry(alert_id=alert.pk)
    assert clip_job_run(alert_id=alert.pk, task_id="t9").status == "ready"


@pytest.mark.django_db
def test_the_sweeper_requeues_stuck_jobs_only(clip_dir):
    camera = make_camera(make_site())
    old = timezone.now() - timedelta(hours=1)
    stuck_queued = make_alert(camera, clip_status=ClipStatus.QUEUED)
    stuck_building = make_alert(camera, clip_status=ClipStatus.BUILDING, clip_task_id="dead")
    fresh = make_alert(camera, clip_status=ClipStatus.QUEUED)
    ready = make_alert(camera, clip_status=ClipStatus.READY)
    Alert.objects.filter(pk__in=[stuck_queued.pk, stuck_building.pk, ready.pk]).update(clip_status_changed_at=old)
    assert clip_jobs_sweep() == 2
    statuses = dict(Alert.objects.values_list("pk", "clip_status"))
    assert statuses[stuck_building.pk] == ClipStatus.QUEUED
    assert statuses[ready.pk] == ClipStatus.READY
    assert statuses[fresh.pk] == ClipStatus.QUEUED
    assert Alert.objects.get(pk=stuck_building.pk).clip_task_id == ""


@pytest.mark.django_db
def test_interrupted_builds_count_and_the_sweeper_stops_at_the_bound(clip_dir, settings):
    """A build killed by a time limit, OOM or a dead worker leaves the alert 'building'; its
    attempt still counts, and past the bound the sweeper fails it with the reason instead of
    re-queuing it forever."""
    settings.CLIP_BUILD_MAX_ATTEMPTS = 3
    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    old = timezone.now() - timedelta(hours=1)
    for n in range(3):
        assert clip_job_claim(alert_id=alert.pk, task_id=f"killed-{n}")  # ...and the worker dies mid-build
        Alert.objects.filter(pk=alert.pk).update(clip_status_changed_at=old)
        clip_jobs_sweep()
    alert.refresh_from_db()
    assert alert.clip_attempts == 3
    assert alert.clip_status == ClipStatus.FAILED
    assert "started 3 times without finishing" in alert.clip_error
    assert (clip_dir / alert.spool_name).exists()  # kept for the operator's retry
    assert clip_jobs_sweep() == 0
    assert clip_job_run(alert_id=alert.pk, task_id="late-delivery").status == "skipped"
    assert clip_job_retry(alert_id=alert.pk)
    assert clip_job_run(alert_id=alert.pk, task_id="operator").status == "ready"


@pytest.mark.django_db
def test_a_build_that_lost_its_claim_never_deletes_the_winners_clip(clip_dir, monkeypatch, django_capture_on_commit_callbacks):
    import alerts.clip_jobs as jobs

    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    real_build = jobs._build
    overtaken = []

    def slow_build(alert_row, tmp):  # type: ignore[no-untyped-def]
        built = real_build(alert_row, tmp)
        if alert_row.clip_task_id == "slow" and not overtaken:
            # While the slow build runs, its lease expires and another delivery builds the clip.
            overtaken.append(True)
            Alert.objects.filter(pk=alert_row.pk).update(clip_status_changed_at=timezone.now() - timedelta(hours=1))
            assert jobs.clip_job_run(alert_id=alert_row.pk, task_id="fast").status == "ready"
        return built

    monkeypatch.setattr(jobs, "_build", slow_build)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.clip_job_run(alert_id=alert.pk, task_id="slow").status == "skipped"
    alert.refresh_from_db()
    assert alert.clip_status == ClipStatus.READY and alert.clip_task_id == "fast"
    stored = clip_dir / alert.clip.name
    assert stored.exists() and file_sha256(stored) == alert.clip_sha256
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # the loser removed its own file only


@pytest.mark.django_db
def test_the_winning_build_removes_what_a_killed_attempt_left_beside_its_clip(clip_dir,
                                                                              django_capture_on_commit_callbacks):
    alert = queued_alert(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    name = clip_storage_name(alert)
    # An attempt SIGKILLed after storing and before committing: it took the clean name, unreferenced.
    left = clips_storage_save(name, b"partial mp4 of a killed attempt")
    other = clips_storage_save(name.replace(f"/{alert.pk}.mp4", f"/{alert.pk}1.mp4"), b"another alert's clip")

    with django_capture_on_commit_callbacks(execute=True):
        assert clip_job_run(alert_id=alert.pk, task_id="t2").status == "ready"

    alert.refresh_from_db()
    assert alert.clip.name != left and (clip_dir / alert.clip.name).exists()
    assert file_sha256(clip_dir / alert.clip.name) == alert.clip_sha256
    assert sorted(p.name for p in (clip_dir / alert.clip.name).parent.iterdir()) == sorted(
        [alert.clip.name.rsplit("/", 1)[1], other.rsplit("/", 1)[1]])
