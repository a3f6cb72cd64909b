"""An event's features for the learned model: the person's track up to the event start, and zones.

Called by detection.learning.train (for each reviewed alert, from its stored track) and by
detection.learning.rescoring (for each event about to become an alert, from the same track form),
so training and re-scoring see exactly the same numbers. Pure: no ORM, no clock, no I/O.

Only what was known when the alert was raised counts: the track points up to the event's start
(the first sample that met the rule), never the rest of the event, which the stored track of a
reviewed alert also holds but a live event does not have yet.

Two parts:

  sequence  SEQUENCE_STEPS steps over the SEQUENCE_SECONDS before the start (the last step is the
            start), each step the latest track point of the last HOLD_SECONDS: the 17 keypoints
            relative to the person's box (centre at 0, box height 1, so the camera's distance and
            the person's place in the frame do not matter) with their confidences, whether a point
            and keypoints are there, the feet's movement and the box's growth relative to the
            start, the zone kinds the person is at, and whether each wrist is inside a shelf zone
  tabular   the rule score, the event type, seconds spent at each zone kind and whether visited,
            how long the person was tracked before the start, how often keypoints were seen and
            how often a wrist was in a shelf zone
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detection.behaviour.rules import (
    CONCEALMENT,
    EXIT_WITHOUT_CHECKOUT,
    PERSON_DWELL,
    RESTRICTED_ENTRY,
    shelf_zones_at,
)
from detection.inference.events import CHECKOUT, EXIT, RESTRICTED, SHELF, ZoneRule
from detection.tracking.tracks import LEFT_WRIST, RIGHT_WRIST, Box, box_foot

FEATURE_VERSION = 1  # stored with each model: a model is only used with the features it was trained on
SEQUENCE_SECONDS = 4.0
SEQUENCE_STEPS = 20  # 0.2 s a step: the detectors sample at 5 fps
HOLD_SECONDS = 0.6  # a point stands for the steps after it this long (a camera sampled at 2 fps or more)
START_TOLERANCE_SECONDS = 0.01  # stored times are rounded to the millisecond
PRESENCE_GAP_SECONDS = 1.5  # as the behaviour rules: a longer gap between points is not time spent there
DWELL_CAP_SECONDS = 30.0
SHELF_OVERLAP = 0.15  # as the behaviour rules: at a shelf when this much of the box overlaps it
KEYPOINT_MIN_SCORE = 0.3
MIN_BOX_HEIGHT = 0.02

ZONE_KINDS = (SHELF, CHECKOUT, EXIT, RESTRICTED)
EVENT_TYPES = (PERSON_DWELL, CONCEALMENT, EXIT_WITHOUT_CHECKOUT, RESTRICTED_ENTRY)
KEYPOINTS = 17

SEQUENCE_CHANNELS: tuple[str, ...] = (
    *(f"kp{i}_{axis}" for i in range(KEYPOINTS) for axis in ("x", "y", "conf")),
    "present", "has_keypoints", "foot_dx", "foot_dy", "log_height_ratio",
    *(f"at_{kind}" for kind in ZONE_KINDS), "left_wrist_in_shelf", "right_wrist_in_shelf",
)
TABULAR_FEATURES: tuple[str, ...] = (
    "rule_score", *(f"event_{name}" for name in EVENT_TYPES), "event_other",
    *(f"dwell_{kind}" for kind in ZONE_KINDS), *(f"visited_{kind}" for kind in ZONE_KINDS),
    "tracked_seconds", "keypoint_fraction", "wrist_in_shelf_fraction",
)
_KP_END = KEYPOINTS * 3
_PRESENT, _HAS_KP, _FOOT_DX, _FOOT_DY, _LOG_H = range(_KP_END, _KP_END + 5)
_AT_KIND = _KP_END + 5
_WRIST_IN_SHELF = _AT_KIND + len(ZONE_KINDS)


class TrackFormatError(ValueError):
    """A stored track that is not in the form detection.tracking.tracks.TrackEvidence.to_json writes."""


@dataclass(frozen=True)
class Features:
    sequence: np.ndarray  # float32 (SEQUENCE_STEPS, len(SEQUENCE_CHANNELS))
    tabular: np.ndarray  # float32 (len(TABULAR_FEATURES),)


@dataclass(frozen=True)
class _Point:
    t: float
    box: Box
    keypoints: tuple[tuple[float, float, float], ...] | None


def describe() -> dict[str, Any]:
    """What a model file records about its inputs."""
    return {"feature_version": FEATURE_VERSION, "sequence_seconds": SEQUENCE_SECONDS, "sequence_steps": SEQUENCE_STEPS,
            "sequence_channels": list(SEQUENCE_CHANNELS), "tabular_features": list(TABULAR_FEATURES)}


def event_features(*, track: Mapping[str, Any] | None, zones: Sequence[ZoneRule], event_type: str, rule_score: float,
                   event_start: float) -> Features:
    """The features of one event. `track` is the stored form (alerts.models.Alert.track), or None
    for an event without a person; `event_start` is epoch seconds."""
    points = [p for p in _points(track) if p.t <= event_start + START_TOLERANCE_SECONDS]
    zones = [z for z in zones if z.enabled and z.kind in ZONE_KINDS]
    sequence = np.zeros((SEQUENCE_STEPS, len(SEQUENCE_CHANNELS)), dtype=np.float32)
    tabular = np.zeros(len(TABULAR_FEATURES), dtype=np.float32)
    tabular[0] = float(rule_score)
    tabular[1 + (EVENT_TYPES.index(event_type) if event_type in EVENT_TYPES else len(EVENT_TYPES))] = 1.0
    if not points:
        return Features(sequence, tabular)

    kinds = [_kinds_at(p.box, zones) for p in points]
    wrists = [_wrists_in_shelf(p, zones) for p in points]
    reference = points[-1]
    ref_foot, ref_height = box_foot(reference.box), _height(reference.box)
    step = SEQUENCE_SECONDS / SEQUENCE_STEPS
    index = 0
    for i in range(SEQUENCE_STEPS):
        at = event_start - SEQUENCE_SECONDS + (i + 1) * step
        while index + 1 < len(points) and points[index + 1].t <= at + START_TOLERANCE_SECONDS:
            index += 1
        point = points[index]
        if point.t > at + START_TOLERANCE_SECONDS or point.t < at - HOLD_SECONDS:
            continue  # no point seen shortly before this step: it stays zero
        row = sequence[i]
        row[_PRESENT] = 1.0
        height = _height(point.box)
        if point.keypoints is not None:
            cx, cy = (point.box[0] + point.box[2]) / 2.0, (point.box[1] + point.box[3]) / 2.0
            row[_HAS_KP] = 1.0
            for k, (x, y, score) in enumerate(point.keypoints):
                row[3 * k:3 * k + 3] = ((x - cx) / height, (y - cy) / height, score)
        foot = box_foot(point.box)
        row[_FOOT_DX] = (foot[0] - ref_foot[0]) / ref_height
        row[_FOOT_DY] = (foot[1] - ref_foot[1]) / ref_height
        row[_LOG_H] = math.log(height / ref_height)
        for k, kind in enumerate(ZONE_KINDS):
            row[_AT_KIND + k] = kind in kinds[index]
        row[_WRIST_IN_SHELF:_WRIST_IN_SHELF + 2] = wrists[index]

    dwell = dict.fromkeys(ZONE_KINDS, 0.0)
    for (earlier, later), at_kinds in zip(zip(points, points[1:]), kinds):
        for kind in at_kinds:
            dwell[kind] += min(later.t - earlier.t, PRESENCE_GAP_SECONDS)
    offset = 1 + len(EVENT_TYPES) + 1
    for k, kind in enumerate(ZONE_KINDS):
        tabular[offset + k] = min(dwell[kind], DWELL_CAP_SECONDS) / DWELL_CAP_SECONDS
        tabular[offset + len(ZONE_KINDS) + k] = any(kind in at for at in kinds)
    offset += 2 * len(ZONE_KINDS)
    tabular[offset] = min(reference.t - points[0].t, DWELL_CAP_SECONDS) / DWELL_CAP_SECONDS
    tabular[offset + 1] = sum(p.keypoints is not None for p in points) / len(points)
    tabular[offset + 2] = sum(any(w) for w in wrists) / len(points)
    return Features(sequence, tabular)


def _height(box: Box) -> float:
    return max(box[3] - box[1], MIN_BOX_HEIGHT)


def _kinds_at(box: Box, zones: Sequence[ZoneRule]) -> frozenset[str]:
    """The zone kinds a person is at: standing in (feet), or for shelves also overlapping them."""
    foot = box_foot(box)
    kinds = {z.kind for z in zones if z.kind != SHELF and z.contains(*foot)}
    if shelf_zones_at(box, zones, SHELF_OVERLAP):
        kinds.add(SHELF)
    return frozenset(kinds)


def _wrists_in_shelf(point: _Point, zones: Sequence[ZoneRule]) -> tuple[float, float]:
    if point.keypoints is None:
        return 0.0, 0.0
    shelves = [z for z in zones if z.kind == SHELF]

    def inside(index: int) -> float:
        x, y, score = point.keypoints[index]  # type: ignore[index]  # checked above
        return float(score >= KEYPOINT_MIN_SCORE and any(z.contains(x, y) for z in shelves))

    return inside(LEFT_WRIST), inside(RIGHT_WRIST)


def _points(track: Mapping[str, Any] | None) -> list[_Point]:
    if track is None:
        return []
    try:
        raw = track["points"]
        points = []
        for item in raw:
            box = tuple(float(v) for v in item["box"])
            if len(box) != 4:
                raise TrackFormatError(f"a box has {len(box)} values, not 4")
            keypoints = item.get("keypoints")
            kps = None
            if keypoints is not None:
                kps = tuple((float(x), float(y), float(s)) for x, y, s in keypoints)
                if len(kps) != KEYPOINTS:
                    raise TrackFormatError(f"a point has {len(kps)} keypoints, not {KEYPOINTS}")
            points.append(_Point(t=float(item["t"]), box=(box[0], box[1], box[2], box[3]), keypoints=kps))
    except TrackFormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise TrackFormatError(f"not a stored person track ({exc.__class__.__name__}: {exc})") from None
    points.sort(key=lambda p: p.t)
    return points
