"""The people tracker keeps one id per person through walking, crossing and short occlusions (pure logic)."""
from __future__ import annotations

import math

import pytest

from detection.tracking.tracker import PersonBox, Track, Tracker
from detection.tracking.tracks import Box

T0 = 1_000.0
STEP = 0.2  # 5 samples per second, the person detector's rate


def at(n: int) -> float:
    return T0 + n * STEP


def box_at(cx: float, top: float, *, width: float = 0.08, height: float = 0.35) -> Box:
    return (cx - width / 2, top, cx + width / 2, top + height)


def jitter(n: int, amount: float = 0.003) -> float:
    """A detector's box wobbles a little from frame to frame; deterministic so failures reproduce."""
    return amount * math.sin(1.7 * n)


def ids(tracks: list[Track]) -> list[int]:
    return [t.id for t in tracks]


@pytest.mark.parametrize("frames", [50, 15], ids=["strolling-10s", "brisk-3s"])
def test_it_keeps_one_id_for_a_person_walking_across_the_frame(frames: int) -> None:
    tracker = Tracker()
    reported: list[list[int]] = []
    for n in range(frames):
        cx = 0.05 + 0.9 * n / (frames - 1) + jitter(n)
        reported.append(ids(tracker.update(at(n), [PersonBox(box_at(cx, 0.3), 0.8)])))
    assert reported[0] == []  # seen once is not yet a person (min_hits=2)
    assert all(len(r) == 1 for r in reported[1:])
    assert {r[0] for r in reported[1:]} == {1}
    assert len(tracker.tracks) == 1


def _crossing(n: int) -> tuple[Box, Box]:
    """A walks left to right, B right to left a little lower and faster; they cross near frame 24."""
    a = box_at(0.1 + 0.015 * n + jitter(n), 0.30)
    b = box_at(0.9 - 0.018 * n + jitter(n + 5), 0.34)
    return a, b


def test_it_keeps_each_persons_id_when_two_people_cross_paths() -> None:
    tracker = Tracker()
    a_ids: set[int] = set()
    b_ids: set[int] = set()
    max_iou = 0.0
    for n in range(45):
        a, b = _crossing(n)
        ax = (a[0] + a[2]) / 2
        overlap = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        max_iou = max(max_iou, overlap / (2 * 0.08 - overlap))
        for track in tracker.update(at(n), [PersonBox(a, 0.8), PersonBox(b, 0.8)]):
            cx = (track.box[0] + track.box[2]) / 2
            (a_ids if abs(cx - ax) < 1e-9 else b_ids).add(track.id)
    assert max_iou > 0.8  # they really did overlap
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids


def test_it_keeps_ids_when_one_person_is_hidden_behind_the_other_while_crossing() -> None:
    tracker = Tracker()
    a_ids: set[int] = set()
    b_ids: set[int] = set()
    for n in range(45):
        a, b = _crossing(n)
        people = [PersonBox(a, 0.8)] + ([] if 21 <= n <= 26 else [PersonBox(b, 0.8)])  # B unseen 1.2 s
        for track in tracker.update(at(n), people):
            (a_ids if track.box == a else b_ids).add(track.id)
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids


def _walk_with_gap(tracker: Tracker, hidden: range, *, speed: float = 0.2) -> dict[int, list[int]]:
    """A person walking at `speed` frame widths per second, unseen during the `hidden` frames."""
    reported: dict[int, list[int]] = {}
    for n in range(45):
        cx = 0.05 + speed * STEP * n + jitter(n)
        people = [] if n in hidden else [PersonBox(box_at(cx, 0.3, width=0.1, height=0.4), 0.8)]
        reported[n] = ids(tracker.update(at(n), people))
    return reported


@pytest.mark.parametrize("speed", [0.1, 0.2, 0.3])
def test_it_keeps_the_id_of_a_person_unseen_for_over_a_second(speed: float) -> None:
    tracker = Tracker()
    reported = _walk_with_gap(tracker, range(20, 26), speed=speed)  # unseen 1.2 s, seen again 1.4 s on
    assert all(reported[n] == [] for n in range(20, 26))
    assert reported[19] == [1]
    assert reported[26] == [1]  # reported again at once: it had been confirmed before
    assert all(reported[n] == [1] for n in range(26, 45))


def test_it_gives_a_new_id_to_a_person_unseen_for_longer_than_max_age() -> None:
    tracker = Tracker(max_age=2.0)
    reported = _walk_with_gap(tracker, range(20, 32))  # last seen at frame 19, again 2.6 s later
    assert reported[19] == [1]
    assert reported[32] == []  # a new track, not yet confirmed
    assert all(reported[n] == [2] for n in range(33, 45))


def test_it_never_reports_a_one_frame_false_box() -> None:
    tracker = Tracker()
    seen: set[int] = set()
    for n in range(30):
        people = [PersonBox(box_at(0.2 + 0.01 * n, 0.3), 0.8)]
        if n == 10:
            people.append(PersonBox(box_at(0.8, 0.1), 0.9))  # a coat on a rack, for one frame
        seen.update(ids(tracker.update(at(n), people)))
    assert seen == {1}
    assert ids(tracker.confirmed()) == [1]


def test_it_does_not_start_a_track_from_a_weak_box() -> None:
    tracker = Tracker(new_track_score=0.5)
    for n in range(10):
        assert tracker.update(at(n), [PersonBox(box_at(0.5, 0.3), 0.3)]) == []
    assert tracker.tracks == []


def test_it_continues_an_existing_track_with_a_weak_box() -> None:
    tracker = Tracker(new_track_score=0.5)
    for n in range(20):
        score = 0.8 if n < 5 else 0.3  # the person half turns away: the detector is less sure
        reported = tracker.update(at(n), [PersonBox(box_at(0.2 + 0.01 * n, 0.3), score)])
        if n >= 1:
            assert ids(reported) == [1]
    assert tracker.tracks[0].score == 0.3
    assert tracker.tracks[0].hits == 20


def test_it_keeps_only_history_seconds_of_history_in_time_order() -> None:
    tracker = Tracker(history_seconds=3.0)
    for n in range(50):
        tracker.update(at(n), [PersonBox(box_at(0.1 + 0.015 * n, 0.3), 0.8)])
    (track,) = tracker.tracks
    evidence = track.evidence()
    times = [p.at for p in evidence.points]
    assert evidence.track_id == track.id
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] == at(49)
    assert times[-1] - times[0] <= 3.0 + 1e-9
    assert times[-1] - times[0] >= 3.0 - STEP - 1e-9  # trimmed to the window, not emptied
    assert evidence.points[-1].box == track.box


def test_it_attaches_pose_to_the_latest_point_only() -> None:
    tracker = Tracker()
    for n in range(3):
        tracker.update(at(n), [PersonBox(box_at(0.5, 0.3), 0.8)])
    (track,) = tracker.tracks
    keypoints = tuple((0.5, 0.4, 0.9) for _ in range(17))
    track.set_keypoints(keypoints)
    points = track.evidence().points
    assert points[-1].keypoints == keypoints and track.keypoints == keypoints
    assert all(p.keypoints is None for p in points[:-1])


def test_it_starts_afresh_when_the_clock_goes_back() -> None:
    tracker = Tracker()
    person = [PersonBox(box_at(0.5, 0.3), 0.8)]
    for n in range(10):
        tracker.update(at(n), person)
    assert ids(tracker.update(at(10), person)) == [1]
    # A replayed file restarts 100 s earlier: the same place in the picture is a new person.
    restart = T0 - 100.0
    assert tracker.update(restart, person) == []
    assert ids(tracker.tracks) == [2]
    assert ids(tracker.update(restart + STEP, person)) == [2]
    assert [p.at for p in tracker.tracks[0].evidence().points] == [restart, restart + STEP]
