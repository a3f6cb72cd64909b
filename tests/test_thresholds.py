import pytest

from cameras.rules import threshold_for
from tests.support.factories import make_camera, make_site, make_zone


@pytest.mark.django_db
def test_it_resolves_thresholds_zone_then_camera_then_default(settings):
    settings.DETECTION_THRESHOLD = 0.5
    camera = make_camera(make_site())
    zone = make_zone(camera)
    assert threshold_for(camera) == 0.5
    assert threshold_for(camera, zone) == 0.5
    camera.threshold = 0.7
    assert threshold_for(camera, zone) == 0.7
    zone.threshold = 0.9
    assert threshold_for(camera, zone) == 0.9
    assert threshold_for(camera) == 0.7
    zone.threshold = 0.0  # zero is a real threshold, not "unset"
    assert threshold_for(camera, zone) == 0.0
