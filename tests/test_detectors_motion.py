"""The motion baseline on real H.264 video (encoded by the test, decoded by PyAV at the sampling rate)."""
import pytest

from detection.detectors import create_configured_detector, create_detector
from detection.detectors.motion import MotionDetector
from detection.inference.events import CameraRules, EventPhase, RuleConfig, ZoneRule
from tests.support.video import T0, Box, run_detection, sample_video, write_video

FPS = 5.0
SIZE = (320, 180)
# A shelf in the lower right quarter of the picture.
SHELF = ZoneRule(7, "High-value shelf", ((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)))
CONFIG = RuleConfig(default_threshold=0.5, smoothing_k=3, smoothing_n=5, quiet_seconds=2.0)


def camera(*zones, **fields):
    return {1: CameraRules(camera_id=1, name="Aisle 3", zones=tuple(zones), **fields)}


def detect(tmp_path, boxes, rules, *, seconds=8.0, config=CONFIG, **options):
    video = write_video(tmp_path / "scene.mp4", seconds=seconds, boxes=boxes)
    frames = sample_video(video, camera_id=1, fps=FPS, size=SIZE)
    detector = create_detector("motion", input_size=SIZE, dwell_seconds=options.pop("dwell_seconds", 20.0), **options)
    return run_detection(detector, rules, config, frames)


def started(events, event_type="zone_activity"):
    return [e for e in events if e.phase is EventPhase.STARTED and e.event_type == event_type]


def test_it_raises_zone_activity_when_a_box_enters_the_zone_within_one_sample(tmp_path):
    # A "person" walks into the shelf zone at t = 3.0 s and stays in it until 6.0 s.
    events = detect(tmp_path, [Box(3.0, 6.0, 0.6, 0.55, 0.15, 0.35, dx=0.02)], camera(SHELF))
    [event] = started(events)
    assert event.zone_id == 7 and event.zone_name == "High-value shelf" and event.camera_name == "Aisle 3"
    assert abs(event.start - (T0 + 3.0)) <= 1 / FPS + 1e-6
    assert 0.5 <= event.score <= 1.0
    assert event.trigger_image.shape == (180, 320, 3)
    x1, y1, x2, y2 = event.trigger_box  # the moving pixels: where the box was drawn
    assert x1 == pytest.approx(0.6, abs=0.03) and y2 == pytest.approx(0.9, abs=0.03)
    [ended] = [e for e in events if e.phase is EventPhase.ENDED]
    assert abs(ended.end - (T0 + 5.8)) <= 1 / FPS + 1e-6  # the last sample with the box


def test_it_raises_nothing_for_movement_outside_the_zone(tmp_path):
    # Plenty of movement, all in the upper left quarter.
    events = detect(tmp_path, [Box(1.0, 7.0, 0.05, 0.05, 0.2, 0.35, dx=0.03)], camera(SHELF))
    assert events == []


def test_it_raises_nothing_below_the_threshold(tmp_path):
    small = [Box(2.0, 7.0, 0.7, 0.7, 0.05, 0.08)]  # about 2 % of the zone moves: a score near 0.1
    assert detect(tmp_path, small, camera(SHELF)) == []
    # The same scene with the zone's threshold lowered does fire: the detector saw it.
    sensitive = ZoneRule(7, "High-value shelf", SHELF.polygon, threshold=0.05)
    assert len(started(detect(tmp_path, small, camera(sensitive)))) == 1


def test_it_raises_nothing_for_a_single_frame_spike(tmp_path):
    # A flash over the whole zone that lasts one sampling period: it is in exactly one sample.
    spike = [Box(3.0, 3.0 + 1 / FPS, 0.5, 0.5, 0.5, 0.5)]
    assert detect(tmp_path, spike, camera(SHELF)) == []
    # Three samples long, it is a real event.
    assert len(started(detect(tmp_path, [Box(3.0, 3.0 + 3 / FPS, 0.5, 0.5, 0.5, 0.5)], camera(SHELF)))) == 1


def test_it_raises_loitering_after_the_dwell_time(tmp_path):
    # Someone stands at the shelf from 1.0 s to 7.0 s; the dwell time is 3 s.
    still = [Box(1.0, 7.0, 0.65, 0.55, 0.15, 0.4)]
    events = detect(tmp_path, still, camera(SHELF), dwell_seconds=3.0)
    [activity] = started(events, "zone_activity")
    [loitering] = started(events, "loitering")
    assert abs(activity.start - (T0 + 1.0)) <= 1 / FPS + 1e-6
    assert abs(loitering.start - (T0 + 4.0)) <= 1 / FPS + 1e-6
    # A zone watching only zone_activity never reports loitering.
    only_activity = ZoneRule(7, "Stockroom", SHELF.polygon, event_types=frozenset({"zone_activity"}))
    events = detect(tmp_path, still, camera(only_activity), dwell_seconds=3.0)
    assert started(events, "loitering") == [] and len(started(events, "zone_activity")) == 1


def test_it_scores_the_whole_frame_for_a_camera_without_zones_and_nothing_in_disabled_zones(tmp_path):
    boxes = [Box(2.0, 6.0, 0.1, 0.1, 0.5, 0.6, dx=0.05)]
    [event] = started(detect(tmp_path, boxes, camera()))
    assert event.zone_id is None and event.zone_name == ""
    disabled = ZoneRule(7, "Whole picture", ((0, 0), (1, 0), (1, 1), (0, 1)), enabled=False)
    assert detect(tmp_path, boxes, camera(disabled)) == []


def test_it_takes_its_options_from_settings(settings):
    settings.MOTION_INPUT_SIZE = (160, 90)
    settings.LOITERING_DWELL_SECONDS = 12.5
    detector = create_configured_detector("motion")
    assert isinstance(detector, MotionDetector)
    assert detector.input_size == (160, 90) and detector.dwell_seconds == 12.5
    assert detector.event_types == ("zone_activity", "loitering")
