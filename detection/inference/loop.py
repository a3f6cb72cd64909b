"""The inference loop: the latest frame of every camera, batched per detector, through the rules.

One thread per detector process. It never touches the database and never waits on anything but
its cameras' frame slots; events go to the clip recorder's queue, and each processed frame, with
the people its detector tracks, to the live picture publisher's latest-frame slot (detection.live).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from detection.capture.stream import CameraStream, SampledFrame
from detection.detectors.base import Detector, detect_batch
from detection.inference.events import CameraRules, Event, EventPhase, RuleEngine
from detection.live import LivePerson, live_people
from detection.threads import BackgroundThread

logger = logging.getLogger(__name__)

IDLE_SLEEP_SECONDS = 0.01
EXPIRE_EVERY_SECONDS = 1.0

FrameListener = Callable[[SampledFrame, tuple[LivePerson, ...]], None]


@dataclass
class CameraStats:
    frames: int = 0
    events: int = 0
    last_latency: float = 0.0  # seconds from frame capture to the end of its batch
    latency_sum: float = 0.0


@dataclass
class InferenceStats:
    batches: int = 0
    batch_seconds: float = 0.0
    cameras: dict[int, CameraStats] = field(default_factory=lambda: defaultdict(CameraStats))


class InferenceLoop(BackgroundThread):
    thread_name = "inference"

    def __init__(self, *, engine: RuleEngine, detectors: Mapping[str, Detector],
                 streams: Callable[[], Mapping[int, CameraStream]], on_event: Callable[[Event], None],
                 stop: threading.Event, on_frame: FrameListener | None = None) -> None:
        self.engine = engine
        self.detectors = dict(detectors)
        self._streams = streams
        self._on_event = on_event
        self._on_frame = on_frame  # must return at once (a slot write): it runs in this loop
        self.stop = stop
        self.stats = InferenceStats()
        self._lock = threading.Lock()  # guards engine rule swaps against the loop

    def replace_rules(self, rules: Mapping[int, CameraRules]) -> None:
        """Called by the supervisor when cameras or zones change; events no longer watched end."""
        with self._lock:
            for event in self.engine.update_rules(rules, at=time.time()):
                self._on_event(event)

    def _run(self) -> None:
        last_expire = time.monotonic()
        while not self.stop.is_set():
            try:
                worked = self.step()
                if time.monotonic() - last_expire > EXPIRE_EVERY_SECONDS:
                    last_expire = time.monotonic()
                    with self._lock:
                        for event in self.engine.expire(time.time()):
                            self._on_event(event)
            except Exception:  # loop top: log with context and go on
                logger.exception("inference step failed")
                worked = False
            if not worked:
                time.sleep(IDLE_SLEEP_SECONDS)
        with self._lock:
            for event in self.engine.close_all():
                self._on_event(event)

    def step(self) -> bool:
        """One batch: take every camera's latest frame, detect per detector, feed the rules. False if no frame."""
        by_detector: dict[str, list[SampledFrame]] = defaultdict(list)
        rules = self.engine.rules
        for camera_id, stream in self._streams().items():
            frame = stream.frames.take()
            camera = rules.get(camera_id)
            if frame is None or camera is None:
                continue
            by_detector[camera.detector].append(frame)
        if not by_detector:
            return False
        started = time.perf_counter()
        seen: list[tuple[SampledFrame, tuple[LivePerson, ...]]] = []
        with self._lock:
            for name, frames in by_detector.items():
                detector = self.detectors.get(name)
                if detector is None:
                    continue  # the supervisor refused this detector at load; it logged why
                detections = detect_batch(detector, frames, rules)
                done = time.time()
                for frame in frames:
                    own = [d for d in detections if d.camera_id == frame.camera_id]
                    events = self.engine.process(frame.camera_id, frame.captured_at, own, image=frame.image)
                    stats = self.stats.cameras[frame.camera_id]
                    stats.frames += 1
                    stats.last_latency = done - frame.captured_at
                    stats.latency_sum += stats.last_latency
                    for event in events:
                        if event.phase is EventPhase.STARTED:
                            stats.events += 1
                        self._on_event(event)
                    if self._on_frame is not None:
                        # Copied here, in the thread that owns the tracks, before the next batch moves them.
                        seen.append((frame, live_people(detector, frame.camera_id)))
        listener = self._on_frame
        if listener is not None:
            for frame, people in seen:  # after every event of the batch is on its way
                listener(frame, people)
        self.stats.batches += 1
        self.stats.batch_seconds += time.perf_counter() - started
        return True
