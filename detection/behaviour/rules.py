"""Retail behaviour rules: tracked people and their body keypoints over zone kinds, to detections.

Called by the person detector once per sampled frame of a camera, with the people tracked in it.
Each rule emits one scored `Detection` per frame while its condition holds, naming the zone it
happened in; the rule engine (detection.inference.events) then applies the thresholds, K-of-N smoothing,
event lifecycle and dedup exactly as for any detector. A score starts at 0.5 (the default
threshold) when the rule's condition is first met and grows to 1.0 with the evidence, so a
higher threshold asks for more evidence.

| event | condition | score grows with |
|---|---|---|
| person_dwell | at a shelf zone for `dwell_seconds` | time past the dwell time (1.0 at twice it) |
| concealment | a wrist seen in a shelf zone, then within `concealment_window_seconds` at the person's waist or pocket region (inside the torso's width, below the chest), in sight or behind the body, not at a checkout | how long it stays there (1.0 after `concealment_hold_seconds`) |
| exit_without_checkout | a person who spent `shelf_visit_seconds` at shelves stands in an exit zone, never having stood in a checkout zone | 0.6, +0.2 after a concealment, +0.2 by time at shelves (full at 10 s) |
| restricted_entry | standing in a restricted zone | time inside (1.0 after `restricted_seconds`) |

Where a person stands is their box's bottom centre (feet); a person is at a shelf when that point
is in the shelf zone or `shelf_overlap` of their box overlaps it (shelves are drawn over the
merchandise, which a person stands in front of). People standing in an ignore zone are skipped.

Pure: no ORM, no clock (time is the frame's), no I/O, so each rule is tested with a few lines of
synthetic tracks.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from detection.detectors.base import Detection
from detection.inference.events import CHECKOUT, EXIT, RESTRICTED, SHELF, CameraRules, ZoneRule
from detection.tracking.tracks import (
    LEFT_HIP,
    LEFT_SHOULDER,
    LEFT_WRIST,
    RIGHT_HIP,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
    Box,
    Keypoint,
    TrackEvidence,
    box_foot,
)

PERSON_DWELL = "person_dwell"
CONCEALMENT = "concealment"
EXIT_WITHOUT_CHECKOUT = "exit_without_checkout"
RESTRICTED_ENTRY = "restricted_entry"
EVENT_TYPES = (PERSON_DWELL, CONCEALMENT, EXIT_WITHOUT_CHECKOUT, RESTRICTED_ENTRY)

_GRID = [(i + 0.5) / 5 for i in range(5)]  # 5 x 5 sample points in a box, for shelf overlap


@dataclass(frozen=True)
class BehaviourConfig:
    dwell_seconds: float = 20.0
    shelf_visit_seconds: float = 1.0
    concealment_window_seconds: float = 3.0
    concealment_hold_seconds: float = 1.0
    restricted_seconds: float = 2.0
    presence_gap_seconds: float = 1.5  # missing from a zone this long: they left it
    forget_seconds: float = 10.0  # a person unseen this long is forgotten
    keypoint_min_score: float = 0.3
    shelf_overlap: float = 0.15


@dataclass(frozen=True)
class PersonView:
    """What the rules see of one tracked person in one frame."""

    track_id: int
    box: Box
    keypoints: tuple[Keypoint, ...] | None = None
    evidence: TrackEvidence | None = None


@dataclass
class _Person:
    last_seen: float
    shelf_since: dict[int, float] = field(default_factory=dict)  # shelf zone -> start of this stay
    shelf_last: dict[int, float] = field(default_factory=dict)
    shelf_seconds: float = 0.0
    visited_checkout: bool = False
    restricted_since: dict[int, float] = field(default_factory=dict)
    reach: dict[int, tuple[int, float]] = field(default_factory=dict)  # wrist -> (shelf zone, last time in it)
    conceal_since: float | None = None
    concealed: bool = False


class BehaviourRules:
    """The behaviour state of one camera's people."""

    def __init__(self, config: BehaviourConfig | None = None) -> None:
        self.config = config or BehaviourConfig()
        self._people: dict[int, _Person] = {}

    def step(self, camera: CameraRules, at: float, people: Sequence[PersonView]) -> list[Detection]:
        zones = [z for z in camera.zones if z.enabled]
        detections: list[Detection] = []
        for person in people:
            if camera.ignored(*box_foot(person.box)):
                continue
            state = self._people.get(person.track_id)
            if state is None:
                state = self._people[person.track_id] = _Person(last_seen=at)
            detections.extend(self._person_step(camera.camera_id, zones, at, person, state))
            state.last_seen = at
        for track_id in [t for t, s in self._people.items() if at - s.last_seen > self.config.forget_seconds]:
            del self._people[track_id]
        return detections

    def _person_step(self, camera_id: int, zones: list[ZoneRule], at: float, person: PersonView,
                     state: _Person) -> list[Detection]:
        cfg = self.config
        foot = box_foot(person.box)
        standing: dict[str, list[ZoneRule]] = {z.kind: [] for z in zones}  # kind -> zones the person stands in
        for zone in zones:
            if zone.contains(*foot):
                standing.setdefault(zone.kind, []).append(zone)
        at_shelves = shelf_zones_at(person.box, zones, cfg.shelf_overlap)
        at_checkout = bool(standing.get(CHECKOUT))
        state.visited_checkout = state.visited_checkout or at_checkout
        found: list[Detection] = []

        def emit(event_type: str, zone: ZoneRule, score: float) -> None:
            found.append(Detection(camera_id, event_type, min(1.0, max(0.0, score)), person.box, zone.id,
                                   evidence=person.evidence))

        # Dwell at shelves.
        if at_shelves:
            state.shelf_seconds += min(at - state.last_seen, cfg.presence_gap_seconds)
        for zone in at_shelves:
            state.shelf_since.setdefault(zone.id, at)
            state.shelf_last[zone.id] = at
        for zone_id in [z for z, last in state.shelf_last.items() if at - last > cfg.presence_gap_seconds]:
            del state.shelf_last[zone_id], state.shelf_since[zone_id]
        for zone in at_shelves:
            dwell = at - state.shelf_since[zone.id]
            if dwell >= cfg.dwell_seconds:
                emit(PERSON_DWELL, zone, 0.5 + 0.5 * (dwell - cfg.dwell_seconds) / max(cfg.dwell_seconds, 1e-6))

        # Concealment: reach into a shelf, then the hand goes to the body.
        concealing_in = self._concealment(zones, at, person, state) if not at_checkout else None
        if concealing_in is not None:
            state.conceal_since = state.conceal_since if state.conceal_since is not None else at
            state.concealed = True
            hold = at - state.conceal_since
            emit(CONCEALMENT, concealing_in, 0.5 + 0.5 * hold / max(cfg.concealment_hold_seconds, 1e-6))
        else:
            state.conceal_since = None

        # Leaving with merchandise: shelves, then an exit, never a checkout.
        if not state.visited_checkout and state.shelf_seconds >= cfg.shelf_visit_seconds:
            for zone in standing.get(EXIT, []):
                emit(EXIT_WITHOUT_CHECKOUT, zone,
                     0.6 + (0.2 if state.concealed else 0.0) + 0.2 * min(1.0, state.shelf_seconds / 10.0))

        # Staff-only areas.
        inside = standing.get(RESTRICTED, [])
        for zone in inside:
            since = state.restricted_since.setdefault(zone.id, at)
            emit(RESTRICTED_ENTRY, zone, 0.5 + 0.5 * (at - since) / max(cfg.restricted_seconds, 1e-6))
        for zone_id in [z for z in state.restricted_since if z not in {zone.id for zone in inside}]:
            del state.restricted_since[zone_id]
        return found

    def _concealment(self, zones: list[ZoneRule], at: float, person: PersonView, state: _Person) -> ZoneRule | None:
        """The shelf zone a wrist just reached into, if that wrist is now at the body; else None."""
        cfg = self.config
        keypoints = person.keypoints
        if keypoints is None:
            return None
        shelves = [z for z in zones if z.kind == SHELF]
        region = _pocket_region(keypoints, cfg.keypoint_min_score)
        result = None
        for wrist in (LEFT_WRIST, RIGHT_WRIST):
            x, y, score = keypoints[wrist]
            # A hand out of sight still gets a position from the pose model, inferred from the arm:
            # inside the region it is behind the body or in a pocket, either way it counts. A hand
            # at the body is never a reach, even where the shelf zone is drawn behind the person.
            at_body = region is not None and region[0] <= x <= region[2] and region[1] <= y <= region[3]
            visible = score >= cfg.keypoint_min_score
            reached = None if at_body else next((z for z in shelves if visible and z.contains(x, y)), None)
            if reached is not None:
                state.reach[wrist] = (reached.id, at)
                continue
            last = state.reach.get(wrist)
            if at_body and last is not None and at - last[1] <= cfg.concealment_window_seconds:
                result = next((z for z in shelves if z.id == last[0]), result)
        return result


def _pocket_region(keypoints: Sequence[Keypoint], min_score: float) -> Box | None:
    """The waist and pocket area: inside the torso's width, from a third of the way down from the
    shoulders to a third of the torso's height below the hips. None when the torso is not seen."""
    torso = [keypoints[i] for i in (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)]
    if any(score < min_score for _, _, score in torso):
        return None
    xs = [x for x, _, _ in torso]
    shoulder_y = (keypoints[LEFT_SHOULDER][1] + keypoints[RIGHT_SHOULDER][1]) / 2
    hip_y = (keypoints[LEFT_HIP][1] + keypoints[RIGHT_HIP][1]) / 2
    height = hip_y - shoulder_y
    if height <= 0:
        return None  # lying down or a bad pose: no waist to speak of
    return (min(xs), shoulder_y + height / 3, max(xs), hip_y + height / 3)


def shelf_zones_at(box: Box, zones: Sequence[ZoneRule], min_overlap: float) -> list[ZoneRule]:
    """The shelf zones a person is at: standing in one, or with `min_overlap` of their box over it."""
    foot = box_foot(box)
    return [z for z in zones if z.kind == SHELF and (z.contains(*foot) or _overlap(box, z) >= min_overlap)]


def _overlap(box: Box, zone: ZoneRule) -> float:
    """The fraction of the box inside the zone, on a 5 x 5 grid of points."""
    x1, y1, x2, y2 = box
    inside = sum(zone.contains(x1 + (x2 - x1) * fx, y1 + (y2 - y1) * fy) for fx in _GRID for fy in _GRID)
    return inside / (len(_GRID) ** 2)
