"""Collecting each alert's clip windows out of its camera's ring: the recorder thread.

The inference loop posts events here (never blocks). This thread only copies packets: for each
started event it keeps a Recording and appends the packets of its window as they arrive (a long
event outlives the 10 s ring, so they are gathered as they come rather than copied once at the
end). Two clips come out of it:

  first  pre-roll, `during` and post-roll from the event start (2 s + 2 s + 2 s by default),
         handed over as soon as a packet past its end arrives, whether or not the event has ended
  event  the whole event, capped at CLIP_MAX_SECONDS, once the event has ended (or reached the
         cap), only when it lasts longer than the first clip by EVENT_CLIP_MIN_EXTRA_SECONDS

It notices what of a window is missing, and hands every step that touches the database or storage
to the spooler thread (detection.recording.spooler), so a slow database or bucket can never hold
this thread until the ring has dropped packets a clip still needs.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.models import ClipPart
from detection.capture.ring import CodecParams, PacketRing, RingPacket, RingSnapshot
from detection.inference.events import Event, EventKey, EventPhase
from detection.recording.spooler import Spooler
from detection.threads import BackgroundThread

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
# After the window's end, wait this long for its last packets (a stalled camera) before spooling what came.
LATE_PACKETS_SECONDS = 3.0
# Consecutive packets further apart than this are a hole in the clip (a camera that stalled or
# reconnected), reported on the alert; a start or end missing by more than this is reported too.
GAP_SECONDS = 1.0
# A whole-event clip is built only when the event outlasts the first clip by more than this.
EVENT_CLIP_MIN_EXTRA_SECONDS = 1.0


@dataclass
class Recording:
    """One alert's clip window being collected. The spooler sets `alert_id` once the alert exists,
    or `cancelled` when the event was a repeat inside the dedup window."""

    event: Event
    ring: PacketRing | None
    id: int = 0
    alert_id: int | None = None
    cancelled: bool = False
    raise_tries: int = 0  # the spooler's
    packets: list[RingPacket] = field(default_factory=list)
    codec: CodecParams | None = None
    ended: Event | None = None
    lost: list[tuple[float, float]] = field(default_factory=list)  # spans the ring dropped before they were collected
    spooled: set[ClipPart] = field(default_factory=set)

    @property
    def clip_start(self) -> float:
        return self.event.clip_start

    @property
    def first_end(self) -> float:
        """The first clip's end: fixed when the event starts."""
        return self.event.first_clip_end if self.event.first_clip_end is not None else self.event.clip_end

    @property
    def clip_end(self) -> float:
        """The end of the whole window so far (the first clip's, or the event's if later)."""
        return max(self.first_end, (self.ended or self.event).clip_end)

    @property
    def final(self) -> bool:
        return (self.ended or self.event).clip_final

    @property
    def needs_event_clip(self) -> bool:
        return self.clip_end > self.first_end + EVENT_CLIP_MIN_EXTRA_SECONDS

    @property
    def done(self) -> bool:
        return ClipPart.FIRST in self.spooled and self.final and (
            not self.needs_event_clip or ClipPart.EVENT in self.spooled)

    def end_of(self, part: ClipPart) -> float:
        return self.first_end if part is ClipPart.FIRST else self.clip_end

    def collect(self) -> None:
        """Append the packets of the window received since the last call."""
        assert self.ring is not None
        upto = self.clip_end
        if self.packets:
            last = self.packets[-1]
            snapshot = self.ring.snapshot(last.recv_time, upto)
            fresh = list(snapshot.packets)
            for index, packet in enumerate(fresh):
                if packet is last:
                    fresh = fresh[index + 1:]
                    break
            else:
                fresh = [p for p in fresh if p.recv_time > last.recv_time]
                if fresh:  # the ring no longer holds the last packet taken: what came between is gone
                    self.lost.append((last.recv_time, fresh[0].recv_time))
                    logger.error("clip lost packets camera=%s event_type=%s seconds=%.2f: the recorder fell behind "
                                 "the ring", self.event.camera_name, self.event.event_type,
                                 fresh[0].recv_time - last.recv_time)
        else:
            snapshot = self.ring.snapshot(self.clip_start, upto)
            fresh = list(snapshot.packets)
            if fresh and not snapshot.covers_start:
                logger.warning("clip starts late camera=%s event_type=%s wanted=%.2f first_packet=%.2f",
                               self.event.camera_name, self.event.event_type, self.clip_start, fresh[0].recv_time)
        if fresh and (self.codec is None or snapshot.codec == self.codec):
            self.codec = snapshot.codec
            self.packets.extend(fresh)

    def due(self, now: float, newest: float | None) -> ClipPart | None:
        """The clip whose every packet has been collected and that is not handed over yet: the
        camera has sent a packet past its end (`newest`, read before the last collect), or it
        stalled too long. The whole-event clip only once the event's window is final."""
        if ClipPart.FIRST not in self.spooled:
            return ClipPart.FIRST if self._received(self.first_end, now, newest) else None
        if self.final and self.needs_event_clip and ClipPart.EVENT not in self.spooled:
            return ClipPart.EVENT if self._received(self.clip_end, now, newest) else None
        return None

    @staticmethod
    def _received(end: float, now: float, newest: float | None) -> bool:
        return (newest is not None and newest >= end) or now > end + LATE_PACKETS_SECONDS

    def snapshot(self, part: ClipPart) -> RingSnapshot | None:
        """The packets of one clip's window; None when no video came for it."""
        end = self.end_of(part)
        packets = tuple(p for p in self.packets if p.recv_time <= end)
        if not packets or self.codec is None:
            return None
        return RingSnapshot(packets, self.codec, self.clip_start, end)

    def missing(self, part: ClipPart = ClipPart.FIRST, *, shutting_down: bool = False) -> str:
        """What of a clip's window its packets do not cover, in words; "" when the clip is whole."""
        end = self.end_of(part)
        packets = [p for p in self.packets if p.recv_time <= end]
        if not packets:
            return ""
        parts = []
        first, last = packets[0].recv_time, packets[-1].recv_time
        if first > self.clip_start + GAP_SECONDS:
            parts.append(f"the first {first - self.clip_start:.1f} s (the camera's video did not reach back that far)")
        lost = {round(a, 3) for a, _ in self.lost}
        for before, after in zip(packets, packets[1:]):
            gap = after.recv_time - before.recv_time
            if round(before.recv_time, 3) in lost:
                parts.append(f"{gap:.1f} s from {_clock(before.recv_time)} (the recorder fell behind the ring)")
            elif gap > GAP_SECONDS:
                parts.append(f"{gap:.1f} s from {_clock(before.recv_time)} (the camera sent nothing)")
        if last < end - GAP_SECONDS:
            why = "the detector was stopping" if shutting_down else "the camera stopped sending"
            parts.append(f"the last {end - last:.1f} s ({why})")
        return ("Missing from the clip: " + "; ".join(parts) + ".") if parts else ""


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + " UTC"


class ClipRecorder(BackgroundThread):
    """Start with start(); post events with on_event() from any thread; set `stop` to finish every
    recording with what the rings hold (after the inference loop has stopped and posted its last
    events), then stop the spooler."""

    thread_name = "clip-recorder"

    def __init__(self, *, stop: threading.Event, rings: Callable[[int], PacketRing | None], spooler: Spooler,
                 max_events: int = 1000) -> None:
        self.stop = stop
        self.spooler = spooler
        self._rings = rings
        self._events: queue.Queue[Event] = queue.Queue(maxsize=max_events)
        self._recordings: dict[int, Recording] = {}  # by recording id
        self._current: dict[EventKey, Recording] = {}  # each key's event in progress, until it ends
        self._ids = itertools.count(1)
        self.dropped_events = self.failed = 0

    def on_event(self, event: Event) -> None:
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.dropped_events += 1
            logger.error("recorder queue full: event dropped camera=%s event_type=%s", event.camera_name, event.event_type)

    @property
    def recording(self) -> int:
        return len(self._recordings) + self.spooler.pending

    # --- the recorder thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stop.is_set():
            self._step(time.time(), timeout=POLL_SECONDS)
        # Shutdown: take what the queue and the rings hold now, and spool every recording.
        self._step(time.time(), timeout=0)
        for recording_id in list(self._recordings):
            self._guarded(self._finish, recording_id, True)

    def _step(self, now: float, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                remaining = deadline - time.monotonic()
                event = self._events.get(timeout=remaining) if remaining > 0 else self._events.get_nowait()
            except queue.Empty:
                break
            self._guarded(self._handle, event)
        for recording_id, recording in list(self._recordings.items()):
            if recording.cancelled:
                del self._recordings[recording_id]
                continue
            newest = recording.ring.newest if recording.ring is not None else None  # before collecting
            self._guarded(recording.collect)
            part = recording.due(now, newest)
            if part is not None:
                self._guarded(self._hand_over, recording, part, False)
            if recording.done:
                del self._recordings[recording_id]

    def _guarded(self, job: Callable[..., object], *args: object) -> None:
        try:
            job(*args)
        except Exception:  # loop top: one bad recording must not stop the others
            self.failed += 1
            logger.exception("recorder step failed")

    def _handle(self, event: Event) -> None:
        if event.phase is EventPhase.STARTED:
            self._current.pop(event.key, None)  # the rules ended the key's previous event before this one
            recording = Recording(event=event, ring=self._rings(event.camera_id), id=next(self._ids))
            self._current[event.key] = recording  # until the event ends, even if its clip is done
            self.spooler.raise_alert(recording)
            if recording.ring is None:
                self.spooler.unrecorded(recording, "the camera was removed before its clip was recorded")
                return
            # By recording, not by key: with a short dedup window the key's next alert can start
            # while this clip's post-roll is still being collected.
            self._recordings[recording.id] = recording
            return
        current = self._current.get(event.key)
        if current is None:
            return
        if current.id in self._recordings:
            current.ended = event
        if event.phase is EventPhase.ENDED:
            del self._current[event.key]
            self.spooler.close_event(current, event)

    def _finish(self, recording_id: int, shutting_down: bool) -> None:
        """Shutdown: hand over every clip of the recording with the packets the ring holds now."""
        recording = self._recordings.pop(recording_id)
        if recording.cancelled:
            return
        self._guarded(recording.collect)
        for part in (ClipPart.FIRST, ClipPart.EVENT):
            if part not in recording.spooled and (part is ClipPart.FIRST or recording.needs_event_clip):
                self._hand_over(recording, part, shutting_down)

    def _hand_over(self, recording: Recording, part: ClipPart, shutting_down: bool) -> None:
        recording.spooled.add(part)
        snapshot = recording.snapshot(part)
        if snapshot is None:
            self.spooler.unrecorded(recording, "no video arrived from the camera for the clip window", part)
            return
        self.spooler.spool(recording, snapshot, recording.missing(part, shutting_down=shutting_down), part)
