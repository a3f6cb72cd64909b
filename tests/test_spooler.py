"""The spooler thread: the detector process's database writes and storage uploads for clips,
in order, kept through a database outage, and flushed at shutdown with nothing silently lost."""
from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction

import pytest
from django.db import OperationalError

from alerts.models import Alert, ClipStatus
from detection.capture.ring import CodecParams, RingPacket, RingSnapshot
from detection.inference.events import Event, EventPhase
from detection.recording import spooler as spooler_module
from detection.recording.recorder import Recording
from detection.recording.spooler import Spooler
from tests.support.clips import clip_settings  # noqa: F401
from tests.support.factories import make_camera, make_site
from tests.support.rtsp import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the spooler thread has its own connection


def recording_for(camera, *, start: float | None = None) -> Recording:
    start = time.time() if start is None else start
    event = Event(phase=EventPhase.STARTED, camera_id=camera.pk, camera_name=camera.name, zone_id=None, zone_name="",
                  event_type="zone_activity", score=0.8, threshold=0.5, start=start, last_high=start, end=None,
                  clip_start=start - 2, clip_end=start + 4, clip_final=True, trigger_at=start)
    return Recording(event=event, ring=None)


def snapshot(start: float) -> RingSnapshot:
    base = Fraction(1, 90000)
    packets = tuple(RingPacket(data=b"\x00\x00\x00\x01\x65" + b"\x00" * 50, pts=i * 3600, dts=i * 3600, duration=3600,
                               time_base=base, is_keyframe=i % 25 == 0, recv_time=start + i / 25) for i in range(150))
    return RingSnapshot(packets, CodecParams(codec_name="h264", width=320, height=240, time_base=base),
                        start, start + 6)


@pytest.fixture
def spooler(clip_settings):  # noqa: F811
    stop = threading.Event()
    running = Spooler(stop=stop, flush_seconds=1.0).start()
    yield running
    stop.set()
    assert running.join(10)


def test_it_keeps_a_job_the_database_refused_and_runs_it_in_order_once_the_database_answers(spooler, monkeypatch,
                                                                                           caplog):
    real_raise = spooler_module.alert_raise
    refusals = []

    def flaky_raise(event, **kwargs):
        if len(refusals) < 2:
            refusals.append(kwargs["retry"])
            raise OperationalError("server closed the connection unexpectedly")
        return real_raise(event, **kwargs)

    monkeypatch.setattr(spooler_module, "alert_raise", flaky_raise)
    camera = make_camera(make_site("Main St"), "Aisle 3")
    recording = recording_for(camera)
    spooler.raise_alert(recording)
    spooler.unrecorded(recording, "test: no video")  # queued behind the raise: must wait for it

    wait_until(lambda: Alert.objects.filter(camera=camera, clip_status=ClipStatus.FAILED).exists(), 15,
               message="the raise and the job behind it ran once the database answered")
    assert refusals == [False, True]  # the second try is marked as a retry (it may find its own commit)
    assert Alert.objects.filter(camera=camera).count() == 1
    assert Alert.objects.get(camera=camera).clip_error == "No clip: test: no video."
    assert spooler.failed == 0 and spooler.raised == 1
    assert any("database unavailable: raise" in r.getMessage() for r in caplog.records)


def test_at_shutdown_a_spool_it_cannot_store_fails_its_alert_with_the_reason(clip_settings, monkeypatch):  # noqa: F811
    def full_disk(self, alert_id, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spooler, "_write", full_disk)
    camera = make_camera(make_site("Main St"), "Aisle 3")
    stop = threading.Event()
    spooler = Spooler(stop=stop, flush_seconds=1.0).start()
    recording = recording_for(camera)
    spooler.raise_alert(recording)
    spooler.spool(recording, snapshot(recording.event.clip_start), "")
    wait_until(lambda: spooler._retrying, 10, message="the failed write kept for a retry")
    stop.set()
    assert spooler.join(10)

    alert = Alert.objects.get(camera=camera)
    assert alert.clip_status == ClipStatus.FAILED
    assert alert.clip_error == ("No clip: the detector stopped before the spool could be stored "
                                "(OSError: [Errno 28] No space left on device).")
    assert spooler.left_at_stop == []


def test_at_shutdown_it_names_the_alerts_it_could_not_finish(clip_settings, monkeypatch, caplog):  # noqa: F811
    camera = make_camera(make_site("Main St"), "Aisle 3")
    stop = threading.Event()
    spooler = Spooler(stop=stop, flush_seconds=1.0)
    first, second = recording_for(camera), recording_for(camera, start=time.time() + 400)
    first.alert_id, second.alert_id = 41, 42

    def database_down(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(spooler_module, "alert_event_close", database_down)
    spooler.close_event(first, first.event)
    spooler.close_event(second, second.event)
    stop.set()
    with caplog.at_level(logging.ERROR):
        spooler.start()
        assert spooler.join(10)

    assert spooler.left_at_stop == ["close alert=41 camera=Aisle 3", "close alert=42 camera=Aisle 3"]
    assert any("2 clip jobs not finished" in r.getMessage() and "alert=42" in r.getMessage() for r in caplog.records)


def test_a_database_outage_during_storage_retries_loses_no_job(clip_settings, monkeypatch):  # noqa: F811
    """Two spools wait to retry a refused write; the database then goes down while they retry:
    neither is lost, and both are attached once it is back."""
    real_spooled, real_write = spooler_module.alert_clip_spooled, Spooler._write
    state = {"disk": "full", "database": "up"}

    def write(self, alert_id, *args):
        if state["disk"] == "full":
            raise OSError(28, "No space left on device")
        return real_write(self, alert_id, *args)

    def spooled(**kwargs):
        if state["database"] == "down":
            raise OperationalError("the database system is shutting down")
        return real_spooled(**kwargs)

    monkeypatch.setattr(Spooler, "_write", write)
    monkeypatch.setattr(spooler_module, "alert_clip_spooled", spooled)
    monkeypatch.setattr(spooler_module, "SPOOL_RETRY_SECONDS", 60.0)
    camera = make_camera(make_site("Main St"), "Aisle 3")
    stop = threading.Event()
    spooler = Spooler(stop=stop, flush_seconds=1.0).start()
    try:
        recordings = [recording_for(camera, start=time.time() + 400 * n) for n in range(2)]
        for recording in recordings:
            spooler.raise_alert(recording)
            spooler.spool(recording, snapshot(recording.event.clip_start), "")
        wait_until(lambda: len(spooler._retrying) == 2, 10, message="both writes kept for a retry")
        state.update(disk="free", database="down")
        for item in spooler._retrying:
            item.due = 0.0
        time.sleep(1.5)
        state["database"] = "up"
        wait_until(lambda: Alert.objects.filter(camera=camera, clip_status=ClipStatus.QUEUED).count() == 2, 20,
                   message="both spools attached once the database is back")
    finally:
        stop.set()
        assert spooler.join(10)
    assert spooler.failed == 0 and spooler.spooled == 2
