"""A Celery worker's pool process SIGKILLed in the middle of a clip build, at the worst moment: the
clip file is already being written to the clips storage, the alert is not yet marked ready."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.db import transaction

from alerts.clip_jobs import clip_job_enqueue, clip_storage_name
from alerts.models import Alert, ClipStatus
from tests.faults.conftest import (
    assert_exact_accounting,
    clip_ready_lines,
    local_files,
    max_attempts,
    queued_alert_with_spool,
)
from tests.support.processes import start_worker
from tests.support.rtsp import make_video, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def kill_when_exists(path: Path, pid: int, timeout: float) -> None:
    """SIGKILL `pid` the moment `path` appears (a busy poll: the window is a few milliseconds)."""
    deadline = time.monotonic() + timeout
    exists = os.path.exists
    while not exists(path):
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared")
    os.kill(pid, signal.SIGKILL)


def test_a_build_killed_while_storing_its_clip_is_built_once_with_no_orphan_file(
    broker, clip_settings: Path, tmp_path: Path
):
    # A big clip (720p, 6 Mbit/s) so that writing it to the storage takes a while.
    spool = make_video(width=1280, height=720, seconds=8, gop=50, bitrate_kbps=6000, container="ts").read_bytes()
    alert = queued_alert_with_spool(spool)
    target = clip_settings / clip_storage_name(Alert.objects.select_related("camera__site").get(pk=alert.pk))
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    # Short time limits, so the killed build's claim (lease = hard limit + 10 s) expires soon.
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(clip_settings), CELERY_TASK_SOFT_TIME_LIMIT="4",
                          CELERY_TASK_TIME_LIMIT="5", CLIP_RETRY_BACKOFF_SECONDS="1",
                          CLIP_BUILD_MAX_ATTEMPTS=str(max_attempts()), TMPDIR=str(worker_tmp))
    try:
        [child] = worker.children()
        with transaction.atomic():
            clip_job_enqueue(alert_id=alert.pk)
        kill_when_exists(target, child, 60)
        killed = Alert.objects.values_list("clip_status", flat=True).get(pk=alert.pk)
        assert killed == ClipStatus.BUILDING, f"the kill came too late to interrupt the build: {killed}"
        wait_until(lambda: Alert.objects.get(pk=alert.pk).clip_status == ClipStatus.READY, 90,
                   message=f"clip ready after the kill\n{worker.log()[-4000:]}")
    finally:
        worker.stop()

    log = worker.log()
    assert "WorkerLostError" in log or "SIGKILL" in log, log[-4000:]
    alert.refresh_from_db()
    assert alert.clip_attempts == 2 <= max_attempts()  # the killed attempt and the one that finished
    assert clip_ready_lines(log, alert.pk) == 1, log[-4000:]
    assert_exact_accounting([alert], local_files(clip_settings), lambda name: (clip_settings / name).read_bytes(),
                            max_attempts=max_attempts())
    # The killed build's working copies (spool and half-built clip) are not left behind either.
    leftovers = sorted(p.relative_to(worker_tmp).as_posix() for p in worker_tmp.rglob("*"))
    assert leftovers == [], f"temporary files left by the killed build in the worker's TMPDIR: {leftovers}"
