"""The clips storage runs out of space (a real ENOSPC from a small tmpfs) while a clip is stored: the
alert fails with the reason and keeps its spool; once space is freed, the admin's retry builds it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction

from alerts.clip_jobs import clip_job_enqueue, clip_job_retry
from alerts.models import Alert, ClipStatus
from tests.faults.conftest import (
    assert_exact_accounting,
    clip_ready_lines,
    local_files,
    max_attempts,
    queued_alert_with_spool,
)
from tests.support.clips import small_clip_disk
from tests.support.processes import start_worker
from tests.support.rtsp import make_video, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DISK_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path, settings) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted as the clips storage folder (of this process and the workers it starts)."""
    with small_clip_disk(tmp_path / "small-disk", settings, size_bytes=DISK_BYTES) as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Write zeros until the disk says ENOSPC; returns the filler file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return filler


def test_a_full_disk_fails_the_clip_with_the_reason_keeps_the_spool_and_the_retry_builds_it_once_space_is_freed(
    broker, small_disk: Path, tmp_path: Path
):
    spool = make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes()
    assert len(spool) < DISK_BYTES // 2
    alert = queued_alert_with_spool(spool)
    filler = fill(small_disk)
    # A long backoff: the retry here is the admin's, after the disk is freed, not the task's own.
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(small_disk), CLIP_RETRY_BACKOFF_SECONDS="600")
    try:
        with transaction.atomic():
            clip_job_enqueue(alert_id=alert.pk)
        wait_until(lambda: Alert.objects.get(pk=alert.pk).clip_status == ClipStatus.FAILED, 60,
                   message=f"clip failed on the full disk\n{worker.log()[-4000:]}")
        alert.refresh_from_db()
        assert alert.clip_error.startswith("Cannot store the clip") and "No space left on device" in alert.clip_error, \
            alert.clip_error
        assert alert.clip_attempts == 1 and not alert.clip
        assert (small_disk / alert.spool_name).read_bytes() == spool  # the spool is kept, intact
        assert f"clip failed alert={alert.pk} " in worker.log()
        on_full_disk = local_files(small_disk)

        filler.unlink()
        assert clip_job_retry(alert_id=alert.pk)
        wait_until(lambda: Alert.objects.get(pk=alert.pk).clip_status == ClipStatus.READY, 60,
                   message=f"clip ready after the retry\n{worker.log()[-4000:]}")
    finally:
        worker.stop()

    alert.refresh_from_db()
    assert alert.clip_error == "" and alert.clip_attempts == 1  # the retry starts the count over
    assert clip_ready_lines(worker.log(), alert.pk) == 1
    # The failed attempt left nothing but the spool (and the filler) on the full disk: no half-written clip.
    assert on_full_disk == {alert.spool_name, "filler"}, f"after ENOSPC: {sorted(on_full_disk)}"
    assert_exact_accounting([alert], local_files(small_disk), lambda name: (small_disk / name).read_bytes(),
                            max_attempts=max_attempts())
