"""Synthetic reviewed alerts: concealment-like and browsing-like person tracks, with labels.

Used by the tests and the benchmark of detection.learning (never by the running system). Pure and
seeded: the same arguments give the same examples.

The scene is a person standing at a shelf zone, seen by a camera in front of them. Each example
is a `concealment` event (the rule fired: a hand went from the shelf to the waist) and its stored
track (the form of detection.tracking.tracks.TrackEvidence.to_json) from 2 s before the start
(the pre-roll) to 3 s after:

  reach    one hand goes into the shelf zone
  return   the hand comes back to the body
  final    concealment-like: low at the waist, inside the torso's width, hidden (low keypoint
           confidence), the shoulders turned away (narrower) and the head turned; browsing-like:
           held in front at the belly, in sight, the head bowed over it. Each example sits
           somewhere between the two (`behaviour`, 0 browsing .. 1 concealment).

The label (confirmed by staff) follows the behaviour with some doubt near the middle, so no model
can be perfect. The rule score barely does (both kinds met the rule). With `noise_labels` the
labels are coin flips unrelated to anything, the rule score included: nothing can be learned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detection.behaviour.rules import CONCEALMENT
from detection.inference.events import CHECKOUT, EXIT, SHELF, ZoneRule
from detection.tracking.tracks import KEYPOINT_NAMES, SKELETON

FPS = 5.0
PRE_SECONDS = 2.0
POST_SECONDS = 3.0
FIRST_START = 1_760_000_000.0  # epoch seconds of the first event
EVENT_SPACING_SECONDS = 3600.0

ZONES: tuple[ZoneRule, ...] = (
    ZoneRule(id=1, name="Shelf", polygon=((0.55, 0.1), (0.98, 0.1), (0.98, 0.7), (0.55, 0.7)), kind=SHELF),
    ZoneRule(id=2, name="Checkout", polygon=((0.02, 0.8), (0.3, 0.8), (0.3, 0.99), (0.02, 0.99)), kind=CHECKOUT),
    ZoneRule(id=3, name="Exit", polygon=((0.0, 0.3), (0.1, 0.3), (0.1, 0.7), (0.0, 0.7)), kind=EXIT),
)

# A person standing, facing the camera: (x, y) relative to the box centre, in box heights.
_STANDING = np.array([
    (0.0, -0.42), (0.03, -0.44), (-0.03, -0.44), (0.06, -0.43), (-0.06, -0.43),  # nose, eyes, ears
    (0.1, -0.3), (-0.1, -0.3), (0.12, -0.13), (-0.12, -0.13), (0.13, 0.02), (-0.13, 0.02),  # shoulders .. wrists
    (0.07, 0.02), (-0.07, 0.02), (0.07, 0.25), (-0.07, 0.25), (0.07, 0.47), (-0.07, 0.47),  # hips .. ankles
])
_NOSE, _L_EAR, _R_EAR, _L_SHOULDER, _R_SHOULDER, _L_ELBOW, _L_WRIST = 0, 3, 4, 5, 6, 7, 9


@dataclass(frozen=True)
class SimulatedAlert:
    track: dict[str, Any]
    zones: tuple[ZoneRule, ...]
    event_type: str
    rule_score: float
    event_start: float
    confirmed: bool
    behaviour: float  # 0 browsing-like .. 1 concealment-like


def simulate_alerts(count: int, *, seed: int, noise_labels: bool = False, confirmed_share: float = 0.4,
                    first_start: float = FIRST_START) -> list[SimulatedAlert]:
    """`count` reviewed concealment alerts, one an hour from `first_start`, in time order."""
    rng = np.random.default_rng(seed)
    alerts = []
    for i in range(count):
        behaviour = float(rng.uniform(0.0, 1.0))
        if noise_labels:
            confirmed = bool(rng.uniform() < confirmed_share)
        else:
            # Staff confirm what looks like concealment; near the middle they could go either way.
            confirmed = behaviour + float(rng.normal(0.0, 0.03)) > 1.0 - confirmed_share
        start = first_start + i * EVENT_SPACING_SECONDS + float(rng.uniform(0, 600))
        # The rules fired on both kinds; their score leans a little towards real thefts (not with noise labels).
        lean = 0.03 if confirmed and not noise_labels else 0.0
        rule_score = float(np.clip(rng.uniform(0.5, 0.85) + lean, 0.5, 1.0))
        alerts.append(SimulatedAlert(track=_track(rng, start, behaviour, track_id=i + 1), zones=ZONES,
                                     event_type=CONCEALMENT, rule_score=round(rule_score, 3), event_start=start,
                                     confirmed=confirmed, behaviour=behaviour))
    return alerts


def _track(rng: np.random.Generator, start: float, behaviour: float, *, track_id: int) -> dict[str, Any]:
    height = rng.uniform(0.35, 0.55)
    foot_x, foot_y = rng.uniform(0.5, 0.62), rng.uniform(0.78, 0.95)
    width = 0.42 * height
    shelf_x, shelf_y = rng.uniform(0.62, 0.9), rng.uniform(0.2, 0.6)  # where the hand reaches, in the frame
    reach_end = start - PRE_SECONDS + rng.uniform(0.6, 1.0)
    back_at = reach_end + rng.uniform(0.5, 0.8)  # the hand is at its final place from here (before the start)
    # The final pose, between browsing (0) and concealment (1).
    m = behaviour
    final_wrist = np.array([rng.normal(0.06, 0.015) * (1 - m) + rng.normal(0.01, 0.015) * m,
                            rng.normal(-0.06, 0.02) * (1 - m) + rng.normal(0.09, 0.02) * m])
    wrist_conf = (1 - m) * rng.uniform(0.7, 0.95) + m * rng.uniform(0.1, 0.35)
    turn = 0.35 * m * rng.uniform(0.6, 1.0)  # shoulders narrower as the person turns away
    bow = 0.04 * (1 - m) * rng.uniform(0.5, 1.0)  # the head bowed over the item
    points = []
    n = int(round((PRE_SECONDS + POST_SECONDS) * FPS))
    for k in range(n + 1):
        t = start - PRE_SECONDS + k / FPS + rng.normal(0.0, 0.004)
        fx, fy = foot_x + rng.normal(0.0, 0.004), foot_y + rng.normal(0.0, 0.003)
        h = height * (1 + rng.normal(0.0, 0.01))
        box = (fx - width / 2, fy - h, fx + width / 2, fy)
        cx, cy = fx, fy - h / 2
        if rng.uniform() < 0.08:  # pose not run on this frame
            points.append(_point(t, box, None))
            continue
        pose = _STANDING.copy()
        progress = float(np.clip((t - back_at + 0.5) / 0.5, 0.0, 1.0))  # 0 before the return, 1 once back
        pose[[_L_SHOULDER, _R_SHOULDER], 0] *= 1 - turn * progress
        pose[_NOSE, 1] += bow * progress
        conf = rng.uniform(0.6, 0.95, size=len(pose))
        conf[_L_EAR] *= 1 - 0.6 * m * progress
        if t < reach_end:  # reaching into the shelf
            a = float(np.clip((t - (start - PRE_SECONDS)) / max(reach_end - (start - PRE_SECONDS), 1e-3), 0.0, 1.0))
            target = np.array([(shelf_x - cx) / h, (shelf_y - cy) / h])
            pose[_L_WRIST] = (1 - a) * _STANDING[_L_WRIST] + a * target
            pose[_L_ELBOW] = (pose[_L_SHOULDER] + pose[_L_WRIST]) / 2
        else:  # coming back to the body, then held there
            a = float(np.clip((t - reach_end) / max(back_at - reach_end, 1e-3), 0.0, 1.0))
            target = np.array([(shelf_x - cx) / h, (shelf_y - cy) / h])
            pose[_L_WRIST] = (1 - a) * target + a * final_wrist
            pose[_L_ELBOW] = (pose[_L_SHOULDER] + pose[_L_WRIST]) / 2 + np.array([0.06, 0.04]) * a
            conf[_L_WRIST] = (1 - a) * conf[_L_WRIST] + a * wrist_conf
        pose += rng.normal(0.0, 0.008, size=pose.shape)
        keypoints = [(cx + x * h, cy + y * h, float(c)) for (x, y), c in zip(pose, conf)]
        points.append(_point(t, box, keypoints))
    return {"track_id": track_id, "keypoint_names": list(KEYPOINT_NAMES), "skeleton": [list(b) for b in SKELETON],
            "points": points}


def _point(t: float, box: tuple[float, float, float, float],
           keypoints: list[tuple[float, float, float]] | None) -> dict[str, Any]:
    return {"t": round(t, 3), "box": [round(float(v), 4) for v in box], "score": 0.8,
            "keypoints": None if keypoints is None else [[round(float(x), 4), round(float(y), 4), round(float(s), 3)]
                                                         for x, y, s in keypoints]}
