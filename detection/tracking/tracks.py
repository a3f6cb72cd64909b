"""What is kept of a tracked person: boxes and body keypoints over time, nothing else.

A `TrackEvidence` travels with a person detection through the rules to the alert, which stores
it (alerts.emitter) so the detail page can draw what the system saw over the clip. Privacy: only
boxes and the 17 body keypoints below; never a crop of the person, never a face descriptor.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Box = tuple[float, float, float, float]  # normalized (x1, y1, x2, y2)
Keypoint = tuple[float, float, float]  # normalized (x, y) and a confidence in [0, 1]

# COCO's 17 body keypoints, the order of every keypoint list in this project.
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_WRIST, RIGHT_WRIST, LEFT_HIP, RIGHT_HIP = 0, 5, 6, 9, 10, 11, 12
KEYPOINT_MIN_SCORE = 0.3  # keypoints less certain than this are not drawn (thumbnails, replays, the page)
# Bones drawn as a skeleton (pairs of keypoint indices), shared with the detail page's overlay.
SKELETON: tuple[tuple[int, int], ...] = (
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12),
    (11, 13), (13, 15), (12, 14), (14, 16), (0, 5), (0, 6),
)


@dataclass(frozen=True)
class TrackPoint:
    at: float  # epoch seconds of the sampled frame
    box: Box
    score: float  # the person detector's confidence
    keypoints: tuple[Keypoint, ...] | None = None  # 17, in KEYPOINT_NAMES order; None where pose was not run


@dataclass(frozen=True)
class TrackEvidence:
    """One person's recent history on one camera, oldest point first."""

    track_id: int
    points: tuple[TrackPoint, ...]

    def between(self, start: float, end: float) -> TrackEvidence:
        return TrackEvidence(self.track_id, tuple(p for p in self.points if start <= p.at <= end))

    def to_json(self) -> dict[str, Any]:
        """The form stored on an alert, self-describing so readers need no code from here:
        {"track_id", "keypoint_names", "skeleton" (bones as index pairs), "points": [{"t", "box",
        "score", "keypoints"}]}."""
        return {
            "track_id": self.track_id,
            "keypoint_names": list(KEYPOINT_NAMES),
            "skeleton": [list(bone) for bone in SKELETON],
            "points": [
                {
                    "t": round(p.at, 3),
                    "box": [round(v, 4) for v in p.box],
                    "score": round(p.score, 3),
                    "keypoints": None if p.keypoints is None else [[round(x, 4), round(y, 4), round(s, 3)]
                                                                    for x, y, s in p.keypoints],
                }
                for p in self.points
            ],
        }


def box_center(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def box_foot(box: Sequence[float]) -> tuple[float, float]:
    """Where a person stands: the bottom centre of their box."""
    return (box[0] + box[2]) / 2.0, box[3]
