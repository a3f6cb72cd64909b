"""The detail page hands the triggering person's track to the overlay script, escaped, or nothing at all."""
from __future__ import annotations

import json
import re
from typing import Any

from django.test import Client

from alerts.models import Alert, ClipStatus
from detection.tracking.tracks import KEYPOINT_NAMES, SKELETON, TrackEvidence, TrackPoint
from tests.support.clips import World
from tests.support.factories import make_alert

TOGGLE = "Show what the system saw"
PAYLOAD = re.compile(r'<script id="track-overlay-data" type="application/json">(.*?)</script>', re.S)


def _track(alert: Alert, *, track_id: Any = 3, samples: int = 4) -> dict[str, Any]:
    """As the detectors store it (TrackEvidence.to_json)."""
    start = alert.clip_start.timestamp()  # type: ignore[union-attr]
    points = tuple(TrackPoint(start + 1.0 + i * 0.2, (0.2, 0.3, 0.4, 0.7), 0.71,
                              ((0.3, 0.4, 0.9),) * len(KEYPOINT_NAMES) if i % 2 else None) for i in range(samples))
    return TrackEvidence(track_id, points).to_json()


def _page(world: World, alert: Alert, persona: str = "viewer") -> str:
    client = Client()
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    response = client.get(f"/alerts/{alert.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _payload(html: str) -> dict[str, Any]:
    found = PAYLOAD.findall(html)
    assert len(found) == 1, found
    return json.loads(found[0])  # type: ignore[no-any-return]


def test_it_gives_the_overlay_the_track_and_the_clip_start(world: World) -> None:
    alert = world.alert_a
    alert.track = _track(alert)
    alert.save(update_fields=["track"])

    html = _page(world, alert)

    payload = _payload(html)
    assert payload["track"] == alert.track
    assert payload["clip_start"] == alert.clip_start.timestamp()  # type: ignore[union-attr]
    assert payload["skeleton"] == [list(bone) for bone in SKELETON]
    assert TOGGLE in html and 'id="track-overlay-toggle"' in html
    assert "js/track_overlay.js" in html
    assert "Person track #3, 4 samples" in html


def test_it_offers_no_overlay_for_an_alert_without_a_track(world: World) -> None:
    html = _page(world, world.alert_a)  # a motion-detector alert: track is null

    assert "track-overlay-data" not in html
    assert TOGGLE not in html and "track_overlay.js" not in html
    assert "Person track" not in html


def test_it_offers_no_overlay_for_a_track_without_points(world: World) -> None:
    alert = world.alert_a
    alert.track = {"track_id": 9, "keypoint_names": list(KEYPOINT_NAMES), "points": []}
    alert.save(update_fields=["track"])

    html = _page(world, alert)

    assert "track-overlay-data" not in html and TOGGLE not in html
    assert "Person track #9, 0 samples" in html


def test_it_offers_no_overlay_when_the_clip_failed(world: World) -> None:
    alert = make_alert(world.camera_a, clip_status=ClipStatus.FAILED, clip_error="no keyframe")
    alert.track = _track(alert)
    alert.save(update_fields=["track"])

    html = _page(world, alert)

    assert "track-overlay-data" not in html and TOGGLE not in html
    assert "Person track #3, 4 samples" in html


def test_it_gives_the_overlay_while_the_clip_is_still_building(world: World) -> None:
    # The player is swapped in by polling once the clip is ready; the overlay attaches to it then.
    alert = make_alert(world.camera_a, clip_status=ClipStatus.BUILDING)
    alert.track = _track(alert, samples=1)
    alert.save(update_fields=["track"])

    html = _page(world, alert)

    assert _payload(html)["track"] == alert.track
    assert re.search(r"<label[^>]*data-track-toggle[^>]*hidden", html)  # shown by the script with the video
    assert "Person track #3, 1 sample<" in html


def test_it_escapes_hostile_strings_in_the_track(world: World) -> None:
    hostile = '</script><script>alert("x")</script><!--'
    alert = world.alert_a
    track = _track(alert, track_id="<b>7</b>")
    track["keypoint_names"][0] = hostile
    track["points"][0]["note"] = hostile
    alert.track = track
    alert.save(update_fields=["track"])

    html = _page(world, alert)

    assert "<script>alert(" not in html and "<b>7</b>" not in html and "<!--" not in html
    assert _payload(html)["track"] == track  # still the same data once parsed
    assert "Person track #&lt;b&gt;7&lt;/b&gt;, 4 samples" in html
