"""The clip recorder thread against a ring filled live, as a camera's capture fills it.

The ring is fed from a real H.264 file at its own pace, each packet stamped with the time it is
pushed, so the recorder sees packets arrive the way they do from RTSP.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction

import av
import pytest

from alerts.models import Alert, ClipStatus, EventClip
from detection.capture.ring import CodecParams, PacketRing, RingPacket
from detection.inference.events import Event, EventPhase
from detection.recording import recorder as recorder_module
from detection.recording import spooler as spooler_module
from detection.recording.recorder import Recording
from tests.support.clips import clip_settings  # noqa: F401
from tests.support.factories import make_camera, make_site
from tests.support.recording import RecordingStages, start_recording_stages
from tests.support.rtsp import make_video, wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the recorder thread has its own connection


@pytest.fixture
def live_ring() -> Iterator[PacketRing]:
    """A ring that a feeder thread fills in real time (25 fps) until the test ends."""
    video = make_video(width=320, height=240, seconds=30, gop=25, container="ts")
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        codec = CodecParams.from_stream(stream)
        packets = [(bytes(p), p.pts, p.dts, p.duration or 0, stream.time_base, p.is_keyframe)
                   for p in container.demux(stream) if p.size and p.pts is not None]
    ring = PacketRing(window_seconds=10, max_bytes=64 * 1024 * 1024)
    ring.set_codec(codec)
    stop = threading.Event()

    def feed() -> None:
        for data, pts, dts, duration, time_base, key in packets:
            if stop.wait(1 / 25):
                return
            ring.push(RingPacket(data=data, pts=pts, dts=dts, duration=duration, time_base=time_base,
                                 is_keyframe=key, recv_time=time.time()))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_until(lambda: ring.newest is not None and ring.stats().seconds >= 2.5, 10, message="ring filled")
    yield ring
    stop.set()
    feeder.join(2)


def event(camera_id: int, phase: EventPhase, *, start: float, clip_end: float, final: bool) -> Event:
    return Event(phase=phase, camera_id=camera_id, camera_name="Aisle 3", zone_id=None, zone_name="",
                 event_type="zone_activity", score=0.8, threshold=0.5, start=start, last_high=start,
                 end=start if phase is EventPhase.ENDED else None, clip_start=start - 2, clip_end=clip_end,
                 clip_final=final, trigger_at=start)


@pytest.fixture
def stages(live_ring: PacketRing, clip_settings) -> Iterator[RecordingStages]:  # noqa: F811
    running = start_recording_stages(lambda camera_id: live_ring)
    yield running
    running.stop()


@pytest.fixture
def recorder(stages: RecordingStages):
    return stages.recorder


def status(alert_id: int) -> str:
    return Alert.objects.values_list("clip_status", flat=True).get(pk=alert_id)


def test_a_clip_is_spooled_as_soon_as_a_packet_past_its_window_arrives(recorder, monkeypatch):
    # A late-packet grace far longer than the test: only "a packet past the end came" can finish it.
    monkeypatch.setattr(recorder_module, "LATE_PACKETS_SECONDS", 60.0)
    camera = make_camera(make_site("Main St"), "Aisle 3")
    now = time.time()
    recorder.on_event(event(camera.pk, EventPhase.STARTED, start=now, clip_end=now + 1.0, final=True))
    wait_until(lambda: Alert.objects.filter(camera=camera).exists(), 10, message="alert raised")
    alert = Alert.objects.get(camera=camera)
    wait_until(lambda: status(alert.pk) == ClipStatus.QUEUED, 10, message="clip spooled without the late-packet grace")
    alert.refresh_from_db()
    assert alert.clip_end.timestamp() >= now + 1.0 - 1 / 25  # nothing of the window was left out


def test_the_next_alert_of_the_same_key_does_not_take_over_a_clip_still_recording(recorder, settings):
    settings.DEDUP_WINDOW_SECONDS = 0  # every event of the key raises an alert
    camera = make_camera(make_site("Main St"), "Aisle 3")
    now = time.time()
    first = event(camera.pk, EventPhase.STARTED, start=now, clip_end=now + 3.0, final=False)
    recorder.on_event(first)
    recorder.on_event(replace(first, phase=EventPhase.ENDED, end=now, clip_final=True))
    # The rules start the key's next event while the first clip's post-roll is still recording.
    recorder.on_event(event(camera.pk, EventPhase.STARTED, start=now + 1.0, clip_end=now + 4.0, final=True))
    wait_until(lambda: Alert.objects.filter(camera=camera).count() == 2, 10, message="two alerts raised")
    wait_until(lambda: {status(a.pk) for a in Alert.objects.filter(camera=camera)} == {ClipStatus.QUEUED}, 15,
               message="both clips spooled")
    spools = sorted(Alert.objects.filter(camera=camera).values_list("spool_name", flat=True))
    assert len(set(spools)) == 2


def test_an_event_that_ends_after_its_capped_clip_was_spooled_still_closes_its_alert(recorder):
    camera = make_camera(make_site("Main St"), "Aisle 3")
    now = time.time()
    started = event(camera.pk, EventPhase.STARTED, start=now, clip_end=now + 1.0, final=False)
    recorder.on_event(started)
    recorder.on_event(replace(started, phase=EventPhase.CAPPED, clip_final=True))  # the window reached its cap
    wait_until(lambda: Alert.objects.filter(camera=camera, clip_status=ClipStatus.QUEUED).exists(), 10,
               message="capped clip spooled")
    recorder.on_event(replace(started, phase=EventPhase.ENDED, end=now + 40, last_high=now + 40, clip_final=True))
    wait_until(lambda: Alert.objects.get(camera=camera).event_end is not None, 10, message="event end recorded")
    assert abs(Alert.objects.get(camera=camera).event_end.timestamp() - (now + 40)) < 0.01


@pytest.mark.slow
def test_a_slow_storage_write_costs_no_other_clip_a_single_packet(stages, monkeypatch):
    """One spool write hangs longer than the ring holds (a bucket with boto3's default timeouts):
    the recorder thread never waits on it, so a long clip recorded meanwhile is whole."""
    real_write = spooler_module.Spooler._write
    hung = []

    def slow_write(self, alert_id, *args):
        if not hung:
            hung.append(alert_id)
            time.sleep(12)  # past the 10 s ring
        return real_write(self, alert_id, *args)

    monkeypatch.setattr(spooler_module.Spooler, "_write", slow_write)
    camera = make_camera(make_site("Main St"), "Aisle 3")
    now = time.time()
    stages.recorder.on_event(event(camera.pk, EventPhase.STARTED, start=now, clip_end=now + 0.5, final=True))
    wait_until(lambda: hung, 10, message="the first spool write started")
    long_one = replace(event(camera.pk, EventPhase.STARTED, start=now + 0.5, clip_end=now + 13.0, final=True),
                       event_type="concealment")
    stages.recorder.on_event(long_one)
    wait_until(lambda: Alert.objects.filter(camera=camera, clip_status=ClipStatus.QUEUED).count() == 2, 40,
               message="both clips spooled")
    alert = Alert.objects.get(camera=camera, event_type="concealment")
    assert alert.clip_warning == ""
    assert alert.clip_end.timestamp() - alert.clip_start.timestamp() >= 13.0 - 1 / 25


def synthetic_ring(window_seconds: float) -> PacketRing:
    ring = PacketRing(window_seconds=window_seconds, max_bytes=64 * 1024 * 1024)
    ring.set_codec(CodecParams(codec_name="h264", width=320, height=240, time_base=Fraction(1, 90000)))
    return ring


def push(ring: PacketRing, at: float, index: int) -> None:
    ring.push(RingPacket(data=b"\x00" * 100, pts=index * 3600, dts=index * 3600, duration=3600,
                         time_base=Fraction(1, 90000), is_keyframe=index % 25 == 0, recv_time=at))


def test_a_recording_that_fell_behind_its_ring_says_what_it_lost():
    ring = synthetic_ring(window_seconds=2)
    start = 1_000_000.0
    recording = Recording(event=event(1, EventPhase.STARTED, start=start + 2, clip_end=start + 10, final=True),
                          ring=ring)
    for i in range(50):  # 0-2 s
        push(ring, start + i / 25, i)
    recording.collect()
    for i in range(50, 200):  # 2-8 s arrive while the recorder is not collecting: the 2 s ring drops most
        push(ring, start + i / 25, i)
    recording.collect()
    assert recording.lost
    assert "the recorder fell behind the ring" in recording.missing()


def test_a_camera_that_paused_mid_clip_is_reported_and_a_whole_clip_is_not():
    start = 1_000_000.0
    ring = synthetic_ring(window_seconds=30)
    recording = Recording(event=event(1, EventPhase.STARTED, start=start + 2, clip_end=start + 10, final=True),
                          ring=ring)
    for i in range(260):
        push(ring, start + i / 25, i)
    recording.collect()
    assert recording.missing() == ""

    paused = synthetic_ring(window_seconds=30)
    recording = Recording(event=event(1, EventPhase.STARTED, start=start + 2, clip_end=start + 10, final=True),
                          ring=paused)
    for i in [*range(0, 100), *range(175, 260)]:  # nothing from 4 s to 7 s
        push(paused, start + i / 25, i)
    recording.collect()
    assert "3.0 s from" in recording.missing() and "the camera sent nothing" in recording.missing()


def test_the_first_clip_is_spooled_after_its_post_roll_while_the_event_goes_on_and_the_whole_event_after_it(
        recorder):
    camera = make_camera(make_site("Main St"), "Aisle 3")
    now = time.time()
    started = replace(event(camera.pk, EventPhase.STARTED, start=now, clip_end=now + 4.0, final=False),
                      first_clip_end=now + 4.0)
    recorder.on_event(started)
    wait_until(lambda: Alert.objects.filter(camera=camera, clip_status=ClipStatus.QUEUED).exists(), 10,
               message="the first clip spooled before the event ended")
    alert = Alert.objects.get(camera=camera)
    assert time.time() < now + 7  # well before the event's end below
    assert 6.0 - 1 / 25 <= (alert.clip_end - alert.clip_start).total_seconds() <= 6.0 + 2.0  # from the keyframe
    assert not EventClip.objects.exists()

    ended = replace(started, phase=EventPhase.ENDED, last_high=now + 6.0, end=now + 6.0, clip_end=now + 8.0,
                    clip_final=True)
    recorder.on_event(ended)
    wait_until(lambda: EventClip.objects.filter(alert=alert, clip_status=ClipStatus.QUEUED).exists(), 15,
               message="the whole-event clip spooled")
    whole = EventClip.objects.get(alert=alert)
    assert whole.clip_end.timestamp() >= now + 8.0 - 1 / 25 and whole.clip_start == alert.clip_start
    assert whole.spool_name == f"spool/{alert.pk}-event.ts" and whole.clip_warning == ""
    alert.refresh_from_db()
    assert alert.clip_end.timestamp() < now + 4.1  # the first clip is never replaced


def test_an_event_that_ends_inside_its_first_clip_gets_no_second_clip(recorder):
    camera = make_camera(make_site("Main St"), "Aisle 3")
    now = time.time()
    started = replace(event(camera.pk, EventPhase.STARTED, start=now, clip_end=now + 1.5, final=False),
                      first_clip_end=now + 1.5)
    recorder.on_event(started)
    recorder.on_event(replace(started, phase=EventPhase.ENDED, end=now + 0.5, clip_end=now + 1.5, clip_final=True))
    wait_until(lambda: Alert.objects.filter(camera=camera, clip_status=ClipStatus.QUEUED).exists(), 10,
               message="the first clip spooled")
    time.sleep(1.0)
    assert not EventClip.objects.exists()
    assert recorder._recordings == {}
