"""The motion baseline: per-camera background subtraction, scored per zone. Needs no weights.

The background is a running average that adapts over `background_seconds`, slow enough that a
person standing at a shelf stays foreground for the loitering dwell time. A zone's score is the
moving fraction of its area, scaled so `full_activity` of the zone scores 1.0.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detection.detectors.base import Box, Detection, Detector, DetectorConfigError
from detection.detectors.registry import register
from detection.inference.events import IGNORE, CameraRules, ZoneRule

if TYPE_CHECKING:
    from detection.capture.stream import SampledFrame

logger = logging.getLogger(__name__)

ZONE_ACTIVITY = "zone_activity"
LOITERING = "loitering"
_KERNEL = np.ones((3, 3), np.uint8)


@dataclass
class _Presence:
    since: float
    last_seen: float


@dataclass
class _CameraState:
    background: np.ndarray
    last_at: float
    masks: dict[tuple[int | None, tuple[tuple[float, float], ...]], tuple[np.ndarray, int]] = field(default_factory=dict)
    presence: dict[int | None, _Presence] = field(default_factory=dict)


@register("motion")
class MotionDetector(Detector):
    event_types = (ZONE_ACTIVITY, LOITERING)

    def __init__(self, *, input_size: tuple[int, int] = (320, 180), pixel_threshold: float = 25.0,
                 full_activity: float = 0.25, background_seconds: float = 60.0, presence_score: float = 0.2,
                 dwell_seconds: float = 20.0, presence_gap_seconds: float = 1.0) -> None:
        if not 0.0 < full_activity <= 1.0:
            raise DetectorConfigError(f"motion detector: full_activity {full_activity} must be in (0, 1].")
        if background_seconds <= 0:
            raise DetectorConfigError(f"motion detector: background_seconds {background_seconds} must be positive.")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.pixel_threshold = float(pixel_threshold)
        self.full_activity = float(full_activity)
        self.background_seconds = float(background_seconds)
        self.presence_score = float(presence_score)
        self.dwell_seconds = float(dwell_seconds)
        # A person's mask flickers from sample to sample; a short gap does not end their presence.
        self.presence_gap_seconds = float(presence_gap_seconds)
        self._cameras: dict[int, _CameraState] = {}

    def forget(self, camera_id: int) -> None:
        self._cameras.pop(camera_id, None)

    def detect(self, frames: Sequence[SampledFrame], context: Mapping[int, CameraRules]) -> list[Detection]:
        detections: list[Detection] = []
        for frame in frames:
            rules = context.get(frame.camera_id)
            if rules is not None:
                detections.extend(self._detect_one(frame, rules))
        return detections

    def _detect_one(self, frame: SampledFrame, rules: CameraRules) -> list[Detection]:
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image H x W x 3, got shape {image.shape}")
        if (image.shape[1], image.shape[0]) != self.input_size:
            image = cv2.resize(image, self.input_size, interpolation=cv2.INTER_AREA)
        # Colour, not grey: a red shirt can have the same brightness as a grey floor.
        blurred = cv2.GaussianBlur(image, (5, 5), 0).astype(np.float32)
        at = frame.captured_at
        state = self._cameras.get(frame.camera_id)
        if state is None or at < state.last_at or at - state.last_at > self.background_seconds:
            # First frame, clock jump or a long outage: the old background no longer describes the scene.
            self._cameras[frame.camera_id] = _CameraState(background=blurred, last_at=at)
            return []
        moving = (cv2.absdiff(blurred, state.background).max(axis=2) > self.pixel_threshold).astype(np.uint8)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, _KERNEL)
        for mask_zone in rules.zones:
            if mask_zone.kind == IGNORE and mask_zone.enabled:  # a mask: motion inside counts nowhere
                moving[self._mask(state, mask_zone, moving.shape)[0] > 0] = 0
        if at > state.last_at:  # the same sample again (a retried batch) must not learn twice
            alpha = 1.0 - math.exp(-(at - state.last_at) / self.background_seconds)
            cv2.accumulateWeighted(blurred, state.background, alpha)
            state.last_at = at

        targets: list[ZoneRule | None] = (
            [z for z in rules.zones if z.watches(ZONE_ACTIVITY) or z.watches(LOITERING)] if rules.zones else [None]
        )
        detections = []
        height, width = moving.shape
        for zone in targets:
            mask, area = self._mask(state, zone, (height, width))
            if area == 0:
                continue
            inside = cv2.bitwise_and(moving, mask)
            count = cv2.countNonZero(inside)
            score = min(1.0, count / area / self.full_activity)
            zone_id = None if zone is None else zone.id
            box = _box(inside, width, height) if count else None
            if score > 0 and (zone is None or zone.watches(ZONE_ACTIVITY)):
                detections.append(Detection(frame.camera_id, ZONE_ACTIVITY, score, box, zone_id))
            if zone is None or zone.watches(LOITERING):
                dwell = self._presence(state, zone_id, at, score)
                if dwell is not None and dwell >= self.dwell_seconds:
                    detections.append(Detection(frame.camera_id, LOITERING, score, box, zone_id))
        return detections

    def _presence(self, state: _CameraState, zone_id: int | None, at: float, score: float) -> float | None:
        """Seconds of continuous presence in the zone so far, or None when nobody is there."""
        presence = state.presence.get(zone_id)
        if score >= self.presence_score and score > 0:
            if presence is None:
                presence = state.presence[zone_id] = _Presence(since=at, last_seen=at)
            presence.last_seen = at
            return at - presence.since
        if presence is not None and at - presence.last_seen > self.presence_gap_seconds:
            del state.presence[zone_id]
            return None
        return None

    @staticmethod
    def _mask(state: _CameraState, zone: ZoneRule | None, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        key = (None, ()) if zone is None else (zone.id, zone.polygon)
        cached = state.masks.get(key)
        if cached is not None and cached[0].shape == shape:
            return cached
        if len(state.masks) > 64:
            state.masks.clear()  # zones were edited many times: drop masks of old polygons
        height, width = shape
        mask = np.zeros(shape, np.uint8)
        if zone is None:
            mask[:] = 1
        else:
            points = np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in zone.polygon], np.int32)
            cv2.fillPoly(mask, [points], 1)
        state.masks[key] = (mask, cv2.countNonZero(mask))
        return state.masks[key]


def _box(inside: np.ndarray, width: int, height: int) -> Box:
    x, y, w, h = cv2.boundingRect(inside)
    return (x / width, y / height, min(1.0, (x + w) / width), min(1.0, (y + h) / height))
