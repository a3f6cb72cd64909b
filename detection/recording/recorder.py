"""Recording each alert's clip window out of its camera's ring, then handing it to the clip worker.

The inference loop only posts events here (never blocks). One recorder thread owns the rest:
it registers the alert through the emitter, collects the packets of the clip window from the
ring while the event lasts (a long event outlives the ring, so packets are gathered as they
arrive rather than copied once at the end), and when the window is complete writes the spool
file through the clips storage and moves the alert to `queued`, which enqueues the build job.
"""
from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from django.core.files import File
from django.db import close_old_connections, connection

from alerts.emitter import alert_clip_spooled, alert_clip_unrecorded, alert_event_close, alert_raise
from alerts.models import clip_storage
from detection.capture.ring import CodecParams, PacketRing, RingPacket, RingSnapshot
from detection.inference.events import Event, EventKey, EventPhase
from detection.recording.remux import write_snapshot
from detection.threads import BackgroundThread
from shoplift.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

SPOOL_FORMAT, SPOOL_SUFFIX = "mpegts", ".ts"  # carries H.264/H.265 as received, readable even if cut short
POLL_SECONDS = 0.25
# After the window's end, wait this long for its last packets (a stalled camera) before spooling what came.
LATE_PACKETS_SECONDS = 3.0
# How long a spool write that fails (full disk, bucket down) is retried. Shorter than the sweeper's
# grace for alerts left recording (alerts.emitter.RECORDING_GRACE_SECONDS), which would fail them.
SPOOL_RETRY_SECONDS = 90.0


@dataclass
class Recording:
    event: Event
    ring: PacketRing
    alert_id: int | None = None
    packets: list[RingPacket] = field(default_factory=list)
    codec: CodecParams | None = None
    ended: Event | None = None
    spool_attempts: int = 0
    spool_give_up: float = 0.0  # monotonic time after which a failing spool write is abandoned

    @property
    def clip_start(self) -> float:
        return self.event.clip_start

    @property
    def clip_end(self) -> float:
        return (self.ended or self.event).clip_end

    @property
    def final(self) -> bool:
        return (self.ended or self.event).clip_final

    def collect(self) -> None:
        """Append the packets of the window received since the last call."""
        upto = self.clip_end
        if self.packets:
            snapshot = self.ring.snapshot(self.packets[-1].recv_time, upto)
            last = self.packets[-1]
            fresh = list(snapshot.packets)
            for index, packet in enumerate(fresh):
                if packet is last:
                    fresh = fresh[index + 1:]
                    break
            else:
                fresh = [p for p in fresh if p.recv_time > last.recv_time]
        else:
            snapshot = self.ring.snapshot(self.clip_start, upto)
            fresh = list(snapshot.packets)
            if fresh and not snapshot.covers_start:
                logger.warning("clip starts late camera=%s event_type=%s wanted=%.2f first_packet=%.2f",
                               self.event.camera_name, self.event.event_type, self.clip_start, fresh[0].recv_time)
        if fresh and (self.codec is None or snapshot.codec == self.codec):
            self.codec = snapshot.codec
            self.packets.extend(fresh)

    def complete(self, now: float, newest: float | None) -> bool:
        """The window is final and every packet of it has been collected: the camera has sent a
        packet past its end (`newest`, read before the last collect), or it stalled too long."""
        if not self.final:
            return False
        received_end = newest is not None and newest >= self.clip_end
        return received_end or now > self.clip_end + LATE_PACKETS_SECONDS


class ClipRecorder(BackgroundThread):
    """Start with start(); post events with on_event() from any thread; stop the shared event to flush."""

    thread_name = "clip-recorder"

    def __init__(self, *, stop: threading.Event, rings: Callable[[int], PacketRing | None], max_events: int = 1000) -> None:
        self.stop = stop
        self._rings = rings
        self._events: queue.Queue[Event] = queue.Queue(maxsize=max_events)
        self._recordings: dict[int, Recording] = {}  # by alert id
        self._current: dict[EventKey, int] = {}  # the alert id of each key's event in progress
        self._unspooled: dict[int, tuple[float, Recording]] = {}  # alert id: (next try, recording)
        self.raised = self.suppressed = self.spooled = self.dropped_events = self.failed = 0
        self.by_camera: dict[int, Counter[str]] = defaultdict(Counter)  # events / suppressed per camera, for metrics

    def on_event(self, event: Event) -> None:
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.dropped_events += 1
            logger.error("recorder queue full: event dropped camera=%s event_type=%s", event.camera_name, event.event_type)

    @property
    def recording(self) -> int:
        return len(self._recordings) + len(self._unspooled)

    # --- the recorder thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self._step(time.time(), timeout=POLL_SECONDS)
            # Shutdown: take what the queue and the rings hold now, and spool every recording.
            self._step(time.time(), timeout=0)
            for alert_id in list(self._recordings):
                self._guarded(partial(self._finish, alert_id, shutting_down=True))
            for _, recording in self._unspooled.values():
                self._guarded(self._spool, recording, True)
        finally:
            connection.close()

    def _step(self, now: float, *, timeout: float) -> None:
        close_old_connections()
        deadline = time.monotonic() + timeout
        while True:
            try:
                remaining = deadline - time.monotonic()
                event = self._events.get(timeout=remaining) if remaining > 0 else self._events.get_nowait()
            except queue.Empty:
                break
            self._guarded(self._handle, event)
        for alert_id, recording in list(self._recordings.items()):
            newest = recording.ring.newest  # before collecting: all packets up to it are in the ring
            self._guarded(recording.collect)
            if recording.complete(now, newest):
                self._guarded(self._finish, alert_id)
        for alert_id, (due, recording) in list(self._unspooled.items()):
            if time.monotonic() >= due:
                del self._unspooled[alert_id]
                self._guarded(self._spool, recording)

    def _guarded(self, job: Callable[..., object], *args: object) -> None:
        try:
            job(*args)
        except Exception:  # loop top: one bad recording must not stop the others
            self.failed += 1
            logger.exception("recorder step failed")

    def _handle(self, event: Event) -> None:
        if event.phase is EventPhase.STARTED:
            self._current.pop(event.key, None)  # the rules ended the key's previous event before this one
            ring = self._rings(event.camera_id)
            result = alert_raise(event)
            if not result.created:
                self.suppressed += 1
                self.by_camera[event.camera_id]["suppressed"] += 1
                return
            assert result.alert_id is not None
            self.raised += 1
            self.by_camera[event.camera_id]["events"] += 1
            self._current[event.key] = result.alert_id  # until the event ends, even if its clip is done
            if ring is None:
                alert_clip_unrecorded(alert_id=result.alert_id, reason="the camera was removed before its clip was recorded")
                return
            # By alert, not by key: with a short dedup window the key's next alert can start
            # while this clip's post-roll is still being recorded.
            self._recordings[result.alert_id] = Recording(event=event, ring=ring, alert_id=result.alert_id)
            return
        alert_id = self._current.get(event.key)
        if alert_id is None:
            return  # a suppressed event's phases: it has no alert of its own
        recording = self._recordings.get(alert_id)
        if recording is not None:
            recording.ended = event
        if event.phase is EventPhase.ENDED:
            # A capped event ends long after its clip was spooled: its alert still gets the end time.
            del self._current[event.key]
            alert_event_close(alert_id=alert_id, event=event)

    def _finish(self, alert_id: int, *, shutting_down: bool = False) -> None:
        recording = self._recordings.pop(alert_id)
        if shutting_down:
            self._guarded(recording.collect)
        if not recording.packets or recording.codec is None:
            alert_clip_unrecorded(alert_id=recording.alert_id, reason="no video arrived from the camera for the clip window")
            return
        last = recording.packets[-1].recv_time
        if last < recording.clip_end - 1.0:
            logger.warning("clip cut short alert=%s camera=%s wanted_end=%.2f last_packet=%.2f reason=%s",
                           recording.alert_id, recording.event.camera_name, recording.clip_end, last,
                           "shutdown" if shutting_down else "camera stopped sending")
        self._spool(recording, final=shutting_down)

    def _spool(self, recording: Recording, final: bool = False) -> None:
        """Write the recording's packets to the spool and queue the build. A full disk or an
        unreachable bucket is retried with backoff for SPOOL_RETRY_SECONDS (the packets wait in
        memory), then the alert is marked failed with the reason; this thread, which records every
        camera's clips, goes on either way."""
        assert recording.alert_id is not None
        snapshot = RingSnapshot(tuple(recording.packets), recording.codec, recording.clip_start, recording.clip_end)
        try:
            with tempfile.TemporaryDirectory(prefix="spool-") as tmp:
                path = Path(tmp) / f"{recording.alert_id}{SPOOL_SUFFIX}"
                write_snapshot(snapshot, path, container_format=SPOOL_FORMAT, faststart=False)
                with path.open("rb") as fh:
                    name = clip_storage().save(f"spool/{recording.alert_id}{SPOOL_SUFFIX}", File(fh, name=path.name))
        except STORAGE_ERRORS as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            now = time.monotonic()
            recording.spool_attempts += 1
            recording.spool_give_up = recording.spool_give_up or now + SPOOL_RETRY_SECONDS
            retry_in = min(2.0 ** recording.spool_attempts, 30.0)
            if final or now + retry_in > recording.spool_give_up:
                alert_clip_unrecorded(alert_id=recording.alert_id, reason=f"the spool could not be stored ({error})")
                return
            logger.warning("spool not stored alert=%s camera=%s attempt=%s retry_in=%.0f error=%s", recording.alert_id,
                           recording.event.camera_name, recording.spool_attempts, retry_in, error)
            self._unspooled[recording.alert_id] = (now + retry_in, recording)
            return
        first, last = recording.packets[0].recv_time, recording.packets[-1].recv_time
        alert_clip_spooled(alert_id=recording.alert_id, spool_name=name, clip_start=first, clip_end=last)
        self.spooled += 1
