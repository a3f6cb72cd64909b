"""Features of an event for the learned model: pure, from the stored track form and the zones."""
from __future__ import annotations

import numpy as np
import pytest

from detection.inference.events import EXIT, SHELF, ZoneRule
from detection.learning.features import (
    SEQUENCE_CHANNELS,
    SEQUENCE_STEPS,
    TABULAR_FEATURES,
    TrackFormatError,
    event_features,
)
from detection.learning.simulate import simulate_alerts
from detection.tracking.tracks import LEFT_WRIST, TrackEvidence, TrackPoint

START = 1_700_000_000.0
SHELF_ZONE = ZoneRule(id=1, name="Shelf", polygon=((0.6, 0.0), (1.0, 0.0), (1.0, 1.0), (0.6, 1.0)), kind=SHELF)
EXIT_ZONE = ZoneRule(id=2, name="Exit", polygon=((0.0, 0.0), (0.2, 0.0), (0.2, 1.0), (0.0, 1.0)), kind=EXIT)


def standing(cx: float, foot_y: float, height: float, *, wrist: tuple[float, float, float] | None = None):
    """A box and 17 keypoints of a person standing with feet at (cx, foot_y)."""
    box = (cx - 0.2 * height, foot_y - height, cx + 0.2 * height, foot_y)
    cy = foot_y - height / 2
    keypoints = [(cx + 0.05 * height * (i % 3 - 1), cy + height * (i / 17 - 0.5), 0.9) for i in range(17)]
    if wrist is not None:
        keypoints[LEFT_WRIST] = wrist
    return box, keypoints


def track(points) -> dict:
    return TrackEvidence(7, tuple(TrackPoint(at, box, 0.8, None if kps is None else tuple(kps))
                                  for at, box, kps in points)).to_json()


def features(points, *, zones=(SHELF_ZONE, EXIT_ZONE), event_type="concealment", rule_score=0.7, start=START):
    return event_features(track=track(points), zones=zones, event_type=event_type, rule_score=rule_score,
                          event_start=start)


def column(name: str) -> int:
    return SEQUENCE_CHANNELS.index(name)


def tab(name: str) -> int:
    return TABULAR_FEATURES.index(name)


def test_it_reads_only_the_track_up_to_the_event_start():
    before = [(START - 2 + k * 0.2, *standing(0.7, 0.9, 0.4)) for k in range(11)]
    after = [(START + 0.2 * k, *standing(0.1, 0.9, 0.4)) for k in range(1, 10)]  # walks to the exit afterwards
    alone, with_after = features(before), features(before + after)
    assert np.array_equal(alone.sequence, with_after.sequence)
    assert np.array_equal(alone.tabular, with_after.tabular)
    assert alone.tabular[tab("visited_exit")] == 0.0


def test_keypoints_are_relative_to_the_box_so_where_the_person_stands_and_how_far_do_not_matter():
    near = [(START - 1 + k * 0.2, *standing(0.5, 0.9, 0.6)) for k in range(6)]
    far = [(START - 1 + k * 0.2, *standing(0.3, 0.5, 0.2)) for k in range(6)]
    a, b = features(near, zones=()), features(far, zones=())
    keypoint_channels = slice(0, 17 * 3)
    assert np.allclose(a.sequence[:, keypoint_channels], b.sequence[:, keypoint_channels], atol=2e-3)
    assert a.sequence[-1, column("present")] == 1.0 and a.sequence[-1, column("has_keypoints")] == 1.0


def test_it_measures_time_at_each_zone_kind_and_where_the_person_was_step_by_step():
    at_shelf = [(START - 3 + k * 0.2, *standing(0.8, 0.9, 0.4)) for k in range(10)]  # 2 s at the shelf
    at_exit = [(START - 1 + k * 0.2, *standing(0.1, 0.9, 0.4)) for k in range(6)]  # then the exit up to the start
    f = features(at_shelf + at_exit)
    assert f.tabular[tab("dwell_shelf")] == pytest.approx(2.0 / 30, abs=0.01)
    assert f.tabular[tab("dwell_exit")] == pytest.approx(1.0 / 30, abs=0.01)
    assert f.tabular[tab("visited_shelf")] == f.tabular[tab("visited_exit")] == 1.0
    assert f.tabular[tab("visited_checkout")] == 0.0
    assert f.tabular[tab("tracked_seconds")] == pytest.approx(3.0 / 30, abs=0.01)
    assert f.sequence[-1, column("at_exit")] == 1.0 and f.sequence[-1, column("at_shelf")] == 0.0
    assert f.sequence[-10, column("at_shelf")] == 1.0
    # The feet moved left by 0.7 frame widths = 1.75 box heights, relative to where they are at the start.
    assert f.sequence[-10, column("foot_dx")] == pytest.approx(1.75, abs=0.01)


def test_a_wrist_counts_in_a_shelf_zone_only_when_it_is_seen_there():
    seen = [(START, *standing(0.5, 0.9, 0.4, wrist=(0.7, 0.5, 0.9)))]
    unsure = [(START, *standing(0.5, 0.9, 0.4, wrist=(0.7, 0.5, 0.1)))]
    assert features(seen).sequence[-1, column("left_wrist_in_shelf")] == 1.0
    assert features(unsure).sequence[-1, column("left_wrist_in_shelf")] == 0.0
    assert features(seen).tabular[tab("wrist_in_shelf_fraction")] == 1.0


def test_steps_without_a_point_or_without_keypoints_are_zero_and_say_so():
    box, _ = standing(0.5, 0.9, 0.4)
    f = features([(START - 0.4, box, None), (START, box, None)])
    assert f.sequence.shape == (SEQUENCE_STEPS, len(SEQUENCE_CHANNELS))
    assert f.sequence[-1, column("present")] == 1.0 and f.sequence[-1, column("has_keypoints")] == 0.0
    assert not f.sequence[-1, :17 * 3].any()
    assert not f.sequence[0].any()  # 4 s before the start: no point seen
    assert f.tabular[tab("keypoint_fraction")] == 0.0


def test_it_records_the_rule_score_and_the_event_type():
    points = [(START, *standing(0.5, 0.9, 0.4))]
    f = features(points, event_type="exit_without_checkout", rule_score=0.83)
    assert f.tabular[tab("rule_score")] == pytest.approx(0.83)
    assert f.tabular[tab("event_exit_without_checkout")] == 1.0 and f.tabular[tab("event_other")] == 0.0
    assert features(points, event_type="zone_activity").tabular[tab("event_other")] == 1.0
    empty = event_features(track=None, zones=(), event_type="concealment", rule_score=0.6, event_start=START)
    assert not empty.sequence.any() and empty.tabular[tab("rule_score")] == pytest.approx(0.6)


def test_a_track_not_in_the_stored_form_is_refused_with_a_reason():
    with pytest.raises(TrackFormatError, match="not a stored person track"):
        event_features(track={"points": [{"t": "soon"}]}, zones=(), event_type="concealment", rule_score=0.5,
                       event_start=START)
    with pytest.raises(TrackFormatError, match="keypoints"):
        event_features(track={"points": [{"t": START, "box": [0, 0, 1, 1], "keypoints": [[0, 0, 1]]}]}, zones=(),
                       event_type="concealment", rule_score=0.5, event_start=START)


def test_the_simulator_is_seeded_and_its_tracks_are_in_the_stored_form():
    first, again = simulate_alerts(5, seed=3), simulate_alerts(5, seed=3)
    assert [a.track for a in first] == [a.track for a in again]
    assert [a.confirmed for a in first] == [a.confirmed for a in again]
    assert simulate_alerts(5, seed=4)[0].track != first[0].track
    for alert in first:
        f = event_features(track=alert.track, zones=alert.zones, event_type=alert.event_type,
                           rule_score=alert.rule_score, event_start=alert.event_start)
        assert f.sequence[-10:, column("present")].all()  # the 2 s pre-roll before the start
        assert f.tabular[tab("visited_shelf")] == 1.0
