"""The whole pipeline end to end: a real RTSP server, run_detectors, a real Celery worker on a real
Redis, and the test database (PostgreSQL in CI). Plus the supervisor's stop, reload and isolation."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import cv2
import pytest

from alerts.clip_build import clip_verify, file_sha256
from alerts.emitter import alerts_sweep
from alerts.models import Alert, ClipStatus
from cameras.models import Camera
from detection.supervisor import Selection, Supervisor
from tests.support.clips import clip_settings  # noqa: F401
from tests.support.factories import make_alert, make_camera, make_site, make_zone
from tests.support.processes import ROOT, redis_server, start_worker, subprocess_env  # noqa: F401
from tests.support.rtsp import MEDIA_DIR, file_mount, free_port, live_mount, require_gstreamer, rtsp_servers, wait_until  # noqa: F401
from tests.support.video import Box, write_video

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rtsp, pytest.mark.slow]

SHELF = [[0.6, 0.3], [0.95, 0.3], [0.95, 0.9], [0.6, 0.9]]
EVENT_AT = 8.0  # seconds into the scene when someone steps up to the shelf, for one second
FAST_RULES = {"EVENT_QUIET_SECONDS": "2", "DETECTOR_RELOAD_SECONDS": "2"}


@pytest.fixture(scope="session")
def scene() -> Path:
    """30 s of a still shop floor; a red box stands in the shelf zone from EVENT_AT for 1 s."""
    require_gstreamer()
    path = MEDIA_DIR / "scene-shelf-visit-30s.mp4"
    if not path.exists():
        MEDIA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        write_video(tmp, seconds=30, boxes=[Box(EVENT_AT, EVENT_AT + 1, x=0.7, y=0.45, w=0.15, h=0.35)])
        tmp.replace(path)
    return path


@pytest.fixture
def store(scene, rtsp_servers, clip_settings):  # noqa: F811
    server = rtsp_servers([file_mount("/scene", scene)])
    camera = make_camera(make_site("Main St"), "Aisle 3", stream_url=server.url("/scene"), detector="motion")
    make_zone(camera, "Shelf", polygon=SHELF)
    return camera


def detectors(*args: str, clip_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_detectors", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=subprocess_env(CLIP_STORAGE_DIR=str(clip_dir), SHOPLIFT_PROCESS="detectors", **FAST_RULES, **env),
    )


def output(process: subprocess.Popen[bytes]) -> str:
    return process.stdout.read().decode(errors="replace") if process.stdout else ""


def test_it_turns_a_visit_to_the_shelf_into_a_ready_clip(store, clip_settings, redis_server, tmp_path):  # noqa: F811
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(clip_settings))
    try:
        run = detectors("--duration", "20", clip_dir=clip_settings)
        assert run.wait(60) == 0, output(run)
        log = output(run)
        [alert] = Alert.objects.all()
        wait_until(lambda: Alert.objects.get(pk=alert.pk).clip_status == ClipStatus.READY, 60,
                   message=f"clip ready\n{log}\n{worker.log()}")
    finally:
        worker.stop()
    alert.refresh_from_db()
    assert (alert.zone_name, alert.event_type) == ("Shelf", "zone_activity")
    assert alert.thumbnail.name
    snapshot = clip_settings / "snapshots" / f"{store.pk}.jpg"  # the zone editor's picture of the camera
    picture = cv2.imread(str(snapshot))
    assert picture.shape[:2] == (240, 320) and picture.std() > 10  # a keyframe at the camera's own resolution
    stored = clip_settings / alert.clip.name
    assert file_sha256(stored) == alert.clip_sha256
    frames, duration = clip_verify(stored)  # opens, decodes every frame, faststart
    # 2 s before + 2 s during + 2 s after, and up to one keyframe interval (1 s here) earlier.
    assert 6.0 - 0.3 <= duration <= 7.0 + 0.3, duration
    assert frames >= 25 * 5.5
    assert alert.clip_start <= alert.event_start - timedelta(seconds=1.9)
    assert alert.clip_start >= alert.event_start - timedelta(seconds=3.1)
    assert alert.clip_end >= alert.event_start + timedelta(seconds=3.9)


def test_sigterm_stops_within_5_s_and_spools_the_recording_clip_first(store, clip_settings):
    run = detectors(clip_dir=clip_settings)
    try:
        wait_until(lambda: Alert.objects.exists(), 40, message="alert raised")
        time.sleep(0.5)  # inside the post-roll: the clip is still recording
        assert Alert.objects.get().clip_status == ClipStatus.RECORDING
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
        stopped_after = time.monotonic() - sent
    finally:
        if run.poll() is None:
            run.kill()
    assert code == 0, output(run)
    assert stopped_after < 5.0, f"stopped after {stopped_after:.1f} s\n{output(run)}"
    alert = Alert.objects.get()
    assert alert.clip_status == ClipStatus.QUEUED, alert.clip_error
    assert (clip_settings / alert.spool_name).exists()


def test_a_killed_detector_leaves_no_alert_recording_forever(store, clip_settings, settings):
    run = detectors(clip_dir=clip_settings)
    try:
        wait_until(lambda: Alert.objects.exists(), 40, message="alert raised")
        run.kill()  # SIGKILL inside the post-roll: no chance to spool
        run.wait(10)
    finally:
        if run.poll() is None:
            run.kill()
    alert = Alert.objects.get()
    assert alert.clip_status == ClipStatus.RECORDING
    later = alert.clip_status_changed_at + timedelta(seconds=settings.CLIP_MAX_SECONDS + 121)
    newer = make_alert(store, at=later, clip_status=ClipStatus.RECORDING, clip_status_changed_at=later - timedelta(seconds=5))
    assert alerts_sweep(now=later) == 1
    alert.refresh_from_db()
    assert alert.clip_status == ClipStatus.FAILED
    assert alert.clip_error == "No clip: the detector process stopped before the clip was recorded."
    assert Alert.objects.get(pk=newer.pk).clip_status == ClipStatus.RECORDING  # may still be recording somewhere


def test_two_supervisors_on_the_same_camera_raise_one_alert(store, clip_settings):
    # Two machines configured to watch the same camera: the dedup claim in the database decides.
    runs = [detectors("--camera", store.name, "--duration", "16", clip_dir=clip_settings) for _ in range(2)]
    for run in runs:
        assert run.wait(60) == 0, output(run)
    [alert] = Alert.objects.all()
    assert alert.suppressed_count == 1


def test_processes_split_the_cameras_and_each_raises_its_own_alert(store, rtsp_servers, scene, clip_settings):  # noqa: F811
    # Two cameras over two processes (what --shard I/N does across machines): each camera is
    # captured by exactly one of them, and each raises its alert once.
    server = rtsp_servers([file_mount("/scene", scene)])
    other = make_camera(store.site, "Aisle 4", stream_url=server.url("/scene"), detector="motion")
    make_zone(other, "Shelf", polygon=SHELF)
    run = detectors("--processes", "2", "--duration", "16", clip_dir=clip_settings)
    assert run.wait(60) == 0, output(run)
    log = output(run)
    assert sorted(Alert.objects.values_list("camera__name", "suppressed_count")) == [("Aisle 3", 0), ("Aisle 4", 0)], log
    for shard in ("0/2", "1/2"):
        assert f"cameras loaded count=1 detectors=motion shard={shard}" in log, log
    assert log.count("capture started camera=Aisle 3") == 1 and log.count("capture started camera=Aisle 4") == 1, log


def test_it_isolates_a_broken_camera_and_picks_up_changes_without_a_restart(store, rtsp_servers, clip_settings, settings):  # noqa: F811
    settings.EVENT_QUIET_SECONDS = 2
    broken = make_camera(store.site, "Back door", stream_url=f"rtsp://127.0.0.1:{free_port()}/nothing", detector="motion")
    stop = threading.Event()
    supervisor = Supervisor(Selection(), stop=stop, sweep=False, reload_seconds=1)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        # The good camera records its alert while the broken one retries on its own.
        wait_until(lambda: Alert.objects.filter(camera=store, clip_status=ClipStatus.QUEUED).exists(), 40,
                   message="alert of the good camera spooled")
        broken.refresh_from_db()
        assert not broken.online and "refused" in broken.last_error.lower()
        assert Camera.objects.get(pk=store.pk).online

        extra_server = rtsp_servers([live_mount("/live")])
        added = make_camera(store.site, "Till", stream_url=extra_server.url("/live"), detector="motion")
        wait_until(lambda: added.pk in supervisor.streams, 30, message="new camera started")
        wait_until(lambda: supervisor.streams[added.pk].stream.counters().frames_sampled > 0, 30,
                   message="frames from the new camera")
        zone = make_zone(added, "Counter", threshold=0.8)
        wait_until(lambda: zone.pk in {z.id for z in supervisor.rules[added.pk].zones}, 30, message="new zone")
        Camera.objects.filter(pk=broken.pk).update(enabled=False)
        wait_until(lambda: broken.pk not in supervisor.streams, 30, message="disabled camera stopped")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
