"""The Content-Security-Policy in a real browser: every page a person uses works under it, with no
violation reported (Debian's chromium through Playwright, against live_server)."""
from __future__ import annotations

import pytest
from django.test import Client

from cameras.snapshots import camera_snapshot_save
from shoplift.headers import CONTENT_SECURITY_POLICY
from tests.support.browser import DESKTOP, log_in
from tests.support.clips import World
from tests.support.factories import PASSWORD
from tests.test_zone_editor_browser import snapshot_jpeg

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIDEO_READY = "() => { const v = document.querySelector('#clip-player'); return v && v.readyState >= 3; }"


def test_every_response_carries_the_policies(world: World) -> None:
    for url in ["/login/", "/healthz"]:
        response = Client().get(url)
        assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "camera=()" in response["Permissions-Policy"] and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_the_dashboard_admin_and_zone_editor_work_under_the_policy(world: World, live_server, browser) -> None:  # type: ignore[no-untyped-def]
    camera_snapshot_save(world.camera_a.pk, snapshot_jpeg())
    page = browser.new_context(viewport=DESKTOP).new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda exc: violations.append(str(exc)))

    log_in(page, live_server.url, "manager", PASSWORD)
    page.goto(f"{live_server.url}/")
    page.locator(f'tr[data-id="{world.alert_a.pk}"]').wait_for()
    page.goto(f"{live_server.url}/alerts/{world.alert_a.pk}/")
    page.wait_for_function(VIDEO_READY, timeout=15000)  # the player loads and plays under media-src
    page.goto(f"{live_server.url}/admin/cameras/camera/{world.camera_a.pk}/change/")
    canvas = page.locator("canvas.zone-editor-canvas")
    canvas.wait_for()
    # The snapshot (a data: URI) was drawn: the canvas is not blank grey.
    drawn = page.evaluate("""() => { const c = document.querySelector('canvas.zone-editor-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let colours = new Set(); for (let i = 0; i < d.length; i += 4000) colours.add(d[i] + ',' + d[i+1]);
        return colours.size; }""")
    assert drawn > 2
    page.goto(f"{live_server.url}/password/")
    page.goto(f"{live_server.url}/cameras/")
    assert violations == []
