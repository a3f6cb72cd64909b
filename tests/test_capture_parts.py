"""The pieces of capture that need no server: backoff, the latest-frame slot, the spec from a Camera."""
from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest
from django.test import override_settings

from detection.capture.stream import Backoff, FrameSlot, SampledFrame, StreamSpec
from tests.support.factories import make_camera, make_site


def frame(n: int) -> SampledFrame:
    return SampledFrame(camera_id=1, image=np.zeros((2, 2, 3), np.uint8), captured_at=float(n),
                        source_width=2, source_height=2)


def test_backoff_starts_near_one_second_doubles_and_stops_at_the_cap():
    backoff = Backoff(initial=1.0, cap=30.0, reset_after=30.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.8 <= delays[0] <= 1.2
    for n, delay in enumerate(delays[:5]):
        assert 0.8 * 2**n <= delay <= 1.2 * 2**n
    assert all(delay <= 30.0 for delay in delays) and delays[-1] >= 24.0


def test_backoff_jitter_spreads_cameras_that_failed_together():
    delays = {round(Backoff(rng=random.Random(seed)).next_delay(), 3) for seed in range(16)}
    assert len(delays) > 10


def test_backoff_starts_over_after_a_healthy_period_but_not_after_a_short_one():
    backoff = Backoff(initial=1.0, cap=30.0, reset_after=30.0, rng=random.Random(2))
    for _ in range(4):
        backoff.next_delay()
    assert backoff.next_delay(healthy_for=5.0) >= 0.8 * 16  # flapping: keeps growing
    assert backoff.next_delay(healthy_for=31.0) <= 1.2


def test_the_frame_slot_keeps_only_the_latest_frame_and_counts_the_replaced_ones():
    slot = FrameSlot()
    assert slot.take() is None
    for n in range(5):
        slot.put(frame(n))
    assert slot.take().captured_at == 4.0
    assert slot.take() is None
    assert (slot.put_count, slot.taken, slot.dropped) == (5, 1, 4)


def test_the_frame_slot_wakes_a_waiting_taker():
    slot = FrameSlot()
    threading.Timer(0.1, slot.put, args=(frame(7),)).start()
    started = time.monotonic()
    taken = slot.take(timeout=5)
    assert taken is not None and taken.captured_at == 7.0
    assert time.monotonic() - started < 4
    assert slot.take(timeout=0.05) is None


@pytest.mark.django_db
@override_settings(RING_MAX_BYTES=8 << 20, CAPTURE_OPEN_TIMEOUT_SECONDS=3.0, CAPTURE_WATCHDOG_SECONDS=7.0,
                   CAPTURE_BACKOFF_CAP_SECONDS=20.0)
def test_the_spec_comes_from_the_camera_row_and_settings():
    camera = make_camera(make_site(), name="Aisle 3", stream_url="rtsp://admin:s3cret@10.0.0.5/ch1",
                         detect_url="rtsp://admin:s3cret@10.0.0.5/ch1-sub", detection_fps=4.0, ring_seconds=12.0)
    spec = StreamSpec.from_camera(camera)
    assert (spec.camera_id, spec.name, spec.url, spec.detect_url) == (
        camera.pk, "Aisle 3", "rtsp://admin:s3cret@10.0.0.5/ch1", "rtsp://admin:s3cret@10.0.0.5/ch1-sub")
    assert (spec.detection_fps, spec.ring_seconds, spec.ring_max_bytes) == (4.0, 12.0, 8 << 20)
    assert (spec.open_timeout, spec.watchdog_seconds, spec.backoff_cap) == (3.0, 7.0, 20.0)
    assert "s3cret" not in repr(spec) and spec.masked_url == "rtsp://admin:****@10.0.0.5/ch1"


@pytest.mark.django_db
def test_a_camera_without_a_substream_detects_on_its_main_stream_with_the_default_ring():
    spec = StreamSpec.from_camera(make_camera(make_site()), frame_size=(320, 180))
    assert spec.detect_url is None and spec.ring_seconds == 10.0 and spec.frame_size == (320, 180)
