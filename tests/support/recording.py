"""The detector process's recording stages, started and stopped the way the supervisor does it:
the spooler (database and storage) first, then the recorder (packets) that feeds it; at the end the
recorder stops before the spooler, which flushes what it was handed."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from detection.capture.ring import PacketRing
from detection.recording.recorder import ClipRecorder
from detection.recording.spooler import Spooler


@dataclass
class RecordingStages:
    recorder: ClipRecorder
    spooler: Spooler
    stops: tuple[threading.Event, threading.Event] = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        recorder_stop, spooler_stop = self.stops
        recorder_stop.set()
        assert self.recorder.join(timeout), "the recorder thread did not stop"
        spooler_stop.set()
        assert self.spooler.join(timeout + self.spooler.flush_seconds), "the spooler thread did not stop"
        assert self.recorder.failed == 0 and self.spooler.failed == 0


def start_recording_stages(rings: Callable[[int], PacketRing | None], *, flush_seconds: float = 5.0) -> RecordingStages:
    recorder_stop, spooler_stop = threading.Event(), threading.Event()
    spooler = Spooler(stop=spooler_stop, flush_seconds=flush_seconds).start()
    recorder = ClipRecorder(stop=recorder_stop, rings=rings, spooler=spooler).start()
    return RecordingStages(recorder, spooler, (recorder_stop, spooler_stop))
