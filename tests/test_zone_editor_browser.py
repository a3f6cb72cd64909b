"""The zone editor in a real browser: Debian's chromium through Playwright, against live_server."""
import cv2
import numpy as np
import pytest

from cameras.models import Role, Zone
from cameras.snapshots import camera_snapshot_save
from tests.support.browser import DESKTOP, log_in, screenshot
from tests.support.factories import PASSWORD, SQUARE, make_camera, make_site, make_user, make_zone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def snapshot_jpeg():
    picture = np.full((360, 640, 3), (70, 90, 70), np.uint8)
    cv2.rectangle(picture, (380, 200), (600, 340), (40, 40, 160), -1)  # a shelf to draw around
    ok, data = cv2.imencode(".jpg", picture)
    assert ok
    return data.tobytes()


def click_at(page, canvas, x, y):
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])


def test_it_draws_zones_by_clicking_on_the_snapshot_and_saves_them(live_server, browser, clip_settings, fast_passwords):
    site = make_site("Riverside")
    camera = make_camera(site, "Aisle 3")
    zone = make_zone(camera, "Spirits", polygon=SQUARE)
    make_user("manager", site=site, role=Role.MANAGER)
    camera_snapshot_save(camera.pk, snapshot_jpeg())

    page = browser.new_context(viewport=DESKTOP).new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "manager", PASSWORD)
    page.goto(f"{live_server.url}/admin/cameras/camera/{camera.pk}/change/")
    canvas = page.locator("canvas.zone-editor-canvas")
    # The snapshot (640 x 360) sets the picture's size once it is decoded.
    page.wait_for_function("() => document.querySelector('canvas.zone-editor-canvas').height === 360")

    # Redraw the existing zone around the shelf: clear it, then four corners.
    page.locator("#id_zones-0-polygon + button[data-zone-edit]").click()
    page.get_by_role("button", name="Clear points").click()
    corners = [(0.6, 0.55), (0.95, 0.55), (0.95, 0.95), (0.6, 0.95)]
    for x, y in corners:
        click_at(page, canvas, x, y)
    # Add a second zone and draw a triangle: a new row starts in drawing mode.
    page.click("#zones-group .add-row a")
    page.fill("#id_zones-1-name", "Door")
    triangle = [(0.1, 0.1), (0.4, 0.1), (0.25, 0.5)]
    for x, y in triangle:
        click_at(page, canvas, x, y)
    assert "Editing “Door” (3 corners)" in page.locator(".zone-editor-status").inner_text()
    screenshot(page, "zone-editor-drawn")
    with page.expect_navigation():
        page.click("input[name=_continue]")
    assert "was changed successfully" in page.content()
    assert errors == []

    zone.refresh_from_db()
    door = Zone.objects.get(camera=camera, name="Door")
    for saved, clicked in ((zone.polygon, corners), (door.polygon, triangle)):
        assert len(saved) == len(clicked)
        for (sx, sy), (cx, cy) in zip(saved, clicked, strict=True):
            assert sx == pytest.approx(cx, abs=0.01) and sy == pytest.approx(cy, abs=0.01)


def test_it_shows_the_validators_message_for_a_crossing_outline(live_server, browser, clip_settings, fast_passwords):
    site = make_site("Riverside")
    camera = make_camera(site, "Aisle 3")
    zone = make_zone(camera, "Spirits", polygon=SQUARE)
    make_user("manager", site=site, role=Role.MANAGER)

    page = browser.new_context(viewport=DESKTOP).new_page()
    log_in(page, live_server.url, "manager", PASSWORD)
    page.goto(f"{live_server.url}/admin/cameras/camera/{camera.pk}/change/")
    canvas = page.locator("canvas.zone-editor-canvas")
    page.locator("#id_zones-0-polygon + button[data-zone-edit]").click()
    page.get_by_role("button", name="Clear points").click()
    for x, y in [(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)]:  # a bow tie
        click_at(page, canvas, x, y)
    with page.expect_navigation():
        page.click("input[name=_continue]")
    assert "The polygon crosses itself" in page.content()
    screenshot(page, "zone-editor-rejected")
    zone.refresh_from_db()
    assert zone.polygon == SQUARE
