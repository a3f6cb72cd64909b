"""The detector interface: a batch of sampled frames in (one per camera), detections out.

Detectors are pure: no database, no network, no wall clock. Everything they know about a camera
(its zones) arrives as frozen `CameraRules`, built once from the database by a selector. Time
comes from the frames' `captured_at`, so a detector behaves the same in a test as on a live feed.
"""
from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from detection.capture.stream import SampledFrame
    from detection.inference.events import CameraRules
    from detection.tracking.tracks import TrackEvidence

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One scored observation on one camera's frame.

    `box` is normalized (x1, y1, x2, y2) in [0, 1] or None for a frame-level score. `zone_id` is
    set by detectors that score zones themselves (motion, person); otherwise the rules place the
    detection in a zone from its box. `evidence` is the person's track behind it (person detector).
    """

    camera_id: int
    event_type: str
    score: float
    box: Box | None = None
    zone_id: int | None = None
    evidence: TrackEvidence | None = field(default=None, compare=False, repr=False)


class DetectorConfigError(ImproperlyConfigured):
    """A detector cannot start: unknown name, missing or broken model file, bad option."""


class Detector(ABC):
    """A detector backend. One instance serves every camera of a process that uses it.

    `input_size` is the (width, height) the capture stage downscales sampled frames to, or None
    when any size works. `frames_needed` is how many consecutive samples of a camera one
    prediction reads (1 for frame classifiers); a detector keeps that history itself.
    """

    name: ClassVar[str] = ""
    event_types: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    frames_needed: int = 1
    needs_zones: ClassVar[bool] = False  # raises nothing on a camera without zones (their kinds give meaning)

    @abstractmethod
    def detect(self, frames: Sequence[SampledFrame], context: Mapping[int, CameraRules]) -> list[Detection]:
        """Score one sampled frame per camera. `context` maps camera id to its rules (zones)."""

    def forget(self, camera_id: int) -> None:
        """Drop what the detector remembers about a camera (it reconnected, or was removed)."""

    def close(self) -> None:
        """Release resources at shutdown."""


def detect_batch(detector: Detector, frames: Sequence[SampledFrame], context: Mapping[int, CameraRules]) -> list[Detection]:
    """Run a detector on one batch without letting one camera's failure stop the others.

    This is the inference loop's guard: an exception in a batch is retried camera by camera, so
    the failing camera is named in the log and skipped while the rest go on; detections with a
    NaN or out-of-range score or a malformed box are logged with their camera and dropped.
    """
    try:
        detections = detector.detect(frames, context)
    except Exception as exc:  # the inference loop's top for this batch
        if len(frames) == 1:
            logger.exception("detector failed detector=%s camera=%s: frame skipped", detector.name, frames[0].camera_id)
            return []
        logger.warning("detector failed on a batch detector=%s cameras=%s (%s: %s): retrying camera by camera",
                       detector.name, [f.camera_id for f in frames], type(exc).__name__, exc)
        detections = []
        for frame in frames:
            try:
                detections.extend(detector.detect([frame], context))
            except Exception:
                logger.exception("detector failed detector=%s camera=%s: frame skipped", detector.name, frame.camera_id)
    return [d for d in detections if detection_is_valid(d, detector.name)]


def detection_is_valid(detection: Detection, detector_name: str = "") -> bool:
    score = detection.score
    if not isinstance(score, (int, float)) or math.isnan(score) or not 0.0 <= score <= 1.0:
        logger.warning("detector output skipped detector=%s camera=%s event_type=%s: score %r is not in [0, 1]",
                       detector_name, detection.camera_id, detection.event_type, score)
        return False
    box = detection.box
    if box is not None:
        if (
            len(box) != 4
            or any(not isinstance(v, (int, float)) or math.isnan(v) for v in box)
            or not (0.0 <= box[0] <= box[2] <= 1.0 and 0.0 <= box[1] <= box[3] <= 1.0)
        ):
            logger.warning("detector output skipped detector=%s camera=%s event_type=%s: box %r is not a normalized "
                           "(x1, y1, x2, y2)", detector_name, detection.camera_id, detection.event_type, box)
            return False
    return True
