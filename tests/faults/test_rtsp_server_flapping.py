"""A DVR that drops every few seconds for a minute (GStreamer's RTSP server SIGKILLed and started
again on the same port, at random moments of the capture's connect and read): run_detectors keeps
reconnecting, and its threads and open file descriptors end where they started."""
from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import pytest
from django.utils import timezone

from alerts.models import Alert
from cameras.models import Camera
from tests.faults.conftest import DetectorProcess, local_files, shelf_camera
from tests.support.rtsp import live_mount, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.rtsp]

FLAP_SECONDS = 60.0
THREAD_SLACK, FD_SLACK = 2, 4


def connects(run: DetectorProcess) -> int:
    return run.log().count("camera 'Aisle 3': connected (")


def steady(run: DetectorProcess, seconds: float = 3.0) -> tuple[float, float]:
    """Median thread and descriptor counts over a few seconds."""
    threads, fds = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        threads.append(run.threads())
        fds.append(run.fds())
        time.sleep(0.2)
    return statistics.median(threads), statistics.median(fds)


def test_it_keeps_reconnecting_to_a_flapping_dvr_without_growing_threads_or_descriptors(
    rtsp_servers, clip_settings: Path, detectors
):
    # A still picture (SMPTE bars): the camera is watched but raises nothing, so only capture is measured.
    server = rtsp_servers([live_mount("/live", pattern="smpte")])
    camera = shelf_camera(server.url("/live"))
    run = detectors(CLIP_STORAGE_DIR=str(clip_settings))
    wait_until(lambda: Camera.objects.get(pk=camera.pk).online and connects(run) == 1, 30,
               message=f"camera online\n{run.log()[-3000:]}")
    time.sleep(2.0)  # the snapshot and first status writes are done
    threads_before, fds_before = steady(run)

    rng = random.Random(7)
    drops = 0
    started = time.monotonic()
    while time.monotonic() - started < FLAP_SECONDS:
        time.sleep(rng.uniform(1.0, 4.0))  # up: the capture may be opening, reading or backing off
        server.kill()
        drops += 1
        assert run.alive, f"run_detectors exited with {run.process.returncode}\n{run.log()[-6000:]}"
        time.sleep(rng.uniform(0.2, 1.5))  # down
        server.start()

    # Back for good: it reconnects, frames flow, and the process is the size it was.
    since = timezone.now()
    wait_until(lambda: (row := Camera.objects.get(pk=camera.pk)).online and row.last_frame_at and row.last_frame_at > since,
               30, message=f"frames again after the flapping\n{run.log()[-4000:]}")
    time.sleep(2.0)
    threads_after, fds_after = steady(run)
    code = run.stop()
    log = run.log()
    print(f"{drops} drops, {connects(run) - 1} reconnects; threads {threads_before:g} -> {threads_after:g}, "
          f"open fds {fds_before:g} -> {fds_after:g}")

    assert code == 0, log[-4000:]
    assert "Traceback" not in log and "unexpected error" not in log, log[-6000:]
    # The reconnects continued through the minute: most drops were followed by a connection.
    assert connects(run) - 1 >= drops // 2 >= 5, (connects(run), drops)
    assert threads_after <= threads_before + THREAD_SLACK, (threads_before, threads_after, drops)
    assert fds_after <= fds_before + FD_SLACK, (fds_before, fds_after, drops)
    assert Alert.objects.count() == 0
    assert {name.split("/", 1)[0] for name in local_files(clip_settings)} <= {"snapshots"}, local_files(clip_settings)
