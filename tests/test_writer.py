"""The Writer: the only thread of a detector process that writes to the database."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from cameras.models import Camera
from detection.capture.stream import CameraStatus
from detection.status_writer import Writer, WriterStats
from tests.support.factories import make_camera, make_site
from tests.support.rtsp import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the writer thread has its own connection


@pytest.fixture
def writer():
    stop = threading.Event()
    writer = Writer(stop=stop, max_jobs=5).start()
    yield writer
    stop.set()
    assert writer.join(2.0), "writer thread did not end within 2 s of the stop event"


def test_it_applies_a_camera_status_to_the_row(writer: Writer):
    camera = make_camera(make_site())
    seen = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    writer.submit_status(CameraStatus(camera.pk, online=True, last_frame_at=seen, last_error=""))
    wait_until(lambda: Camera.objects.get(pk=camera.pk).online, 10, message="camera online")
    row = Camera.objects.get(pk=camera.pk)
    assert row.last_frame_at == seen and row.last_error == "" and row.status_updated_at is not None


def test_it_keeps_the_last_frame_time_and_masks_the_error_when_a_camera_goes_offline(writer: Writer):
    camera = make_camera(make_site())
    seen = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    writer.submit_status(CameraStatus(camera.pk, online=True, last_frame_at=seen, last_error=""))
    wait_until(lambda: Camera.objects.get(pk=camera.pk).online, 10, message="camera online")
    writer.submit_status(CameraStatus(camera.pk, online=False, last_frame_at=None,
                                      last_error="refused by rtsp://admin:s3cret@10.0.0.5/ch1"))
    wait_until(lambda: not Camera.objects.get(pk=camera.pk).online, 10, message="camera offline")
    row = Camera.objects.get(pk=camera.pk)
    assert row.last_frame_at == seen
    assert row.last_error == "refused by rtsp://admin:****@10.0.0.5/ch1"


def test_statuses_are_coalesced_per_camera_and_never_dropped(writer: Writer):
    cameras = [make_camera(make_site()) for _ in range(3)]
    block = threading.Event()
    writer.submit(block.wait)  # hold the writer busy while statuses pile up
    for n in range(200):
        for camera in cameras:
            writer.submit_status(CameraStatus(camera.pk, online=n % 2 == 1, last_frame_at=None, last_error=f"e{n}"))
    block.set()
    ids = [c.pk for c in cameras]
    wait_until(lambda: list(Camera.objects.filter(pk__in=ids).values_list("last_error", flat=True)) == ["e199"] * 3,
               10, message="the latest status of every camera")
    assert all(Camera.objects.get(pk=c.pk).online for c in cameras)  # n=199 is odd: online
    assert writer.stats().statuses_written < 200 * 3


def test_submit_never_blocks_and_counts_what_it_drops_when_full(writer: Writer):
    block = threading.Event()
    ran: list[int] = []
    assert writer.submit(block.wait)
    wait_until(lambda: writer.stats().pending == 0, 5, message="writer busy on the first job")
    started = time.monotonic()
    accepted = [writer.submit(lambda n=n: ran.append(n)) for n in range(8)]
    assert time.monotonic() - started < 0.5
    assert accepted == [True] * 5 + [False] * 3
    assert writer.stats().dropped == 3
    block.set()
    wait_until(lambda: len(ran) == 5, 10, message="queued jobs ran")
    assert ran == [0, 1, 2, 3, 4]  # in order


def test_a_failing_job_is_logged_and_the_writer_goes_on(writer: Writer, caplog):
    def broken() -> None:
        raise RuntimeError("disk on fire")

    done = threading.Event()
    writer.submit(broken, label="broken-job")
    writer.submit(done.set)
    assert done.wait(10)
    wait_until(lambda: writer.stats().failed == 1, 5, message="failure counted")
    assert "broken-job failed" in caplog.text and "disk on fire" in caplog.text


def test_it_writes_the_last_statuses_when_stopped():
    camera = make_camera(make_site())
    stop = threading.Event()
    writer = Writer(stop=stop).start()
    block = threading.Event()
    writer.submit(lambda: block.wait(0.3))
    writer.submit_status(CameraStatus(camera.pk, online=False, last_frame_at=None, last_error="shutting down"))
    stop.set()
    started = time.monotonic()
    assert writer.join(2.0)
    assert time.monotonic() - started < 2.0
    assert Camera.objects.get(pk=camera.pk).last_error == "shutting down"
    assert isinstance(writer.stats(), WriterStats)
