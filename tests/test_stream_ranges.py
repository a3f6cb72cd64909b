"""Clip playback and download: HTTP Range requests, file names, the access log, no public URL."""
from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from alerts.models import AccessAction, ClipAccess, ClipStatus
from alerts.streaming import ByteRange, RangeNotSatisfiable, parse_range
from tests.support.clips import SampleClip, World
from tests.support.factories import make_alert


def _body(response) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content)


@pytest.fixture
def reviewer(world: World) -> Client:
    client = Client()
    client.force_login(world.users["reviewer"])  # type: ignore[arg-type]
    return client


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=1000-1999", 1000, 1999), ("bytes=5000-", 5000, None),
     ("bytes=-500", None, None), ("bytes=100-999999999", 100, None)],
)
def test_it_answers_a_range_with_206_and_exactly_those_bytes(
    world: World, reviewer: Client, test_clip: SampleClip, header: str, start: int | None, end: int | None
) -> None:
    size = len(test_clip.data)
    first = size - 500 if start is None else start
    last = size - 1 if end is None else end

    response = reviewer.get(f"/alerts/{world.alert_a.pk}/clip/", HTTP_RANGE=header)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert _body(response) == test_clip.data[first : last + 1]


def test_it_sends_the_whole_clip_without_a_range(world: World, reviewer: Client, test_clip: SampleClip) -> None:
    response = reviewer.get(f"/alerts/{world.alert_a.pk}/clip/")

    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(test_clip.data))
    assert _body(response) == test_clip.data
    assert response["Content-Disposition"].startswith("inline")
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0"])
def test_it_answers_416_for_a_range_past_the_end(world: World, reviewer: Client, test_clip: SampleClip,
                                                  header: str) -> None:
    response = reviewer.get(f"/alerts/{world.alert_a.pk}/clip/", HTTP_RANGE=header)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(test_clip.data)}"


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-10", "bytes=0-10,20-30", "bytes=50-10", "bytes=-"])
def test_it_ignores_a_range_it_cannot_honour_and_sends_everything(world: World, reviewer: Client,
                                                                   test_clip: SampleClip, header: str) -> None:
    response = reviewer.get(f"/alerts/{world.alert_a.pk}/clip/", HTTP_RANGE=header)

    assert response.status_code == 200
    assert _body(response) == test_clip.data


def test_it_ignores_the_range_when_if_range_names_another_version(world: World, reviewer: Client,
                                                                   test_clip: SampleClip) -> None:
    url = f"/alerts/{world.alert_a.pk}/clip/"

    stale = reviewer.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"something-else"')
    current = reviewer.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{test_clip.sha256}"')

    assert stale.status_code == 200
    assert current.status_code == 206
    assert current["ETag"] == f'"{test_clip.sha256}"'


def test_it_downloads_with_a_readable_name_and_the_stored_hash(world: World, reviewer: Client,
                                                               test_clip: SampleClip) -> None:
    response = reviewer.get(f"/alerts/{world.alert_a.pk}/download/")

    assert response.status_code == 200
    # Site, camera, the event's local time at the site (BST) and the event type.
    assert response["Content-Disposition"] == (
        f'attachment; filename="riverside_aisle-3_2024-06-01_140005_concealment_{world.alert_a.pk}.mp4"'
    )
    assert hashlib.sha256(_body(response)).hexdigest() == world.alert_a.clip_sha256 == test_clip.sha256


def test_it_resumes_a_download_with_a_range(world: World, reviewer: Client, test_clip: SampleClip) -> None:
    response = reviewer.get(f"/alerts/{world.alert_a.pk}/download/", HTTP_RANGE="bytes=20000-")

    assert response.status_code == 206
    assert _body(response) == test_clip.data[20000:]
    # Every response that carries clip bytes is recorded, from byte 0 or not.
    assert ClipAccess.objects.filter(alert=world.alert_a, action=AccessAction.DOWNLOAD).count() == 1


def test_it_records_one_view_per_playback_not_one_per_range(world: World, reviewer: Client) -> None:
    url = f"/alerts/{world.alert_a.pk}/clip/"

    for header in ["bytes=0-", "bytes=4096-", "bytes=12000-15999", "bytes=0-"]:
        _body(reviewer.get(url, HTTP_RANGE=header, HTTP_USER_AGENT="TestBrowser/1.0", REMOTE_ADDR="10.1.2.3"))

    views = list(ClipAccess.objects.all())
    assert [(v.action, v.username, v.ip_address, v.user_agent) for v in views] == [
        (AccessAction.VIEW, "reviewer", "10.1.2.3", "TestBrowser/1.0")
    ]


def test_it_records_downloads_apart_from_views_one_per_minute_and_user(world: World, reviewer: Client) -> None:
    for _ in range(2):
        _body(reviewer.get(f"/alerts/{world.alert_a.pk}/download/"))
    _body(reviewer.get(f"/alerts/{world.alert_a.pk}/clip/"))

    actions = sorted(ClipAccess.objects.filter(alert=world.alert_a).values_list("action", flat=True))
    assert actions == [AccessAction.DOWNLOAD, AccessAction.VIEW]


def test_it_shows_the_access_history_to_managers_only(world: World, reviewer: Client) -> None:
    _body(reviewer.get(f"/alerts/{world.alert_a.pk}/download/"))
    manager, viewer = Client(), Client()
    manager.force_login(world.users["manager"])  # type: ignore[arg-type]
    viewer.force_login(world.users["viewer"])  # type: ignore[arg-type]

    as_manager = manager.get(f"/alerts/{world.alert_a.pk}/").content.decode()
    as_reviewer = reviewer.get(f"/alerts/{world.alert_a.pk}/").content.decode()

    assert 'id="access-log"' in as_manager and "Downloaded" in as_manager and "reviewer" in as_manager
    assert 'id="access-log"' not in as_reviewer
    assert 'id="access-log"' not in viewer.get(f"/alerts/{world.alert_a.pk}/").content.decode()


@pytest.mark.parametrize("status", [ClipStatus.RECORDING, ClipStatus.BUILDING, ClipStatus.FAILED])
def test_it_serves_no_clip_before_it_is_ready(world: World, reviewer: Client, status: ClipStatus) -> None:
    alert = make_alert(world.camera_a, clip_status=status)

    assert reviewer.get(f"/alerts/{alert.pk}/clip/").status_code == 404
    assert reviewer.get(f"/alerts/{alert.pk}/download/").status_code == 404
    assert not ClipAccess.objects.exists()


def test_it_answers_404_when_the_clip_file_is_missing(world: World, reviewer: Client) -> None:
    from alerts.models import clip_storage

    clip_storage().delete(world.alert_a.clip.name)

    assert reviewer.get(f"/alerts/{world.alert_a.pk}/clip/").status_code == 404


def _superuser(world: World) -> Client:
    client = Client()
    client.force_login(world.users["superuser"])  # type: ignore[arg-type]
    return client


def test_it_gives_clips_no_public_url(world: World) -> None:
    from alerts.models import clip_storage

    name = world.alert_a.clip.name
    # FileSystemStorage still builds a URL from MEDIA_URL; what matters is that nothing serves it.
    paths = {clip_storage().url(name), "/media/" + name, "/clips/" + name, "/static/" + name, "/" + name}
    for client in (Client(), _superuser(world)):
        for path in paths:
            assert client.get(path).status_code == 404, path


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("bytes=0-0", ByteRange(0, 0)), ("bytes = 2 - 4", ByteRange(2, 4)),
     ("BYTES=-3", ByteRange(7, 9)), ("bytes=-30", ByteRange(0, 9)), ("bytes=9-", ByteRange(9, 9))],
)
def test_it_parses_single_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_it_refuses_ranges_outside_the_file(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 10)
