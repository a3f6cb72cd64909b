"""Rules read from the database: zones, thresholds (zone > camera > event type > default), detectors."""
import pytest

from detection.detectors.base import Detection
from detection.inference.events import RuleConfig, RuleEngine, threshold_for
from detection.selectors import camera_rules_list
from tests.support.factories import make_camera, make_site, make_zone

pytestmark = pytest.mark.django_db


def test_it_builds_frozen_rules_of_enabled_cameras_with_their_zones(settings):
    settings.DETECTOR = "motion"
    site = make_site()
    camera = make_camera(site, "Aisle 3", threshold=0.7, pre_seconds=3.0, detector="torchscript")
    make_zone(camera, "Shelf", polygon=[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]], threshold=0.8, event_types=["loitering"])
    make_zone(camera, "Door", enabled=False)
    plain = make_camera(site, "Entrance")
    make_camera(site, "Off", enabled=False)
    rules = camera_rules_list()
    assert set(rules) == {camera.pk, plain.pk}
    aisle = rules[camera.pk]
    assert aisle.detector == "torchscript" and rules[plain.pk].detector == "motion"  # per-camera override
    assert (aisle.threshold, aisle.pre_seconds, aisle.during_seconds) == (0.7, 3.0, settings.CLIP_DURING_SECONDS)
    door, shelf = aisle.zones
    assert shelf.polygon == ((0.1, 0.1), (0.9, 0.1), (0.5, 0.9)) and shelf.event_types == frozenset({"loitering"})
    assert not door.enabled and shelf.watches("loitering") and not shelf.watches("zone_activity")
    assert camera_rules_list(camera_ids=[plain.pk]).keys() == {plain.pk}


def test_it_resolves_thresholds_zone_then_camera_then_event_type_then_default(settings):
    settings.DETECTION_THRESHOLD = 0.5
    settings.DETECTION_THRESHOLDS = {"zone_activity": 0.6}
    camera = make_camera(make_site())
    zone = make_zone(camera, "Shelf")
    config = RuleConfig.from_settings()

    def resolved(event_type):
        rules = camera_rules_list()[camera.pk]
        return threshold_for(rules, rules.zones[0], event_type, config)

    assert (resolved("loitering"), resolved("zone_activity")) == (0.5, 0.6)
    camera.threshold = 0.7
    camera.save()
    assert (resolved("loitering"), resolved("zone_activity")) == (0.7, 0.7)
    zone.threshold = 0.8
    zone.save()
    assert (resolved("loitering"), resolved("zone_activity")) == (0.8, 0.8)

    # The engine applies it: scores of 0.75 fire under the camera's 0.7, not under the zone's 0.8.
    def fires(rules):
        engine = RuleEngine(RuleConfig(smoothing_k=1, smoothing_n=1), rules)
        return engine.process(camera.pk, 100.0, [Detection(camera.pk, "zone_activity", 0.75)])

    assert fires(camera_rules_list()) == []
    zone.threshold = None
    zone.save()
    assert [e.threshold for e in fires(camera_rules_list())] == [0.7]
