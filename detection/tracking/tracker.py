"""A small multi-person tracker: per camera, person boxes in, stable track ids out.

Called by the person detector once per sampled frame of a camera. Each track's box is predicted
forward at its recent velocity, detections are matched to predictions by IoU (with a fallback on
centre distance for a fast walker whose boxes no longer overlap) through an optimal assignment
(scipy's `linear_sum_assignment`), and a track survives `max_age` seconds unseen, so a person
who passes behind a shelf end or another shopper keeps their id.

Like ByteTrack, a detection needs `new_track_score` to start a track, but a weaker one may keep
an existing track going; a track is reported only once it has been seen `min_hits` times, so a
one-frame false box never becomes a person. The supervision library's ByteTrack was not used:
it installs matplotlib, pillow and its own av/opencv requirements for one class.

Pure: no clock (time is the frame's), no I/O.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from detection.tracking.tracks import Box, Keypoint, TrackEvidence, TrackPoint

UNMATCHED = 1e6


@dataclass(frozen=True)
class PersonBox:
    """One person found by the detector in one frame."""

    box: Box
    score: float


@dataclass
class Track:
    id: int
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box centre, per second
    history: deque[TrackPoint] = field(default_factory=deque)

    @property
    def keypoints(self) -> tuple[Keypoint, ...] | None:
        return self.history[-1].keypoints if self.history else None

    def predicted(self, at: float) -> Box:
        dt = min(max(at - self.last_seen, 0.0), 1.0)  # never extrapolate a lost track far
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

    def evidence(self) -> TrackEvidence:
        return TrackEvidence(self.id, tuple(self.history))

    def set_keypoints(self, keypoints: tuple[Keypoint, ...] | None) -> None:
        """Attach pose to this frame's point (pose runs after tracking, on chosen people only)."""
        if self.history:
            last = self.history[-1]
            self.history[-1] = TrackPoint(last.at, last.box, last.score, keypoints)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _cost(track_box: Box, det_box: Box, min_iou: float) -> float:
    overlap = iou(track_box, det_box)
    if overlap >= min_iou:
        return 1.0 - overlap
    # No useful overlap: accept a detection whose centre is within half the track's box height,
    # ranked after every overlapping pair.
    height = max(track_box[3] - track_box[1], 1e-6)
    dist = float(np.hypot((track_box[0] + track_box[2] - det_box[0] - det_box[2]) / 2,
                          (track_box[1] + track_box[3] - det_box[1] - det_box[3]) / 2))
    return 1.0 + dist / height if dist < 0.5 * height else UNMATCHED


class Tracker:
    """Tracks of one camera."""

    def __init__(self, *, max_age: float = 2.0, min_hits: int = 2, min_iou: float = 0.1,
                 new_track_score: float = 0.5, history_seconds: float = 40.0) -> None:
        self.max_age = max_age
        self.min_hits = min_hits
        self.min_iou = min_iou
        self.new_track_score = new_track_score
        self.history_seconds = history_seconds
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_at: float | None = None

    def update(self, at: float, people: Sequence[PersonBox]) -> list[Track]:
        """Match this frame's people to the tracks; returns the confirmed tracks seen in this frame."""
        if self._last_at is not None and at < self._last_at:
            self.tracks.clear()  # the clock went back (a replayed file restarted): start afresh
        self._last_at = at
        self.tracks = [t for t in self.tracks if at - t.last_seen <= self.max_age]
        matched_tracks: set[int] = set()
        matched_people: set[int] = set()
        if self.tracks and people:
            cost = np.array([[_cost(t.predicted(at), p.box, self.min_iou) for p in people] for t in self.tracks])
            rows, columns = linear_sum_assignment(cost)
            for ti, pi in zip(rows.tolist(), columns.tolist(), strict=True):
                if cost[ti, pi] < UNMATCHED:
                    self._observe(self.tracks[ti], at, people[pi])
                    matched_tracks.add(ti)
                    matched_people.add(pi)
        for pi, person in enumerate(people):
            if pi not in matched_people and person.score >= self.new_track_score:
                track = Track(id=self._next_id, box=person.box, score=person.score, first_seen=at, last_seen=at)
                track.history.append(TrackPoint(at, person.box, person.score))
                self._next_id += 1
                self.tracks.append(track)
        return [t for t in self.tracks if t.last_seen == at and t.hits >= self.min_hits]

    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks if t.hits >= self.min_hits]

    def _observe(self, track: Track, at: float, person: PersonBox) -> None:
        dt = at - track.last_seen
        if dt > 0:
            old_cx, old_cy = (track.box[0] + track.box[2]) / 2, (track.box[1] + track.box[3]) / 2
            new_cx, new_cy = (person.box[0] + person.box[2]) / 2, (person.box[1] + person.box[3]) / 2
            vx, vy = (new_cx - old_cx) / dt, (new_cy - old_cy) / dt
            # Smoothed, so one jittery box does not throw the next prediction off.
            track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
        track.box, track.score, track.last_seen = person.box, person.score, at
        track.hits += 1
        track.history.append(TrackPoint(at, person.box, person.score))
        while track.history and at - track.history[0].at > self.history_seconds:
            track.history.popleft()
