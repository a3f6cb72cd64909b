from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cameras.models import Camera, Site
from tests.support.factories import make_site

pytestmark = pytest.mark.django_db
URL = "rtsp://admin:s3cret@10.0.0.5:554/Streaming/Channels/{channel}01"


def run(*args: str) -> str:
    out = StringIO()
    call_command("add_cameras", *args, stdout=out)
    return out.getvalue()


def test_it_creates_one_camera_per_channel_and_a_missing_site():
    output = run("--site", "Main St", "--url", URL, "--channels", "1-16", "--time-zone", "Europe/London")
    site = Site.objects.get(name="Main St")
    assert site.time_zone == "Europe/London"
    cameras = list(site.cameras.order_by("channel"))
    assert [c.channel for c in cameras] == list(range(1, 17))
    assert cameras[4].stream_url == "rtsp://admin:s3cret@10.0.0.5:554/Streaming/Channels/501"
    assert cameras[4].name == "Channel 5"
    assert "16 camera(s) created, 0 updated" in output
    assert "s3cret" not in output
    assert "admin:****@10.0.0.5" in output


def test_it_is_safe_to_re_run_and_updates_urls_without_renaming():
    run("--site", "Main St", "--url", URL, "--channels", "1-4")
    Camera.objects.filter(channel=2).update(name="Front door")
    output = run("--site", "Main St", "--url", URL.replace("10.0.0.5", "10.0.0.6"), "--channels", "1-4",
                 "--detect-url", "rtsp://admin:s3cret@10.0.0.6/Streaming/Channels/{channel}02")
    assert Camera.objects.count() == 4
    assert "0 camera(s) created, 4 updated" in output
    door = Camera.objects.get(channel=2)
    assert door.name == "Front door"
    assert door.stream_url == "rtsp://admin:s3cret@10.0.0.6:554/Streaming/Channels/201"
    assert door.detect_url == "rtsp://admin:s3cret@10.0.0.6/Streaming/Channels/202"


def test_it_accepts_lists_and_ranges_of_channels():
    run("--site", "S", "--url", URL, "--channels", "1,3,5-7")
    assert sorted(Camera.objects.values_list("channel", flat=True)) == [1, 3, 5, 6, 7]


@pytest.mark.parametrize("channels", ["16-1", "a-b", "0-3", "1,,2", ""])
def test_it_rejects_bad_channel_lists(channels):
    with pytest.raises(CommandError, match="--channels"):
        run("--site", "S", "--url", URL, "--channels", channels)
    assert not Camera.objects.exists()


def test_it_saves_nothing_when_a_url_is_invalid():
    make_site("S")
    with pytest.raises(CommandError) as exc:
        run("--site", "S", "--url", "http://admin:s3cret@dvr/{channel}", "--channels", "1-4")
    assert "Nothing was saved" in str(exc.value)
    assert "must start with rtsp://" in str(exc.value)
    assert "s3cret" not in str(exc.value)
    assert not Camera.objects.exists()


def test_it_refuses_a_template_without_the_channel_placeholder():
    with pytest.raises(CommandError, match=r"has no \{channel\}"):
        run("--site", "S", "--url", "rtsp://dvr/live", "--channels", "1-2")


def test_it_rejects_a_bad_time_zone_for_a_new_site():
    with pytest.raises(CommandError, match="--time-zone"):
        run("--site", "S", "--url", URL, "--channels", "1", "--time-zone", "Nowhere/Land")
    assert not Site.objects.exists()
