"""The alert detail page, reviews, the wait for a clip, and the camera status page."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, ClipStatus, ReviewStatus
from tests.support.clips import SampleClip, World, attach_clip
from tests.support.factories import make_alert, make_camera


def _client(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


def test_it_shows_the_metadata_in_the_sites_time_zone(world: World) -> None:
    alert = world.alert_b  # Hilltop, America/New_York
    Alert.objects.filter(pk=alert.pk).update(
        event_start=datetime(2024, 1, 15, 17, 30, 0, tzinfo=UTC),
        event_end=datetime(2024, 1, 15, 17, 30, 2, tzinfo=UTC),
        clip_start=datetime(2024, 1, 15, 17, 29, 58, tzinfo=UTC),
        clip_end=datetime(2024, 1, 15, 17, 30, 4, tzinfo=UTC),
        clip_error="first attempt: disk full",
    )

    html = _client(world, "superuser").get(f"/alerts/{alert.pk}/").content.decode()

    assert "2024-01-15 12:30:00 EST" in html  # event start
    assert "2024-01-15 12:30:02 EST" in html  # event end
    assert "2024-01-15 12:29:58 EST" in html and "12:30:04" in html and "(6.0 s)" in html  # clip window
    for text in ["Hilltop", "Entrance", "Whole frame", "Loitering", "0.900", alert.clip_sha256, "Ready",
                 "first attempt: disk full"]:
        assert text in html, text
    assert f'src="/alerts/{alert.pk}/clip/"' in html


def test_it_shows_the_zone_and_score_of_the_alert(world: World) -> None:
    html = _client(world, "viewer").get(f"/alerts/{world.alert_a.pk}/").content.decode()

    assert "Spirits shelf" in html and "Aisle 3" in html and "Riverside" in html
    assert "0.870" in html and "BST" in html


def test_it_offers_review_and_download_to_reviewers_only(world: World) -> None:
    as_viewer = _client(world, "viewer").get(f"/alerts/{world.alert_a.pk}/").content.decode()
    as_reviewer = _client(world, "reviewer").get(f"/alerts/{world.alert_a.pk}/").content.decode()

    assert 'id="review"' not in as_viewer and "/download/" not in as_viewer
    assert 'id="review"' in as_reviewer and f"/alerts/{world.alert_a.pk}/download/" in as_reviewer


@pytest.mark.parametrize("decision", [ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED])
def test_it_records_a_review_with_its_note(world: World, decision: ReviewStatus) -> None:
    client = _client(world, "reviewer")

    response = client.post(f"/alerts/{world.alert_a.pk}/review/", {"decision": decision, "note": "  Seen on CCTV.  "})

    world.alert_a.refresh_from_db()
    assert response.status_code == 302
    assert world.alert_a.review_status == decision
    assert world.alert_a.review_note == "Seen on CCTV."
    assert world.alert_a.reviewed_by == world.users["reviewer"]
    assert timezone.now() - world.alert_a.reviewed_at < timedelta(seconds=10)  # type: ignore[operator]
    page = client.get(f"/alerts/{world.alert_a.pk}/").content.decode()
    assert "Seen on CCTV." in page and "by <strong>reviewer</strong>" in page


@pytest.mark.parametrize("data", [{}, {"decision": "unreviewed"}, {"decision": "maybe"},
                                  {"decision": "confirmed", "note": "x" * 2001}])
def test_it_refuses_a_bad_review_and_keeps_the_alert(world: World, data: dict[str, str]) -> None:
    response = _client(world, "reviewer").post(f"/alerts/{world.alert_a.pk}/review/", data)

    world.alert_a.refresh_from_db()
    assert response.status_code == 400
    assert world.alert_a.review_status == ReviewStatus.UNREVIEWED


def test_it_shows_a_clip_that_is_not_ready_and_reports_when_it_is(world: World, test_clip: SampleClip) -> None:
    alert = make_alert(world.camera_a, clip_status=ClipStatus.BUILDING)
    client = _client(world, "viewer")

    page = client.get(f"/alerts/{alert.pk}/").content.decode()
    waiting = client.get(f"/alerts/{alert.pk}/status/").json()
    attach_clip(alert, test_clip)
    ready = client.get(f"/alerts/{alert.pk}/status/").json()

    assert "Clip not ready yet" in page and f'data-status-url="/alerts/{alert.pk}/status/"' in page
    assert "<video" not in page
    assert waiting == {"clip_status": "building", "final": False, "player_html": ""}
    assert ready["final"] and ready["clip_status"] == "ready"
    assert f'src="/alerts/{alert.pk}/clip/"' in ready["player_html"]


def test_it_shows_why_a_clip_failed(world: World) -> None:
    alert = make_alert(world.camera_a, clip_status=ClipStatus.FAILED, clip_error="no keyframe in the ring")

    page = _client(world, "viewer").get(f"/alerts/{alert.pk}/").content.decode()
    status = _client(world, "viewer").get(f"/alerts/{alert.pk}/status/").json()

    assert "The clip could not be built" in page and "no keyframe in the ring" in page
    assert status["final"] and "no keyframe in the ring" in status["player_html"]


def test_it_shows_each_cameras_state_per_site(world: World) -> None:
    now = timezone.now()
    world.camera_a.__class__.objects.filter(pk=world.camera_a.pk).update(online=True, last_frame_at=now)
    make_camera(world.site_a, "Back door", online=False, last_frame_at=now - timedelta(hours=2),
                last_error="rtsp://admin:hunter2@10.0.0.9:554/ch2: connection refused, retrying in 8 s")
    make_camera(world.site_a, "Stockroom", online=True, last_frame_at=now - timedelta(minutes=5))
    make_camera(world.site_a, "Old till", enabled=False)

    html = _client(world, "viewer").get("/cameras/").content.decode()

    assert "Riverside" in html and "Hilltop" not in html and "Entrance" not in html
    for name, state in [("Aisle 3", "Online"), ("Back door", "Offline"), ("Stockroom", "No recent frame"),
                        ("Old till", "Disabled")]:
        row = html[html.index(name):]
        assert state in row[: row.index("</tr>")], name
    assert "connection refused, retrying in 8 s" in html
    assert "hunter2" not in html  # DVR passwords never reach the page
    assert "2\xa0hours ago" in html


def test_it_refreshes_the_camera_status_as_a_fragment(world: World) -> None:
    fragment = _client(world, "superuser").get("/cameras/", {"fragment": 1}).content.decode()

    assert "<html" not in fragment
    assert "Riverside" in fragment and "Hilltop" in fragment


def test_it_needs_login_for_every_dashboard_page(world: World) -> None:
    for url in ["/", "/cameras/", "/alerts/poll/", f"/alerts/{world.alert_a.pk}/status/",
                f"/alerts/{world.alert_a.pk}/thumbnail/"]:
        assert Client().get(url)["Location"].startswith("/login/?next="), url


def test_it_says_what_an_incomplete_clip_is_missing_on_the_page_and_in_the_list(world: World) -> None:
    warning = "Missing from the clip: 3.0 s from 12:30:01 UTC (the camera sent nothing)."
    Alert.objects.filter(pk=world.alert_a.pk).update(clip_warning=warning)
    client = _client(world, "viewer")

    detail = client.get(f"/alerts/{world.alert_a.pk}/").content.decode()
    listing = client.get("/").content.decode()

    assert "Clip incomplete" in detail and warning in detail
    assert listing.count("data-clip-incomplete") == 1
