import pytest
from django.core.exceptions import ValidationError

from cameras.models import Camera
from cameras.validators import (
    validate_clip_timing,
    validate_event_types,
    validate_polygon,
    validate_rtsp_url,
    validate_threshold,
    validate_time_zone,
)
from tests.support.factories import make_camera, make_site


def message(exc_info: pytest.ExceptionInfo[ValidationError]) -> str:
    return " ".join(exc_info.value.messages)


@pytest.mark.parametrize("url", [
    "rtsp://10.0.0.5/ch1",
    "rtsp://admin:pa%40ss@10.0.0.5:554/Streaming/Channels/101",
    "rtsps://dvr.example.com:322/live",
    "rtsp://[fe80::1]:554/ch1",
])
def test_it_accepts_rtsp_urls(url):
    validate_rtsp_url(url)


@pytest.mark.parametrize("url, expected", [
    ("http://10.0.0.5/ch1", "must start with rtsp:// or rtsps://"),
    ("10.0.0.5/ch1", "must start with rtsp:// or rtsps://"),
    ("rtsp:///ch1", "has no host"),
    ("rtsp://10.0.0.5:99999/ch1", "not a valid URL"),
    ("rtsp://10.0.0.5/ch 1", "whitespace"),
])
def test_it_rejects_bad_rtsp_urls_with_a_reason(url, expected):
    with pytest.raises(ValidationError) as exc:
        validate_rtsp_url(url)
    assert expected in message(exc)


def test_it_never_shows_the_password_of_a_rejected_url():
    with pytest.raises(ValidationError) as exc:
        validate_rtsp_url("http://admin:hunter2@10.0.0.5/ch1")
    assert "hunter2" not in message(exc)
    assert "admin:****@10.0.0.5" in message(exc)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0, None])
def test_it_accepts_thresholds_from_0_to_1(value):
    validate_threshold(value)


@pytest.mark.parametrize("value", [-0.01, 1.01, 5, float("nan")])
def test_it_rejects_thresholds_outside_0_to_1(value):
    with pytest.raises(ValidationError) as exc:
        validate_threshold(value)
    assert "from 0 to 1" in message(exc)


def test_it_accepts_a_simple_polygon():
    validate_polygon([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]])
    validate_polygon([[0, 0], [1, 0], [1, 1], [0, 1]])


@pytest.mark.parametrize("polygon, expected", [
    ("0.1,0.1 0.9,0.1", "list of [x, y] points"),
    ([[0.1, 0.1], [0.9, 0.1]], "at least 3 points"),
    ([[0.1, 0.1], [1.2, 0.1], [0.5, 0.9]], "Point 2 (1.2, 0.1) lies outside the picture"),
    ([[0.1, -0.1], [0.9, 0.1], [0.5, 0.9]], "Point 1"),
    ([[0.1, 0.1], [0.9], [0.5, 0.9]], "Point 2 of the polygon is [0.9]"),
    ([[0.1, 0.1], ["a", 0.2], [0.5, 0.9]], "two numbers"),
    ([[0.1, 0.1], [True, 0.2], [0.5, 0.9]], "two numbers"),
    ([[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]], "crosses itself"),  # a bow tie
    ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], "no area"),
    ([[0.1, 0.1], [0.9, 0.1], [0.1, 0.1], [0.5, 0.9]], "repeats a point"),
])
def test_it_rejects_malformed_polygons_with_a_reason(polygon, expected):
    with pytest.raises(ValidationError) as exc:
        validate_polygon(polygon)
    assert expected in message(exc)


def test_it_checks_clip_timing_against_the_ring():
    validate_clip_timing(pre=2, during=2, post=2, ring=10)
    with pytest.raises(ValidationError) as exc:
        validate_clip_timing(pre=10, during=2, post=2, ring=10)
    assert "pre-roll (10 s) must be shorter than the ring window (10 s)" in message(exc)
    with pytest.raises(ValidationError) as exc:
        validate_clip_timing(pre=2, during=-1, post=2, ring=10)
    assert "0 seconds or more" in message(exc)


def test_it_validates_event_type_lists():
    validate_event_types([])
    validate_event_types(["zone_activity", "loitering"])
    with pytest.raises(ValidationError) as exc:
        validate_event_types(["Loitering!"])
    assert "'Loitering!' is not an event type name" in message(exc)
    with pytest.raises(ValidationError):
        validate_event_types("loitering")


def test_it_validates_time_zones():
    validate_time_zone("Europe/London")
    with pytest.raises(ValidationError) as exc:
        validate_time_zone("Mars/Olympus")
    assert "IANA name" in message(exc)


@pytest.mark.django_db
def test_it_rejects_a_camera_whose_pre_roll_does_not_fit_the_ring():
    camera = make_camera(make_site())
    camera.pre_seconds, camera.ring_seconds = 12, 10
    with pytest.raises(ValidationError) as exc:
        camera.full_clean()
    assert "pre_seconds" in exc.value.message_dict
    camera.pre_seconds = -1
    with pytest.raises(ValidationError) as exc:
        camera.full_clean()
    assert "0 seconds or more" in " ".join(exc.value.message_dict["pre_seconds"])


@pytest.mark.django_db
def test_it_rejects_a_camera_with_a_bad_url_and_threshold():
    camera = Camera(site=make_site(), name="Door", stream_url="http://x/y", detect_url="rtsp:///sub", threshold=2)
    with pytest.raises(ValidationError) as exc:
        camera.full_clean()
    assert {"stream_url", "detect_url", "threshold"} <= set(exc.value.message_dict)
