"""The person pipeline end to end: a real person (the demo shopper's photograph) walking from the
shelf to the exit, streamed as H.264 by a real RTSP server, run_detectors with the default
`person` detector, a real Celery worker on a real Redis, and the test database."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from alerts.clip_build import clip_verify, file_sha256
from alerts.models import Alert, ClipStatus
from cameras.demo import scene
from tests.support.factories import make_camera, make_site, make_zone
from tests.support.processes import ROOT, start_worker, subprocess_env
from tests.support.rtsp import file_mount, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rtsp, pytest.mark.slow]


def test_it_raises_exit_without_checkout_for_a_real_person_with_a_ready_clip_and_the_track(
        demo_visit, rtsp_servers, clip_settings, redis_server, tmp_path):
    server = rtsp_servers([file_mount("/store", demo_visit)])
    camera = make_camera(make_site("Demo store"), "Floor", stream_url=server.url("/store"))  # detector: default
    for name, kind, polygon in scene.ZONES:
        make_zone(camera, name, kind=kind, polygon=polygon)
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(clip_settings))
    try:
        run = subprocess.run(
            [sys.executable, "manage.py", "run_detectors", "--duration", "24"], cwd=ROOT, capture_output=True,
            timeout=90, env=subprocess_env(CLIP_STORAGE_DIR=str(clip_settings), SHOPLIFT_PROCESS="detectors",
                                           EVENT_QUIET_SECONDS="2"),
        )
        log = (run.stdout + run.stderr).decode(errors="replace")
        assert run.returncode == 0, log
        alerts = list(Alert.objects.all())
        assert [(a.event_type, a.zone_name) for a in alerts] == [("exit_without_checkout", "Exit")], log
        [alert] = alerts
        wait_until(lambda: Alert.objects.get(pk=alert.pk).clip_status == ClipStatus.READY, 60,
                   message=f"clip ready\n{log}\n{worker.log()}")
    finally:
        worker.stop()
    alert.refresh_from_db()
    stored = clip_settings / alert.clip.name
    assert file_sha256(stored) == alert.clip_sha256
    frames, duration = clip_verify(stored)
    assert duration >= 5.5 and frames >= 25 * 5
    assert alert.thumbnail.name

    # The evidence: the shopper's track over the clip, boxes where the photograph was.
    track = alert.track
    assert track is not None and len(track["points"]) >= 10
    times = [p["t"] for p in track["points"]]
    assert times == sorted(times)
    # Over the event's whole window: from the clip's start to the post-roll after its last high sample.
    assert alert.clip_start.timestamp() - 0.01 <= times[0] and times[-1] <= alert.event_end.timestamp() + 2.01
    last = track["points"][-1]["box"]
    feet_x = (last[0] + last[2]) / 2
    assert feet_x > 0.75 and abs(last[3] - scene.FOOT_Y) < 0.06  # standing in the exit zone
    assert alert.event_start - alert.clip_start >= timedelta(seconds=1.5)
