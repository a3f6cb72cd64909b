"""alert_raise: the alert row, its clip window and its thumbnail, from a detection event."""
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from alerts.emitter import RaiseResult, alert_event_close, alert_raise
from alerts.models import Alert, ClipStatus, clip_storage
from detection.detectors import create_detector
from detection.inference.events import Event, EventPhase, RuleConfig
from detection.recording.thumbnail import thumbnail_jpeg
from detection.selectors import camera_rules_list
from tests.support.clips import clip_settings  # noqa: F401
from tests.support.factories import make_camera, make_site, make_zone
from tests.support.video import T0, Box, run_detection, sample_video, write_video

pytestmark = pytest.mark.django_db


def raise_with_snapshot(event: Event) -> RaiseResult:
    """As the spooler raises an alert: with the event's snapshot rendered beside it."""
    return alert_raise(event, thumbnail=thumbnail_jpeg(event))


def event_for(camera, zone=None, *, event_type="zone_activity", start=T0, score=0.8, image=True, **fields):
    values = dict(
        phase=EventPhase.STARTED, camera_id=camera.pk, camera_name=str(camera), zone_id=zone.pk if zone else None,
        zone_name=zone.name if zone else "", event_type=event_type, score=score, threshold=0.5, start=start,
        last_high=start + 0.4, end=None, clip_start=start - 2, clip_end=start + 4, clip_final=False,
        trigger_at=start + 0.2, trigger_box=(0.25, 0.5, 0.5, 0.9),
        trigger_image=np.full((180, 320, 3), 90, np.uint8) if image else None,
    )
    values.update(fields)
    return Event(**values)


def at(seconds):
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_it_creates_a_recording_alert_with_its_clip_window_and_a_thumbnail(clip_settings):
    camera = make_camera(make_site())
    zone = make_zone(camera, "Spirits")
    result = raise_with_snapshot(event_for(camera, zone))
    assert result.created and not result.suppressed
    alert = Alert.objects.get(pk=result.alert_id)
    assert (alert.camera, alert.zone, alert.zone_name, alert.event_type) == (camera, zone, "Spirits", "zone_activity")
    assert alert.score == 0.8 and alert.clip_status == ClipStatus.RECORDING
    assert (alert.event_start, alert.clip_start, alert.clip_end) == (at(T0), at(T0 - 2), at(T0 + 4))
    assert alert.suppressed_count == 0 and alert.event_end is None
    with clip_storage().open(alert.thumbnail.name) as fh:
        picture = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (180, 320, 3)
    # The box is drawn in yellow (BGR 0, 255, 255) on its left edge; the inside is untouched.
    blue, green, red = picture[135, 80].tolist()
    assert green > 200 and red > 200 and blue < 80
    assert picture[135, 120].tolist() == pytest.approx([90, 90, 90], abs=20)


def test_it_keeps_the_zone_name_when_the_zone_was_deleted(clip_settings):
    camera = make_camera(make_site())
    zone = make_zone(camera, "Old shelf")
    event = event_for(camera, zone, image=False)
    zone.delete()
    alert = Alert.objects.get(pk=raise_with_snapshot(event).alert_id)
    assert alert.zone is None and alert.zone_name == "Old shelf" and not alert.thumbnail


def test_it_records_how_the_event_ended_and_leaves_the_first_clips_window_as_it_was(clip_settings):
    camera = make_camera(make_site())
    alert_id = raise_with_snapshot(event_for(camera, image=False)).alert_id
    ended = event_for(camera, phase=EventPhase.ENDED, end=T0 + 9, last_high=T0 + 9, clip_end=T0 + 11, score=0.95)
    assert alert_event_close(alert_id=alert_id, event=ended)
    alert = Alert.objects.get(pk=alert_id)
    assert (alert.event_end, alert.clip_end, alert.score) == (at(T0 + 9), at(T0 + 4), 0.95)


def test_it_raises_an_alert_from_video_through_detector_rules_and_emitter(tmp_path, clip_settings, settings):
    settings.CLIP_PRE_SECONDS = settings.CLIP_DURING_SECONDS = settings.CLIP_POST_SECONDS = 2.0
    camera = make_camera(make_site(), "Aisle 3")
    zone = make_zone(camera, "Shelf", polygon=[[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]])
    rules = camera_rules_list()
    video = write_video(tmp_path / "scene.mp4", seconds=8, boxes=[Box(3.0, 6.0, 0.6, 0.55, 0.15, 0.35)])
    frames = sample_video(video, camera_id=camera.pk, fps=5, size=(320, 180))
    events = run_detection(create_detector("motion", input_size=(320, 180)), rules, RuleConfig(), frames)
    results = [raise_with_snapshot(e) for e in events if e.phase is EventPhase.STARTED]
    assert [r.created for r in results] == [True]
    alert = Alert.objects.get()
    assert alert.zone == zone and alert.event_type == "zone_activity"
    assert abs((alert.event_start - at(T0 + 3.0)).total_seconds()) <= 0.2 + 1e-3
    assert (alert.clip_end - alert.clip_start).total_seconds() == pytest.approx(6.0)
    assert alert.thumbnail.name.endswith(f"/{alert.pk}.jpg")


def person_track(start, *, seconds, keypoints=True):
    """A person walking right at 5 fps from `start`, with a standing pose at every point."""
    from detection.tracking.tracks import TrackEvidence, TrackPoint

    def pose(box):
        x1, y1, x2, y2 = box
        cx, h = (x1 + x2) / 2, y2 - y1
        points = [(cx, y1 + 0.1 * h, 0.9)] * 5 + [(x1 + 0.02, y1 + 0.25 * h, 0.9), (x2 - 0.02, y1 + 0.25 * h, 0.9)]
        points += [(x1 + 0.01, y1 + 0.45 * h, 0.9), (x2 - 0.01, y1 + 0.45 * h, 0.9)] * 2
        points += [(x1 + 0.03, y1 + 0.55 * h, 0.9), (x2 - 0.03, y1 + 0.55 * h, 0.9)] * 3
        return tuple(points)

    points = []
    for n in range(int(seconds * 5)):
        box = (0.1 + 0.01 * n, 0.3, 0.3 + 0.01 * n, 0.95)
        points.append(TrackPoint(start + n / 5, box, 0.7, pose(box) if keypoints else None))
    return TrackEvidence(4, tuple(points))


def test_it_stores_the_persons_track_over_the_clip_window_and_draws_the_skeleton(clip_settings):
    camera = make_camera(make_site())
    track = person_track(T0 - 6, seconds=6.6)  # from 6 s before the event: longer than the pre-roll
    event = event_for(camera, event_type="exit_without_checkout", track=track, trigger_at=T0,
                      trigger_box=track.points[-1].box, trigger_image=np.full((360, 640, 3), 90, np.uint8))
    alert = Alert.objects.get(pk=raise_with_snapshot(event).alert_id)
    stored = alert.track
    assert stored["track_id"] == 4 and len(stored["keypoint_names"]) == 17 and stored["skeleton"]
    times = [p["t"] for p in stored["points"]]
    assert times == sorted(times) and min(times) >= T0 - 2 and max(times) == pytest.approx(T0)  # clip window only
    assert stored["points"][-1]["box"] == [round(v, 4) for v in track.points[-1].box]
    assert len(stored["points"][-1]["keypoints"]) == 17
    with clip_storage().open(alert.thumbnail.name) as fh:
        picture = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    magenta = (picture[:, :, 0] > 180) & (picture[:, :, 2] > 180) & (picture[:, :, 1] < 120)
    assert magenta.sum() > 50  # the skeleton's bones are drawn

    # When the event ends, the track is extended to its last high sample.
    longer = person_track(T0 - 6, seconds=9.0)
    ended = event_for(camera, event_type="exit_without_checkout", phase=EventPhase.ENDED, end=T0 + 2.6,
                      last_high=T0 + 2.6, clip_end=T0 + 4.6, track=longer)
    alert_event_close(alert_id=alert.pk, event=ended)
    alert.refresh_from_db()
    assert max(p["t"] for p in alert.track["points"]) == pytest.approx(T0 + 2.8)


@pytest.mark.django_db(transaction=True)
def test_it_stores_the_thumbnail_outside_the_dedup_transaction(clip_settings, monkeypatch):
    """A slow bucket must not hold the dedup key's row lock: no storage call inside the transaction."""
    from django.db import connection

    camera = make_camera(make_site())
    storage = clip_storage()
    inside = []
    original = storage.save
    monkeypatch.setattr(storage, "save", lambda *a, **k: inside.append(connection.in_atomic_block) or original(*a, **k))
    alert = Alert.objects.get(pk=raise_with_snapshot(event_for(camera)).alert_id)
    assert inside == [False]
    assert alert.thumbnail.name and storage.exists(alert.thumbnail.name)


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_alert_when_the_thumbnail_cannot_be_stored(clip_settings, monkeypatch, caplog):
    camera = make_camera(make_site())

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(clip_storage(), "save", full_disk)
    result = raise_with_snapshot(event_for(camera))
    alert = Alert.objects.get(pk=result.alert_id)
    assert result.created and not alert.thumbnail
    assert any("thumbnail not stored" in r.getMessage() for r in caplog.records)


def test_a_retried_raise_finds_the_alert_its_first_try_committed():
    camera = make_camera(make_site(), "Aisle 3")
    event = event_for(camera, image=False)
    first = alert_raise(event)

    again = alert_raise(event, retry=True)  # the first try's commit happened, but its answer was lost

    assert again == first and again.created
    assert Alert.objects.count() == 1 and Alert.objects.get().suppressed_count == 0
    assert alert_raise(event).suppressed  # not a retry: the same event twice is a repeat
