"""Clip jobs through a real Celery worker process on a real Redis server of the test run's own."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.clip_build import file_sha256
from alerts.clip_jobs import clip_job_enqueue, clip_jobs_sweep
from alerts.models import Alert, ClipStatus
from tests.support.processes import start_worker
from tests.support.requirements import require
from tests.support.rtsp import free_port, make_video, wait_until
from tests.test_clip_build import make_hevc, queued_alert

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def worker_env(clip_settings: Path) -> dict[str, str]:
    return {"CLIP_STORAGE_DIR": str(clip_settings.parent / "clips"), "CLIP_RETRY_BACKOFF_SECONDS": "1"}


@pytest.fixture
def worker(redis_server, worker_env, tmp_path):
    running = start_worker(tmp_path, **worker_env)
    yield running
    running.stop()


def spool_bytes() -> bytes:
    return make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes()


def enqueue(alert: Alert) -> None:
    with transaction.atomic():
        clip_job_enqueue(alert_id=alert.pk)


def status_of(alert: Alert) -> str:
    return Alert.objects.values_list("clip_status", flat=True).get(pk=alert.pk)


def clip_files(root: Path, alert: Alert) -> list[Path]:
    return [p for p in (root / "clips").rglob("*.mp4") if p.stem.split("_")[0] == str(alert.pk)]


def scrape(port: int) -> dict[str, float]:
    """Samples by name and labels, e.g. {'shoplift_clips{status="ready"}': 1.0}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_it_builds_a_clip_in_the_worker_and_counts_it_in_the_metrics(redis_server, worker_env, tmp_path, clip_settings):
    port = free_port()
    worker = start_worker(tmp_path, **worker_env, WORKER_METRICS_PORT=str(port))
    try:
        alert = queued_alert(spool_bytes())
        corrupt = queued_alert(b"\x47" + b"\x00" * 5000, camera=alert.camera)
        enqueue(alert)
        enqueue(corrupt)
        wait_until(lambda: status_of(alert) == ClipStatus.READY and status_of(corrupt) == ClipStatus.FAILED, 60,
                   message=f"clip ready, corrupt one failed\n{worker.log()}")
        alert.refresh_from_db()
        [stored] = clip_files(clip_settings, alert)
        assert file_sha256(stored) == alert.clip_sha256
        assert f"clip ready alert={alert.pk}" in worker.log()
        assert 0 < alert.clip_build_seconds < 30

        metrics = scrape(port)
    finally:
        worker.stop()
    assert metrics["shoplift_clip_build_seconds_count"] == 1
    assert metrics["shoplift_clip_build_seconds_sum"] == pytest.approx(alert.clip_build_seconds)
    assert metrics['shoplift_clip_build_seconds_bucket{le="+Inf"}'] == 1
    assert metrics["shoplift_clip_build_failures_total"] == 1
    assert metrics['shoplift_clips{status="ready"}'] == 1 and metrics['shoplift_clips{status="failed"}'] == 1
    assert metrics['shoplift_clips{status="queued"}'] == 0
    assert metrics["shoplift_clip_broker_queue"] == 0


def test_it_builds_every_clip_after_redis_comes_back(redis_server, worker, clip_settings):
    redis_server.stop()
    try:
        first = queued_alert(spool_bytes())
        alerts = [first] + [queued_alert(spool_bytes(), camera=first.camera) for _ in range(2)]
        for alert in alerts:
            enqueue(alert)  # the broker is down: logged, nothing raised, the alert stays queued
        assert {status_of(a) for a in alerts} == {ClipStatus.QUEUED}
        assert all((clip_settings / a.spool_name).exists() for a in alerts)
    finally:
        redis_server.start()
    # The sweeper (Celery beat in production) finds the jobs whose message never left.
    later = timezone.now() + timedelta(hours=1)
    with transaction.atomic():
        assert clip_jobs_sweep(now=later) == 3
    for alert in alerts:
        wait_until(lambda: status_of(alert) == ClipStatus.READY, 90, message=f"clip ready after Redis\n{worker.log()}")


def test_a_worker_killed_mid_build_leaves_exactly_one_clip(redis_server, worker_env, tmp_path, clip_settings):
    # Short limits so the claim of the killed build expires quickly (lease = hard limit + 10 s).
    killed = start_worker(tmp_path, **worker_env, CELERY_TASK_SOFT_TIME_LIMIT="8", CELERY_TASK_TIME_LIMIT="10")
    try:
        alert = queued_alert(make_hevc(seconds=12, size="640x360").read_bytes())  # transcoding takes a while
        enqueue(alert)
        wait_until(lambda: status_of(alert) == ClipStatus.BUILDING, 60, interval=0.01, message="build started")
        [child] = killed.children()
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: status_of(alert) == ClipStatus.READY, 120, message=f"clip ready after kill\n{killed.log()}")
        assert "WorkerLostError" in killed.log() or "SIGKILL" in killed.log()
    finally:
        killed.stop()
    alert.refresh_from_db()
    assert alert.clip_attempts == 2
    files = clip_files(clip_settings, alert)
    assert len(files) == 1, files
    assert file_sha256(files[0]) == alert.clip_sha256


def test_a_full_disk_fails_the_clip_and_the_retry_succeeds_once_space_is_freed(redis_server, tmp_path, settings):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    spool = spool_bytes()
    mounted = shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={len(spool) + 400_000}", "tmpfs", str(mount)], capture_output=True,
    ).returncode == 0
    require(mounted, "permission to mount a small tmpfs",
            "run the tests as root (a container needs --cap-add SYS_ADMIN; mount(8) is in Debian package mount); "
            "the in-process storage failure test still covers the logic")
    worker = None
    try:
        settings.STORAGES = {**settings.STORAGES, "clips": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                            "OPTIONS": {"location": mount, "base_url": None}}}
        alert = queued_alert(spool)
        filler = mount / "filler"
        with filler.open("wb") as fh:  # fill what is left of the disk
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(mount), CLIP_RETRY_BACKOFF_SECONDS="3")
        enqueue(alert)
        wait_until(lambda: status_of(alert) == ClipStatus.FAILED, 60, message=f"clip failed\n{worker.log()}")
        alert.refresh_from_db()
        assert "No space left on device" in alert.clip_error
        assert (mount / alert.spool_name).exists()
        filler.unlink()
        wait_until(lambda: status_of(alert) == ClipStatus.READY, 60, message=f"retry succeeded\n{worker.log()}")
    finally:
        if worker is not None:
            worker.stop()
        subprocess.run(["umount", str(mount)], check=False)
