"""The zone editor in the camera admin: snapshot with zones, polygons saved through the admin form."""
import json

import cv2
import numpy as np
import pytest
from django.test import Client

from cameras.models import Role
from cameras.snapshots import camera_snapshot_data_uri, camera_snapshot_save, snapshot_name
from tests.support.factories import PASSWORD, SQUARE, make_camera, make_site, make_user, make_zone

TRIANGLE = [[0.2, 0.3], [0.8, 0.3], [0.5, 0.9]]
BOW_TIE = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]


def jpeg(colour=(40, 160, 40), size=(320, 180)):
    ok, data = cv2.imencode(".jpg", np.full((size[1], size[0], 3), colour, np.uint8))
    assert ok
    return data.tobytes()


@pytest.fixture
def shop(db, clip_settings, fast_passwords):
    site, other = make_site("Riverside"), make_site("Hilltop")
    camera = make_camera(site, "Aisle 3")
    zone = make_zone(camera, "Spirits", polygon=SQUARE)
    make_user("manager", site=site, role=Role.MANAGER)
    make_user("other", site=other, role=Role.MANAGER)
    return camera, zone


def login(username):
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def change_form(camera, zone, polygon):
    return {
        "site": str(camera.site_id), "name": camera.name, "channel": str(camera.channel),
        "stream_url": camera.stream_url, "detect_url": "", "enabled": "on", "detector": "", "detection_fps": "5",
        "threshold": "", "pre_seconds": "", "during_seconds": "", "post_seconds": "", "ring_seconds": "",
        "zones-TOTAL_FORMS": "1", "zones-INITIAL_FORMS": "1", "zones-MIN_NUM_FORMS": "0", "zones-MAX_NUM_FORMS": "1000",
        "zones-0-id": str(zone.pk), "zones-0-camera": str(camera.pk), "zones-0-name": zone.name,
        "zones-0-kind": "shelf", "zones-0-enabled": "on", "zones-0-polygon": json.dumps(polygon), "zones-0-threshold": "",
        "zones-0-event_types": "[]",
    }


def test_it_shows_the_editor_with_a_grey_placeholder_before_any_snapshot(shop):
    camera, _ = shop
    page = login("manager").get(f"/admin/cameras/camera/{camera.pk}/change/").content.decode()
    assert "data-zone-editor" in page and "cameras/zone_editor.js" in page and "cameras/zone_editor.css" in page
    assert "No snapshot yet" in page and "data:image/jpeg" not in page
    assert 'data-zone-polygon' in page and "[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]" in page


def test_it_shows_the_latest_snapshot_to_the_sites_managers_only(shop):
    camera, _ = shop
    camera_snapshot_save(camera.pk, jpeg((0, 0, 200)))
    camera_snapshot_save(camera.pk, jpeg((0, 200, 0)))  # replaces the first, same name
    uri = camera_snapshot_data_uri(camera.pk)
    assert uri.startswith("data:image/jpeg;base64,")
    page = login("manager").get(f"/admin/cameras/camera/{camera.pk}/change/").content.decode()
    assert uri in page and "No snapshot yet" not in page
    response = login("other").get(f"/admin/cameras/camera/{camera.pk}/change/")
    assert response.status_code == 302 and uri not in response.content.decode()


def test_it_keeps_one_snapshot_file_per_camera(shop, clip_settings):
    camera, _ = shop
    for shade in (10, 20, 30):
        camera_snapshot_save(camera.pk, jpeg((shade, shade, shade)))
    assert [p.name for p in (clip_settings / "snapshots").iterdir()] == [f"{camera.pk}.jpg"]
    assert snapshot_name(camera.pk) == f"snapshots/{camera.pk}.jpg"
    with pytest.raises(ValueError, match="not a JPEG"):
        camera_snapshot_save(camera.pk, b"\x89PNG....")


def test_it_saves_a_valid_polygon_drawn_in_the_editor(shop):
    camera, zone = shop
    response = login("manager").post(f"/admin/cameras/camera/{camera.pk}/change/", change_form(camera, zone, TRIANGLE))
    assert response.status_code == 302, response.content.decode()[:3000]
    zone.refresh_from_db()
    assert zone.polygon == TRIANGLE


@pytest.mark.parametrize("polygon, message", [
    (BOW_TIE, "The polygon crosses itself"),
    ([[0.1, 0.1], [0.5, 0.5]], "A zone polygon needs at least 3 points; it has 2."),
    ([[0.1, 0.1], [1.2, 0.1], [0.5, 0.9]], "lies outside the picture"),
])
def test_it_rejects_an_invalid_polygon_with_the_validators_message(shop, polygon, message):
    camera, zone = shop
    response = login("manager").post(f"/admin/cameras/camera/{camera.pk}/change/", change_form(camera, zone, polygon))
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert "data-zone-editor" in page  # the editor is back, with the rejected points to fix
    zone.refresh_from_db()
    assert zone.polygon == SQUARE
