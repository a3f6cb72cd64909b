"""Replay a video file through the detection pipeline, offline: no RTSP, no database writes.

Called by `python manage.py analyze_video`. Frames are sampled at the detection rate, scaled to
the detector's input size and passed through the same detector, rule engine (thresholds,
smoothing, event lifecycle) and zones as on a live camera, with the video's own timestamps as
the clock. Installers use it to tune zones and thresholds on recorded footage; the optional
annotated copy shows zones, people, track ids and skeletons on every frame.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import cv2
import numpy as np

from detection.capture.stream import SampledFrame
from detection.detectors.base import Detector, detect_batch
from detection.inference.events import CameraRules, Event, EventPhase, RuleConfig, RuleEngine
from detection.tracking.drawing import BOX_COLOUR, draw_person
from detection.tracking.tracker import Track

ZONE_COLOURS = {  # BGR
    "shelf": (0, 200, 255), "checkout": (0, 200, 0), "exit": (255, 160, 0), "restricted": (0, 0, 255),
    "ignore": (128, 128, 128),
}
EVENT_BANNER_SECONDS = 3.0


class ReplayError(Exception):
    """The video cannot be read; the message says why."""


@dataclass
class SampleResult:
    """One sampled frame's outcome, in the form `analyze_video --json` prints."""

    t: float  # seconds from the start of the video
    frame: int  # index of the decoded frame
    people: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "frame": self.frame, "people": self.people, "events": self.events}


def replay_video(path: Path, *, rules: CameraRules, detector: Detector, config: RuleConfig, fps: float,
                 annotate_to: Path | None = None) -> Iterator[SampleResult]:
    """Yield one SampleResult per sampled frame; events that are still open end with the last one."""
    engine = RuleEngine(config, {rules.camera_id: rules})
    context = {rules.camera_id: rules}
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise ReplayError(f"{path}: cannot open the video ({exc})") from None
    with container:
        if not container.streams.video:
            raise ReplayError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        writer = _Annotator(annotate_to, stream, rules) if annotate_to is not None else None
        pending: SampleResult | None = None
        step, next_t, start, index = 1.0 / fps, 0.0, None, -1
        try:
            for frame in _frames(container, stream, path):
                index += 1
                at = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                start = at if start is None else start
                t = at - start
                if t + 1e-6 >= next_t:
                    next_t += step * max(1, int((t - next_t) / step) + 1)
                    if pending is not None:
                        yield pending
                    pending, people = _sample(frame, t, index, rules, detector, engine, context)
                    if writer is not None:
                        writer.people, writer.events = people, pending.events
                if writer is not None:
                    writer.write(frame, t)
            if pending is not None:
                pending.events.extend(_event_json(e) for e in engine.close_all())
                yield pending
        finally:
            if writer is not None:
                writer.close()


def _frames(container: Any, stream: Any, path: Path) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        raise ReplayError(f"{path}: the video cannot be decoded further ({exc})") from None


def _sample(frame: av.VideoFrame, t: float, index: int, rules: CameraRules, detector: Detector,
            engine: RuleEngine, context: dict[int, CameraRules]) -> tuple[SampleResult, list[Track]]:
    """The sample's outcome, and the tracked people it shows (for the annotated copy)."""
    size = detector.input_size
    image = (frame.reformat(width=size[0], height=size[1], format="bgr24") if size else frame.reformat(format="bgr24")
             ).to_ndarray()
    sampled = SampledFrame(camera_id=rules.camera_id, image=image, captured_at=t, source_width=frame.width,
                           source_height=frame.height)
    detections = detect_batch(detector, [sampled], context)
    events = engine.process(rules.camera_id, t, detections, image=image)
    people = _people(detector, rules.camera_id)
    result = SampleResult(t=t, frame=index, people=[_person_json(p) for p in people],
                          events=[_event_json(e) for e in events if e.phase is not EventPhase.CAPPED])
    return result, people


def _people(detector: Detector, camera_id: int) -> list[Track]:
    people = getattr(detector, "people", None)  # only detectors that track people have them
    return list(people(camera_id)) if callable(people) else []


def _person_json(track: Track) -> dict[str, Any]:
    keypoints = track.keypoints
    return {
        "track": track.id,
        "box": [round(v, 4) for v in track.box],
        "score": round(track.score, 3),
        "keypoints": None if keypoints is None else [[round(x, 4), round(y, 4), round(s, 3)] for x, y, s in keypoints],
    }


def _event_json(event: Event) -> dict[str, Any]:
    return {"type": event.event_type, "zone": event.zone_name or None, "score": round(event.score, 3),
            "phase": "started" if event.phase is EventPhase.STARTED else "ended"}


class _Annotator:
    """Writes every frame with zones, the latest sample's people and recent events drawn on it."""

    def __init__(self, path: Path, source: Any, rules: CameraRules) -> None:
        self.rules = rules
        self.people: list[Track] = []
        self.events: list[dict[str, Any]] = []
        self._banner: list[tuple[float, str]] = []
        try:
            self.container = av.open(str(path), "w")
        except (av.error.FFmpegError, OSError) as exc:
            raise ReplayError(f"{path}: cannot write the annotated video ({exc})") from None
        rate = Fraction(source.average_rate or 25).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width = source.codec_context.width // 2 * 2
        self.stream.height = source.codec_context.height // 2 * 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}
        self._time_base = 1 / rate
        self.stream.codec_context.time_base = self._time_base
        self._index = 0

    def write(self, frame: av.VideoFrame, t: float) -> None:
        image = frame.reformat(width=self.stream.width, height=self.stream.height, format="bgr24").to_ndarray()
        self._draw(image, t)
        out = av.VideoFrame.from_ndarray(image, format="bgr24")
        out.pts, out.time_base = self._index, self._time_base
        self._index += 1
        for packet in self.stream.encode(out):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()

    def _draw(self, image: np.ndarray, t: float) -> None:
        height, width = image.shape[:2]
        thick = max(1, round(height / 360))

        def px(x: float, y: float) -> tuple[int, int]:
            return round(x * width), round(y * height)

        for zone in self.rules.zones:
            colour = ZONE_COLOURS.get(zone.kind, (255, 255, 255))
            points = np.array([px(x, y) for x, y in zone.polygon], np.int32)
            cv2.polylines(image, [points], True, colour, thick)
            cv2.putText(image, f"{zone.name} ({zone.kind})", tuple(points[0]), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thick, colour, thick)
        for person in self.people:
            draw_person(image, person.box, person.keypoints, box_thickness=thick, bone_thickness=thick)
            cv2.putText(image, f"#{person.id} {person.score:.2f}", px(person.box[0], person.box[1] - 0.01),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thick, BOX_COLOUR, thick)
        for event in self.events:
            if event["phase"] == "started":
                self._banner.append((t, f"{event['type']} in {event['zone'] or 'frame'} ({event['score']:.2f})"))
        self.events = []
        self._banner = [(at, text) for at, text in self._banner if t - at < EVENT_BANNER_SECONDS]
        for row, (_, text) in enumerate(self._banner):
            cv2.putText(image, text, (10, 30 + row * 28 * thick // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * thick,
                        (0, 0, 255), thick + 1)

