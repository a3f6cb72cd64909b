"""The rules engine: zones, thresholds, K-of-N smoothing, event lifecycle and clip windows (pure logic)."""
import pytest

from detection.detectors.base import Detection
from detection.inference.events import (
    CameraRules,
    EventPhase,
    RuleConfig,
    RuleEngine,
    ZoneRule,
    clip_window,
    point_in_polygon,
    threshold_for,
    zones_for,
)

LEFT = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
RIGHT = ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))
STEP = 0.2  # 5 samples per second


def feed(engine, camera_id, scores, *, event_type="theft", start=100.0, box=None, zone_id=None):
    """Feed one score per sample (None: no detection at all); returns [(sample index, event)]."""
    out = []
    for i, score in enumerate(scores):
        detections = [] if score is None else [Detection(camera_id, event_type, score, box, zone_id)]
        out.extend((i, event) for event in engine.process(camera_id, start + i * STEP, detections, image=f"frame{i}"))
    return out


def engine_for(camera=None, **config):
    camera = camera or CameraRules(camera_id=1, name="Aisle 3")
    return RuleEngine(RuleConfig(**config), {camera.camera_id: camera})


def test_it_tests_points_against_polygons():
    triangle = ((0.1, 0.1), (0.9, 0.1), (0.5, 0.9))
    assert point_in_polygon(0.5, 0.3, triangle)
    assert not point_in_polygon(0.1, 0.8, triangle)
    assert point_in_polygon(0.25, 0.5, LEFT) and not point_in_polygon(0.75, 0.5, LEFT)


def test_it_starts_an_event_at_the_first_qualifying_sample_with_the_window_peak():
    engine = engine_for(smoothing_k=3, smoothing_n=5)
    events = feed(engine, 1, [0.1, 0.7, 0.2, 0.9, 0.6, 0.1])
    assert [(i, e.phase) for i, e in events] == [(4, EventPhase.STARTED)]
    event = events[0][1]
    assert event.start == pytest.approx(100.2)  # sample 1, the first high one in the window
    assert event.score == 0.9 and event.trigger_at == pytest.approx(100.6) and event.trigger_image == "frame3"
    assert event.end is None and not event.clip_final
    assert (event.clip_start, event.clip_end) == (pytest.approx(98.2), pytest.approx(104.2))  # 2 + 2 + 2 s


def test_it_never_fires_on_a_one_frame_spike_or_on_scores_below_threshold():
    engine = engine_for(smoothing_k=3, smoothing_n=5)
    assert feed(engine, 1, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.1, 0.0]) == []
    assert feed(engine, 1, [0.49] * 20, start=200.0) == []
    # Two highs in five samples are not three.
    assert feed(engine, 1, [0.8, 0.1, 0.8, 0.1, 0.1, 0.8, 0.1], start=300.0) == []


def test_it_extends_while_high_and_ends_after_the_quiet_period():
    engine = engine_for(smoothing_k=2, smoothing_n=3, quiet_seconds=1.0)
    scores = [0.9, 0.9] + [0.8] * 10 + [0.0] * 6 + [None] * 2
    events = feed(engine, 1, scores)
    assert [(i, e.phase) for i, e in events] == [(1, EventPhase.STARTED), (17, EventPhase.ENDED)]  # 1.2 s after the last high
    ended = events[1][1]
    assert ended.start == pytest.approx(100.0)
    assert ended.last_high == ended.end == pytest.approx(102.2)  # sample 11
    assert ended.clip_final
    assert (ended.clip_start, ended.clip_end) == (pytest.approx(98.0), pytest.approx(104.2))
    # A new run after the event ended is a new event.
    later = feed(engine, 1, [0.9, 0.9], start=110.0)
    assert [e.phase for _, e in later] == [EventPhase.STARTED]


def test_it_ends_events_of_a_camera_that_stopped_sending_frames():
    engine = engine_for(smoothing_k=1, smoothing_n=1, quiet_seconds=2.0)
    feed(engine, 1, [0.9])
    assert engine.expire(101.0) == []
    [ended] = engine.expire(102.5)
    assert ended.phase is EventPhase.ENDED and ended.end == 100.0
    assert engine.close_all() == []


def test_it_caps_the_clip_window_and_says_when_it_is_final():
    engine = engine_for(smoothing_k=1, smoothing_n=1, clip_max_seconds=10.0)
    events = feed(engine, 1, [0.9] * 40)  # 8 s of high samples
    assert [e.phase for _, e in events] == [EventPhase.STARTED, EventPhase.CAPPED]
    index, capped = events[1]
    assert capped.clip_final and capped.clip_end - capped.clip_start == pytest.approx(10.0)
    assert index == 30  # last_high 106.0: 2 s pre + 6 s + 2 s post reaches the 10 s cap
    [ended] = engine.close_all()
    assert ended.clip_end - ended.clip_start == pytest.approx(10.0)
    assert clip_window(start=10, last_high=10.5, pre=2, during=2, post=2, max_seconds=30) == (8, 14)
    assert clip_window(start=10, last_high=20, pre=2, during=2, post=2, max_seconds=30) == (8, 22)
    assert clip_window(start=10, last_high=60, pre=2, during=2, post=2, max_seconds=30) == (8, 38)


def test_it_places_a_box_in_the_zone_under_its_bottom_centre():
    camera = CameraRules(camera_id=1, zones=(ZoneRule(10, "left", LEFT), ZoneRule(20, "right", RIGHT)))
    config = RuleConfig()
    # Mostly in the left half, but standing (bottom-centre) in the right half.
    assert zones_for(Detection(1, "theft", 0.9, (0.2, 0.1, 0.9, 0.8)), camera, config) == [camera.zones[1]]
    assert zones_for(Detection(1, "theft", 0.9, (0.0, 0.1, 0.4, 0.8)), camera, config) == [camera.zones[0]]


def test_it_ignores_a_box_outside_every_zone():
    camera = CameraRules(camera_id=1, zones=(ZoneRule(10, "shelf", ((0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9))),))
    engine = engine_for(camera, smoothing_k=1, smoothing_n=1)
    assert feed(engine, 1, [0.99] * 5, box=(0.1, 0.1, 0.3, 0.5)) == []
    assert [e.zone_id for _, e in feed(engine, 1, [0.99], box=(0.6, 0.5, 0.8, 0.8), start=200.0)] == [10]


def test_it_applies_a_frame_level_score_to_every_zone_or_the_whole_frame():
    zoned = CameraRules(camera_id=1, zones=(ZoneRule(10, "left", LEFT), ZoneRule(20, "right", RIGHT)))
    events = feed(engine_for(zoned, smoothing_k=1, smoothing_n=1), 1, [0.9])
    assert sorted(e.zone_id for _, e in events) == [10, 20]
    assert {e.zone_name for _, e in events} == {"left", "right"}
    whole = feed(engine_for(CameraRules(camera_id=1), smoothing_k=1, smoothing_n=1), 1, [0.9])
    assert [(e.zone_id, e.zone_name) for _, e in whole] == [(None, "")]


def test_it_ignores_disabled_zones_and_event_types():
    camera = CameraRules(camera_id=1, zones=(
        ZoneRule(10, "off", LEFT, enabled=False),
        ZoneRule(20, "only loitering", RIGHT, event_types=frozenset({"loitering"})),
    ))
    config = RuleConfig(disabled_event_types=frozenset({"zone_activity"}))
    assert zones_for(Detection(1, "theft", 0.9), camera, config) == []
    assert zones_for(Detection(1, "loitering", 0.9), camera, config) == [camera.zones[1]]
    assert zones_for(Detection(1, "loitering", 0.9, zone_id=10), camera, config) == []
    assert zones_for(Detection(1, "zone_activity", 0.9), CameraRules(camera_id=1), config) == []


def test_it_resolves_thresholds_zone_then_camera_then_event_type_then_default():
    config = RuleConfig(default_threshold=0.5, thresholds={"loitering": 0.7})
    bare, zone = CameraRules(camera_id=1), ZoneRule(10, "z", LEFT)
    assert threshold_for(bare, None, "theft", config) == 0.5
    assert threshold_for(bare, zone, "loitering", config) == 0.7
    camera = CameraRules(camera_id=1, threshold=0.8)
    assert threshold_for(camera, zone, "loitering", config) == 0.8
    assert threshold_for(camera, ZoneRule(10, "z", LEFT, threshold=0.0), "loitering", config) == 0.0

    # And the engine uses the zone's own threshold: 0.6 fires in a 0.55 zone, not in a 0.65 one.
    zones = (ZoneRule(10, "low", LEFT, threshold=0.55), ZoneRule(20, "high", RIGHT, threshold=0.65))
    engine = engine_for(CameraRules(camera_id=1, threshold=0.9, zones=zones), smoothing_k=1, smoothing_n=1)
    assert [e.zone_id for _, e in feed(engine, 1, [0.6])] == [10]


def test_it_keeps_keys_apart_and_ends_events_when_rules_change():
    camera = CameraRules(camera_id=1, zones=(ZoneRule(10, "left", LEFT),))
    engine = engine_for(camera, smoothing_k=1, smoothing_n=1)
    feed(engine, 1, [0.9], event_type="theft")
    feed(engine, 1, [None, 0.9], event_type="loitering", start=100.0)
    ended = engine.update_rules({1: CameraRules(camera_id=1, zones=(ZoneRule(10, "left", LEFT, enabled=False),))})
    assert sorted(e.event_type for e in ended) == ["loitering", "theft"]
    assert all(e.phase is EventPhase.ENDED for e in ended)


def test_it_restarts_smoothing_after_a_gap_in_the_feed():
    engine = engine_for(smoothing_k=3, smoothing_n=5, quiet_seconds=1.0)
    assert feed(engine, 1, [0.9, 0.9]) == []
    assert feed(engine, 1, [0.9], start=105.0) == []  # two old highs do not count after a 5 s gap
    assert [e.phase for _, e in feed(engine, 1, [0.9, 0.9], start=105.2)] == [EventPhase.STARTED]


def test_it_refuses_k_larger_than_n():
    with pytest.raises(ValueError, match="K <= N"):
        RuleConfig(smoothing_k=4, smoothing_n=3)
