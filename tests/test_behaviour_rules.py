"""Retail behaviour rules: each event fires on synthetic tracks and poses when it should, and not otherwise."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from detection.behaviour.rules import (
    CONCEALMENT,
    EXIT_WITHOUT_CHECKOUT,
    PERSON_DWELL,
    RESTRICTED_ENTRY,
    BehaviourConfig,
    BehaviourRules,
    PersonView,
)
from detection.detectors.base import Detection
from detection.inference.events import CameraRules, Event, EventPhase, RuleConfig, RuleEngine, ZoneRule, zones_for
from detection.tracking.tracker import PersonBox, Tracker
from detection.tracking.tracks import KEYPOINT_NAMES, Box, Keypoint, TrackEvidence, TrackPoint

T0 = 1_000.0
STEP = 0.2  # 5 samples per second


def at(n: int) -> float:
    return T0 + n * STEP


def rect(x1: float, y1: float, x2: float, y2: float) -> tuple[tuple[float, float], ...]:
    return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))


# A typical aisle camera, normalized coordinates with y going down.
SHELF = ZoneRule(1, "Wall shelf", rect(0.0, 0.0, 0.3, 0.4), kind="shelf")  # the merchandise, upper left
CHECKOUT = ZoneRule(2, "Till", rect(0.35, 0.78, 0.65, 1.0), kind="checkout")  # floor, bottom middle
EXIT = ZoneRule(3, "Door", rect(0.85, 0.45, 1.0, 1.0), kind="exit")  # floor, right
RESTRICTED = ZoneRule(4, "Stockroom", rect(0.7, 0.0, 1.0, 0.3), kind="restricted")  # top right
MIRROR = ZoneRule(5, "Mirror", rect(0.9, 0.0, 1.0, 0.3), kind="ignore")  # on the stockroom door
CAMERA = CameraRules(7, "Aisle 3", (SHELF, CHECKOUT, EXIT, RESTRICTED, MIRROR))


def box_at(cx: float, foot_y: float, *, width: float = 0.12, height: float = 0.42) -> Box:
    """A standing person's box by where their feet are."""
    return (cx - width / 2, foot_y - height, cx + width / 2, foot_y)


AT_SHELF = box_at(0.16, 0.72)  # head and shoulders over the shelf zone, feet on the aisle floor
MIDDLE = box_at(0.5, 0.72)  # in no zone
IN_EXIT = box_at(0.9, 0.72)
AT_TILL = box_at(0.5, 0.9)
IN_STOCKROOM = box_at(0.78, 0.25, width=0.06, height=0.25)
IN_MIRROR = box_at(0.95, 0.25, width=0.06, height=0.25)  # a reflection, also inside the stockroom zone
REACH = (0.12, 0.2)  # a hand on the wall shelf, above AT_SHELF's head


def pose(box: Box, *, left_wrist: tuple[float, float] | None = None,
         right_wrist: tuple[float, float] | None = None, score: float = 0.9,
         torso_score: float | None = None, wrist_score: float | None = None) -> tuple[Keypoint, ...]:
    """A standing person facing the camera: shoulders at 25% of the box's height, hips at 55%, arms
    hanging beside the body unless a wrist is put somewhere."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1

    def p(fx: float, fy: float) -> tuple[float, float]:
        return (x1 + fx * w, y1 + fy * h)

    where = {
        "nose": p(0.5, 0.08), "left_eye": p(0.55, 0.06), "right_eye": p(0.45, 0.06),
        "left_ear": p(0.6, 0.08), "right_ear": p(0.4, 0.08),
        "left_shoulder": p(0.7, 0.25), "right_shoulder": p(0.3, 0.25),
        "left_elbow": p(0.85, 0.4), "right_elbow": p(0.15, 0.4),
        "left_wrist": left_wrist or p(0.9, 0.55), "right_wrist": right_wrist or p(0.1, 0.55),
        "left_hip": p(0.65, 0.55), "right_hip": p(0.35, 0.55),
        "left_knee": p(0.65, 0.78), "right_knee": p(0.35, 0.78),
        "left_ankle": p(0.65, 0.97), "right_ankle": p(0.35, 0.97),
    }
    torso = {"left_shoulder", "right_shoulder", "left_hip", "right_hip"}

    def confidence(name: str) -> float:
        if name in torso and torso_score is not None:
            return torso_score
        if name.endswith("wrist") and wrist_score is not None:
            return wrist_score
        return score

    return tuple((*where[name], confidence(name)) for name in KEYPOINT_NAMES)


def pocket(box: Box) -> tuple[float, float]:
    """The front trouser pocket: inside the torso's width, at the hips."""
    return (box[0] + 0.6 * (box[2] - box[0]), box[1] + 0.55 * (box[3] - box[1]))


def chest(box: Box) -> tuple[float, float]:
    """The upper third of the torso: a hand holding a product up to read it."""
    return (box[0] + 0.5 * (box[2] - box[0]), box[1] + 0.3 * (box[3] - box[1]))


def beside(box: Box) -> tuple[float, float]:
    """Hanging at hip height but outside the torso's width, away from the shelf."""
    return (box[0] + 0.95 * (box[2] - box[0]), box[1] + 0.55 * (box[3] - box[1]))


Frame = tuple[Box, tuple[Keypoint, ...] | None] | None  # None: the person is not seen


def stand(box: Box, frames: int, **pose_options: Any) -> list[Frame]:
    """Still for `frames` frames; with pose options, with a pose (pose() arguments) in each."""
    keypoints = pose(box, **pose_options) if pose_options else None
    return [(box, keypoints)] * frames


def walk(start: Box, end: Box, frames: int) -> list[Frame]:
    """Straight from start to end, arriving on the last frame."""
    out: list[Frame] = []
    for i in range(1, frames + 1):
        x1, y1, x2, y2 = (a + (b - a) * i / frames for a, b in zip(start, end, strict=True))
        out.append(((x1, y1, x2, y2), None))
    return out


def run(frames: Sequence[Frame], *, camera: CameraRules = CAMERA,
        config: BehaviourConfig | None = None) -> list[tuple[int, Detection]]:
    rules = BehaviourRules(config)
    out: list[tuple[int, Detection]] = []
    for n, frame in enumerate(frames):
        people = [] if frame is None else [PersonView(3, frame[0], frame[1])]
        out.extend((n, d) for d in rules.step(camera, at(n), people))
    return out


def of(found: list[tuple[int, Detection]], event_type: str) -> list[tuple[int, Detection]]:
    return [(n, d) for n, d in found if d.event_type == event_type]


def seconds(n: int) -> float:
    return at(n) - T0


def standing_in(zone: ZoneRule, frames: Sequence[Frame]) -> list[int]:
    """The frames in which the person's feet are in the zone."""
    return [n for n, f in enumerate(frames) if f is not None and zone.contains((f[0][0] + f[0][2]) / 2, f[0][3])]


# --- person_dwell -------------------------------------------------------------------------------


def test_it_reports_dwell_at_a_shelf_from_the_dwell_time_with_a_growing_score() -> None:
    found = run(stand(AT_SHELF, 226))  # 45 s
    dwell = of(found, PERSON_DWELL)
    assert found == dwell  # nothing else happens to someone browsing
    first = dwell[0][0]
    assert seconds(first) == pytest.approx(20.0, abs=STEP)
    assert [n for n, _ in dwell] == list(range(first, 226))  # every frame from then on
    assert all(d.zone_id == SHELF.id and d.camera_id == CAMERA.camera_id and d.box == AT_SHELF for _, d in dwell)
    score = {n: d.score for n, d in dwell}
    assert score[first] == pytest.approx(0.5, abs=0.01)
    assert score[150] == pytest.approx(0.75, abs=0.01)  # 30 s: half way to twice the dwell time
    assert score[200] == pytest.approx(1.0, abs=0.01)  # 40 s: twice the dwell time
    assert score[225] == 1.0
    assert list(score.values()) == sorted(score.values())


def test_it_reports_no_dwell_below_the_dwell_time_or_away_from_a_shelf() -> None:
    assert of(run(stand(AT_SHELF, 99)), PERSON_DWELL) == []  # 19.6 s
    assert run(stand(MIDDLE, 226)) == []


def test_it_restarts_the_dwell_when_the_person_left_the_shelf_for_longer_than_the_presence_gap() -> None:
    # 15 s at the shelf, 2 s in the middle of the aisle (over the 1.5 s gap), back from 17 s on.
    found = of(run(stand(AT_SHELF, 75) + stand(MIDDLE, 10) + stand(AT_SHELF, 120)), PERSON_DWELL)
    assert seconds(found[0][0]) == pytest.approx(17.0 + 20.0, abs=STEP)
    assert found[0][1].score == pytest.approx(0.5, abs=0.01)


def test_it_keeps_the_dwell_going_through_a_step_back_shorter_than_the_presence_gap() -> None:
    found = of(run(stand(AT_SHELF, 75) + stand(MIDDLE, 5) + stand(AT_SHELF, 40)), PERSON_DWELL)  # 1 s away
    assert seconds(found[0][0]) == pytest.approx(20.0, abs=STEP)


# --- concealment --------------------------------------------------------------------------------


def reach_then(box: Box, hand: tuple[float, float], *, reach: tuple[float, float] = REACH, wait: int = 0,
               hold: int = 10, **pose_options: Any) -> list[Frame]:
    """Arms down 1 s, the right hand on the shelf 0.6 s, down again `wait` frames, then at `hand`."""
    return (stand(box, 5, **pose_options) + stand(box, 3, right_wrist=reach, **pose_options)
            + stand(box, wait, **pose_options) + stand(box, hold, right_wrist=hand, **pose_options))


def test_it_reports_concealment_when_a_hand_goes_from_the_shelf_to_the_pocket() -> None:
    found = run(reach_then(AT_SHELF, pocket(AT_SHELF)))
    concealment = of(found, CONCEALMENT)
    assert [n for n, _ in concealment] == list(range(8, 18))  # from the first frame at the pocket
    assert all(d.zone_id == SHELF.id and d.box == AT_SHELF for _, d in concealment)
    score = {n: d.score for n, d in concealment}
    assert score[8] == pytest.approx(0.5)
    assert score[13] == pytest.approx(1.0)  # held 1 s (concealment_hold_seconds)
    assert score[17] == 1.0


def test_it_counts_a_hand_hidden_behind_the_body_at_the_waist() -> None:
    # The pose model still places an occluded wrist, with a low confidence, from the arm.
    frames = stand(AT_SHELF, 5) + stand(AT_SHELF, 3, right_wrist=REACH) + stand(
        AT_SHELF, 5, right_wrist=pocket(AT_SHELF), wrist_score=0.05)
    assert [n for n, _ in of(run(frames), CONCEALMENT)] == [8, 9, 10, 11, 12]


@pytest.mark.parametrize("hand", [chest, beside], ids=["chest-height", "beside-the-body"])
def test_it_reports_no_concealment_when_the_hand_does_not_reach_the_waist(
        hand: Callable[[Box], tuple[float, float]]) -> None:
    assert of(run(reach_then(AT_SHELF, hand(AT_SHELF))), CONCEALMENT) == []


def test_it_reports_no_concealment_for_a_hand_to_the_pocket_without_a_reach() -> None:
    assert of(run(stand(AT_SHELF, 5) + stand(AT_SHELF, 10, right_wrist=pocket(AT_SHELF))), CONCEALMENT) == []


@pytest.mark.parametrize(("wait", "fires"), [(12, True), (17, False)], ids=["2.6s-after", "3.4s-after"])
def test_it_reports_concealment_only_within_the_window_after_the_reach(wait: int, fires: bool) -> None:
    # The last frame with the hand on the shelf is frame 7; the hand reaches the pocket 0.2 s after the wait.
    found = of(run(reach_then(AT_SHELF, pocket(AT_SHELF), wait=wait)), CONCEALMENT)
    assert bool(found) is fires


def test_it_reports_no_concealment_when_the_torso_is_not_seen_clearly() -> None:
    assert of(run(reach_then(AT_SHELF, pocket(AT_SHELF), torso_score=0.1)), CONCEALMENT) == []


# A till with an impulse rack beside it: reaching for gum then for a wallet is paying, not stealing.
RACK = ZoneRule(11, "Impulse rack", rect(0.62, 0.2, 0.8, 0.45), kind="shelf")
TILL = ZoneRule(12, "Till", rect(0.3, 0.6, 0.7, 1.0), kind="checkout")
TILL_CAMERA = CameraRules(8, "Till", (RACK, TILL))


@pytest.mark.parametrize(("box", "fires"), [(box_at(0.5, 0.9), False), (box_at(0.5, 0.55), True)],
                         ids=["standing-at-the-till", "standing-short-of-the-till"])
def test_it_reports_no_concealment_at_a_checkout(box: Box, fires: bool) -> None:
    found = of(run(reach_then(box, pocket(box), reach=(0.7, 0.35)), camera=TILL_CAMERA), CONCEALMENT)
    assert bool(found) is fires
    assert all(d.zone_id == RACK.id for _, d in found)


# Seen from the front, a shopper in front of a low gondola: their waist is drawn over the shelf zone.
GONDOLA = ZoneRule(21, "Gondola", rect(0.0, 0.35, 0.4, 0.7), kind="shelf")
GONDOLA_CAMERA = CameraRules(9, "Aisle 5", (GONDOLA,))


def test_it_reports_concealment_when_the_shoppers_waist_is_drawn_over_the_shelf_zone() -> None:
    found = of(run(reach_then(AT_SHELF, pocket(AT_SHELF), reach=(0.3, 0.5)), camera=GONDOLA_CAMERA), CONCEALMENT)
    assert [n for n, _ in found] == list(range(8, 18))
    assert all(d.zone_id == GONDOLA.id for _, d in found)


# --- exit_without_checkout ----------------------------------------------------------------------


def test_it_reports_leaving_by_the_exit_after_a_shelf_without_the_checkout() -> None:
    frames = stand(AT_SHELF, 15) + walk(AT_SHELF, IN_EXIT, 20) + stand(IN_EXIT, 10)
    found = run(frames)
    leaving = of(found, EXIT_WITHOUT_CHECKOUT)
    in_exit = standing_in(EXIT, frames)
    assert [n for n, _ in leaving] == in_exit and in_exit[-1] == len(frames) - 1
    assert all(d.zone_id == EXIT.id for _, d in leaving)
    assert all(0.6 < d.score < 0.8 for _, d in leaving)  # a few seconds at shelves, no concealment


def test_it_scores_leaving_higher_after_a_concealment() -> None:
    walk_out = walk(AT_SHELF, IN_EXIT, 20) + stand(IN_EXIT, 5)
    plain = of(run(stand(AT_SHELF, 5) + stand(AT_SHELF, 13, right_wrist=REACH) + walk_out), EXIT_WITHOUT_CHECKOUT)
    concealed = run(reach_then(AT_SHELF, pocket(AT_SHELF)) + walk_out)
    assert of(concealed, CONCEALMENT)
    leaving = of(concealed, EXIT_WITHOUT_CHECKOUT)
    assert leaving and plain
    assert leaving[-1][1].score == pytest.approx(plain[-1][1].score + 0.2)


def test_it_reports_no_exit_after_paying_at_the_checkout() -> None:
    door = box_at(0.9, 0.9)
    frames = (stand(AT_SHELF, 15) + walk(AT_SHELF, AT_TILL, 15) + stand(AT_TILL, 10)
              + walk(AT_TILL, door, 15) + stand(door, 10))
    assert EXIT.contains(0.9, 0.9)
    assert of(run(frames), EXIT_WITHOUT_CHECKOUT) == []


@pytest.mark.parametrize(("at_shelf", "fires"), [(0, False), (4, False), (10, True)],
                         ids=["never", "0.6s", "1.8s"])
def test_it_reports_an_exit_only_after_shelf_visit_seconds_at_shelves(at_shelf: int, fires: bool) -> None:
    frames = stand(AT_SHELF, at_shelf) + stand(MIDDLE, 1) + walk(MIDDLE, IN_EXIT, 10) + stand(IN_EXIT, 10)
    assert bool(of(run(frames), EXIT_WITHOUT_CHECKOUT)) is fires


# --- restricted_entry and ignore zones ----------------------------------------------------------


def test_it_reports_restricted_entry_with_a_score_growing_with_time_inside() -> None:
    found = run(stand(MIDDLE, 5) + stand(IN_STOCKROOM, 16) + stand(MIDDLE, 2) + stand(IN_STOCKROOM, 2))
    entry = of(found, RESTRICTED_ENTRY)
    assert found == entry
    assert [n for n, _ in entry] == list(range(5, 21)) + [23, 24]
    assert all(d.zone_id == RESTRICTED.id for _, d in entry)
    score = {n: d.score for n, d in entry}
    assert score[5] == pytest.approx(0.5)
    assert score[10] == pytest.approx(0.75)  # 1 s inside
    assert score[15] == pytest.approx(1.0)  # 2 s inside (restricted_seconds)
    assert score[20] == 1.0
    assert score[23] == pytest.approx(0.5)  # came out and went back in: time inside starts again


def test_it_ignores_a_person_standing_in_an_ignore_zone() -> None:
    assert run(stand(IN_MIRROR, 30)) == []
    unmasked = replace(CAMERA, zones=(SHELF, CHECKOUT, EXIT, RESTRICTED))
    assert of(run(stand(IN_MIRROR, 30), camera=unmasked), RESTRICTED_ENTRY)  # it was in the stockroom zone


def test_it_ignores_nothing_for_a_disabled_ignore_zone() -> None:
    camera = replace(CAMERA, zones=(SHELF, CHECKOUT, EXIT, RESTRICTED, replace(MIRROR, enabled=False)))
    assert of(run(stand(IN_MIRROR, 30), camera=camera), RESTRICTED_ENTRY)


# --- disabled zones -----------------------------------------------------------------------------


def without(zone: ZoneRule) -> CameraRules:
    """CAMERA with `zone` disabled."""
    return replace(CAMERA, zones=tuple(replace(z, enabled=False) if z.id == zone.id else z for z in CAMERA.zones))


@pytest.mark.parametrize(("zone", "frames", "event_type"), [
    (SHELF, stand(AT_SHELF, 120), PERSON_DWELL),
    (SHELF, reach_then(AT_SHELF, pocket(AT_SHELF)), CONCEALMENT),
    (EXIT, stand(AT_SHELF, 15) + walk(AT_SHELF, IN_EXIT, 20) + stand(IN_EXIT, 10), EXIT_WITHOUT_CHECKOUT),
    (RESTRICTED, stand(IN_STOCKROOM, 20), RESTRICTED_ENTRY),
], ids=["dwell", "concealment", "exit", "restricted"])
def test_it_reports_nothing_in_a_disabled_zone(zone: ZoneRule, frames: list[Frame], event_type: str) -> None:
    assert of(run(frames), event_type)  # enabled, it fires
    assert run(frames, camera=without(zone)) == []


# --- through the rule engine --------------------------------------------------------------------


def pipeline(camera: CameraRules, frames: Sequence[Sequence[Box]]) -> tuple[list[tuple[int, Event]], list[Detection]]:
    """Boxes through the tracker, the behaviour rules and the rule engine, as the person detector and the
    inference loop wire them; returns the events by frame and every detection."""
    tracker, behaviour = Tracker(), BehaviourRules()
    engine = RuleEngine(RuleConfig(), {camera.camera_id: camera})
    assert (engine.config.smoothing_k, engine.config.smoothing_n) == (3, 5)
    events: list[tuple[int, Event]] = []
    detections: list[Detection] = []
    for n, seen in enumerate(frames):
        tracks = tracker.update(at(n), [PersonBox(b, 0.8) for b in seen])
        found = behaviour.step(camera, at(n), [PersonView(t.id, t.box, t.keypoints, t.evidence()) for t in tracks])
        detections.extend(found)
        events.extend((n, e) for e in engine.process(camera.camera_id, at(n), found))
    return events, detections


def boxes(frames: list[Frame]) -> list[list[Box]]:
    return [[] if f is None else [f[0]] for f in frames]


def test_it_raises_no_event_for_one_frame_in_the_exit_zone() -> None:
    door = box_at(0.86, 0.72)
    frames = boxes(stand(AT_SHELF, 15) + walk(AT_SHELF, door, 20)) + [[]] * 30  # then out of sight
    events, detections = pipeline(CAMERA, frames)
    assert [d.event_type for d in detections] == [EXIT_WITHOUT_CHECKOUT]
    assert events == []


def test_it_starts_an_exit_event_after_three_frames_with_the_persons_box_and_track() -> None:
    walk_out = stand(AT_SHELF, 15) + walk(AT_SHELF, IN_EXIT, 20)
    first_in_exit = standing_in(EXIT, walk_out)[0]
    frames = boxes(walk_out + stand(IN_EXIT, 10)) + [[]] * 40
    events, _ = pipeline(CAMERA, frames)
    assert [(n, e.phase, e.event_type, e.zone_id) for n, e in events] == [
        (first_in_exit + 2, EventPhase.STARTED, EXIT_WITHOUT_CHECKOUT, EXIT.id),
        (len(walk_out) + 10 + 25, EventPhase.ENDED, EXIT_WITHOUT_CHECKOUT, EXIT.id),  # quiet 5 s after the last
    ]
    started = events[0][1]
    assert started.start == at(first_in_exit)
    assert started.trigger_box == frames[first_in_exit][0]
    track = started.track
    assert isinstance(track, TrackEvidence) and track.track_id == 1
    assert track.points[0].at == at(0) and track.points[0].box == AT_SHELF  # the shelf visit is in it
    assert track.points[-1].at == started.last_high == at(first_in_exit + 2)
    assert [p.at for p in track.points] == sorted(p.at for p in track.points)


def test_it_raises_dwell_only_in_a_zone_that_watches_it() -> None:
    frames = boxes(stand(AT_SHELF, 110))  # 22 s
    events, _ = pipeline(CAMERA, frames)
    assert [(e.phase, e.event_type, e.zone_id) for _, e in events] == [(EventPhase.STARTED, PERSON_DWELL, SHELF.id)]
    concealment_only = replace(SHELF, event_types=frozenset({CONCEALMENT}))
    camera = replace(CAMERA, zones=(concealment_only, CHECKOUT, EXIT, RESTRICTED, MIRROR))
    events, detections = pipeline(camera, frames)
    assert any(d.event_type == PERSON_DWELL for d in detections)  # the rule saw it; the zone does not want it
    assert events == []


def _restricted(box: Box) -> Detection:
    evidence = TrackEvidence(3, (TrackPoint(at(0), box, 0.8),))
    return Detection(CAMERA.camera_id, RESTRICTED_ENTRY, 0.9, box, RESTRICTED.id, evidence=evidence)


def test_it_masks_a_detection_whose_person_stands_in_an_ignore_zone() -> None:
    config = RuleConfig()
    assert zones_for(_restricted(IN_STOCKROOM), CAMERA, config) == [RESTRICTED]
    assert zones_for(_restricted(IN_MIRROR), CAMERA, config) == []
    engine = RuleEngine(config, {CAMERA.camera_id: CAMERA})
    assert [e for n in range(20) for e in engine.process(CAMERA.camera_id, at(n), [_restricted(IN_MIRROR)])] == []


def test_it_raises_no_event_in_a_disabled_zone() -> None:
    config = RuleConfig()
    camera = without(RESTRICTED)
    assert zones_for(_restricted(IN_STOCKROOM), camera, config) == []
    engine = RuleEngine(config, {camera.camera_id: camera})
    assert [e for n in range(20) for e in engine.process(camera.camera_id, at(n), [_restricted(IN_STOCKROOM)])] == []
    events, _ = pipeline(camera, boxes(stand(IN_STOCKROOM, 20)))
    assert events == []


def test_it_raises_a_restricted_entry_event_with_the_persons_box_and_track() -> None:
    corridor = box_at(0.78, 0.45, width=0.06, height=0.25)
    frames = stand(corridor, 3) + walk(corridor, IN_STOCKROOM, 4) + stand(IN_STOCKROOM, 5)
    inside = standing_in(RESTRICTED, frames)
    events, _ = pipeline(CAMERA, boxes(frames))
    ((n, event),) = events
    assert (event.phase, event.event_type, event.zone_id) == (EventPhase.STARTED, RESTRICTED_ENTRY, RESTRICTED.id)
    assert n == inside[2] and event.start == at(inside[0])
    assert event.trigger_box == boxes(frames)[n][0]  # the peak: the latest, longest inside
    assert event.track is not None and event.track.track_id == 1
    assert event.track.points[0].box == corridor and event.track.points[-1].box == event.trigger_box
