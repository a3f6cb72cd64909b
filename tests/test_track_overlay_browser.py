"""What the system saw, drawn over the clip in a real browser: Debian's chromium through Playwright."""
from __future__ import annotations

from typing import Any

import pytest

from alerts.models import Alert, ClipStatus
from detection.tracking.tracks import KEYPOINT_NAMES
from tests.support.browser import DESKTOP, PHONE, log_in, screenshot
from tests.support.clips import CLIP_FPS, CLIP_SECONDS, CLIP_SIZE, SampleClip, World, attach_clip
from tests.support.factories import PASSWORD, make_alert

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRACKED_UNTIL = 3.0  # seconds into the clip; nothing is drawn more than 0.4 s after it
SEEN_AT = 1.6
MARGIN = 24  # CSS pixels around the box that the box's label and strokes may use

# Counts the canvas's non-transparent pixels inside and outside a rectangle (device pixels), and
# whether each side of that rectangle has ink near its middle.
COUNT = """([x1, y1, x2, y2, margin]) => {
    const c = document.querySelector('canvas.track-overlay');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let inside = 0, outside = 0;
    for (let y = 0; y < c.height; y++) {
        for (let x = 0; x < c.width; x++) {
            if (!d[(y * c.width + x) * 4 + 3]) continue;
            if (x >= x1 - margin && x <= x2 + margin && y >= y1 - margin && y <= y2 + margin) inside++; else outside++;
        }
    }
    const ink = (cx, cy) => {
        for (let y = Math.round(cy) - 3; y <= Math.round(cy) + 3; y++)
            for (let x = Math.round(cx) - 3; x <= Math.round(cx) + 3; x++)
                if (d[(y * c.width + x) * 4 + 3]) return true;
        return false;
    };
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
    return {inside, outside, edges: [ink(x1, my), ink(x2, my), ink(mx, y1), ink(mx, y2)]};
}"""
BLANK = """() => {
    const c = document.querySelector('canvas.track-overlay');
    return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every((v, i) => i % 4 !== 3 || v === 0);
}"""
GEOMETRY = """() => {
    const v = document.querySelector('#clip-player'), c = document.querySelector('canvas.track-overlay');
    const vr = v.getBoundingClientRect(), cr = c.getBoundingClientRect();
    return {width: v.clientWidth, height: v.clientHeight, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
            ratio: c.width / v.clientWidth, offset: [cr.left - vr.left, cr.top - vr.top, cr.width - vr.width, cr.height - vr.height]};
}"""


def _red_block(seconds: float) -> list[float]:
    """Where tests/support/clips.py paints its red "person" at that time, normalized."""
    width, height = CLIP_SIZE
    x = int((width - 60) * round(seconds * CLIP_FPS) / (CLIP_SECONDS * CLIP_FPS - 1))
    return [x / width, 90 / height, (x + 60) / width, 170 / height]


def _pose(box: list[float]) -> list[list[float]]:
    """A stick figure inside the box; the nose is a low-confidence guess far away, never to be drawn."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    at = {"left_shoulder": (.3, .2), "right_shoulder": (.7, .2), "left_elbow": (.2, .4), "right_elbow": (.8, .4),
          "left_wrist": (.25, .55), "right_wrist": (.75, .55), "left_hip": (.35, .6), "right_hip": (.65, .6),
          "left_knee": (.35, .8), "right_knee": (.65, .8), "left_ankle": (.35, .95), "right_ankle": (.65, .95),
          "left_eye": (.45, .08), "right_eye": (.55, .08), "left_ear": (.4, .1), "right_ear": (.6, .1)}
    points = [[0.95, 0.05, 0.1]]  # the nose
    points += [[x1 + at[name][0] * w, y1 + at[name][1] * h, 0.9] for name in KEYPOINT_NAMES[1:]]
    return points


def _track(alert: Alert) -> dict[str, Any]:
    start = alert.clip_start.timestamp()  # type: ignore[union-attr]
    times = [round(i * 0.2, 1) for i in range(int(TRACKED_UNTIL / 0.2) + 1)]  # 5 fps, like the tracker
    return {"track_id": 3, "keypoint_names": list(KEYPOINT_NAMES),
            "points": [{"t": round(start + s, 3), "box": _red_block(s), "score": 0.8,
                        "keypoints": _pose(_red_block(s)) if i % 3 else None} for i, s in enumerate(times)]}


def _seek(page: Any, seconds: float) -> None:
    page.evaluate("""(t) => new Promise(resolve => {
        const v = document.querySelector('#clip-player');
        v.pause();
        v.addEventListener('seeked', () => requestAnimationFrame(() => resolve()), {once: true});
        v.currentTime = t;
    })""", seconds)


def _box_in_canvas(page: Any, box: list[float]) -> tuple[list[float], int]:
    """The box in canvas (device) pixels, placed inside the video's letterboxed picture."""
    g = page.evaluate(GEOMETRY)
    assert g["offset"] == [0, 0, 0, 0]  # the canvas lies exactly over the video element
    scale = min(g["width"] / g["videoWidth"], g["height"] / g["videoHeight"])
    w, h = g["videoWidth"] * scale, g["videoHeight"] * scale
    left, top = (g["width"] - w) / 2, (g["height"] - h) / 2
    rect = [left + box[0] * w, top + box[1] * h, left + box[2] * w, top + box[3] * h]
    return [v * g["ratio"] for v in rect], round(MARGIN * g["ratio"])


def _assert_box_drawn(page: Any, box: list[float]) -> None:
    rect, margin = _box_in_canvas(page, box)
    page.wait_for_function(f"() => !({BLANK})()", timeout=5000)
    counts = page.evaluate(COUNT, [*rect, margin])
    assert counts["inside"] > 200, counts
    assert counts["outside"] == 0, counts  # nothing far from the person (the low-confidence nose included)
    assert counts["edges"] == [True, True, True, True], counts  # the box sits where the person is


def _assert_blank(page: Any) -> None:
    page.wait_for_function(BLANK, timeout=5000)


def _assert_follows_playback(page: Any) -> None:
    """Drawn near the end of the track, then cleared by playback alone as it plays past it."""
    near_end = TRACKED_UNTIL - 0.2
    _seek(page, near_end)
    _assert_box_drawn(page, _red_block(near_end))
    page.evaluate("() => document.querySelector('#clip-player').play()")
    page.wait_for_function(f"""() => {{
        const v = document.querySelector('#clip-player');
        return !v.paused && v.currentTime > {TRACKED_UNTIL + 0.5} && ({BLANK})();
    }}""", timeout=10000)


def test_it_draws_the_person_over_the_clip_in_step_with_playback(world: World, live_server, browser) -> None:  # type: ignore[no-untyped-def]
    alert = world.alert_a
    alert.track = _track(alert)
    alert.save(update_fields=["track"])
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, live_server.url, "reviewer", PASSWORD)
    page.goto(f"{live_server.url}/alerts/{alert.pk}/")
    page.evaluate("() => { const v = document.querySelector('#clip-player'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#clip-player').currentTime > 0.3", timeout=15000)
    _assert_follows_playback(page)
    toggle = page.get_by_label("Show what the system saw")
    assert toggle.is_visible() and toggle.is_checked()

    _seek(page, SEEN_AT)
    _assert_box_drawn(page, _red_block(SEEN_AT))
    geometry = page.evaluate(GEOMETRY)
    assert geometry["width"] / geometry["height"] > 1.34  # letterboxed: the picture (4:3) has bars at its sides
    shot = screenshot(page, "track-overlay-desktop")
    assert shot.stat().st_size > 5000

    _seek(page, TRACKED_UNTIL + 1.5)
    _assert_blank(page)
    _seek(page, 1.0)
    _assert_box_drawn(page, _red_block(1.0))

    toggle.uncheck()
    _assert_blank(page)
    page.reload()  # the choice is remembered
    page.wait_for_function("() => document.querySelector('#clip-player').readyState >= 1", timeout=15000)
    assert not page.get_by_label("Show what the system saw").is_checked()
    _seek(page, SEEN_AT)
    _assert_blank(page)
    page.get_by_label("Show what the system saw").check()
    _assert_box_drawn(page, _red_block(SEEN_AT))
    context.close()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    phone_page = phone.new_page()
    log_in(phone_page, live_server.url, "reviewer", PASSWORD)
    phone_page.goto(f"{live_server.url}/alerts/{alert.pk}/")
    phone_page.wait_for_function("() => document.querySelector('#clip-player').readyState >= 1", timeout=15000)
    _seek(phone_page, 2.4)
    _assert_box_drawn(phone_page, _red_block(2.4))
    screenshot(phone_page, "track-overlay-phone")
    assert phone_page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    phone.close()


def test_it_draws_over_a_clip_that_becomes_ready_while_the_page_is_open(world: World, test_clip: SampleClip,  # type: ignore[no-untyped-def]
                                                                       live_server, browser, settings) -> None:
    settings.DASHBOARD_POLL_SECONDS = 1.0
    alert = make_alert(world.camera_a, clip_status=ClipStatus.BUILDING)
    alert.track = _track(alert)
    alert.save(update_fields=["track"])
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, live_server.url, "viewer", PASSWORD)
    page.goto(f"{live_server.url}/alerts/{alert.pk}/")
    assert page.locator("[data-waiting]").is_visible()
    assert not page.get_by_label("Show what the system saw").is_visible()

    attach_clip(alert, test_clip)
    page.wait_for_function("() => { const v = document.querySelector('#clip-player'); return v && v.readyState >= 1; }",
                           timeout=10000)
    assert page.get_by_label("Show what the system saw").is_visible()
    _seek(page, SEEN_AT)
    _assert_box_drawn(page, _red_block(SEEN_AT))
    context.close()


def test_it_follows_playback_where_the_browser_lacks_video_frame_callbacks(world: World, live_server,  # type: ignore[no-untyped-def]
                                                                          browser) -> None:
    alert = world.alert_a
    alert.track = _track(alert)
    alert.save(update_fields=["track"])
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script("delete HTMLVideoElement.prototype.requestVideoFrameCallback;")
    page = context.new_page()
    log_in(page, live_server.url, "viewer", PASSWORD)
    page.goto(f"{live_server.url}/alerts/{alert.pk}/")
    assert page.evaluate("() => 'requestVideoFrameCallback' in HTMLVideoElement.prototype") is False
    page.evaluate("() => { const v = document.querySelector('#clip-player'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#clip-player').currentTime > 0.3", timeout=15000)
    _assert_follows_playback(page)

    _seek(page, SEEN_AT)
    _assert_box_drawn(page, _red_block(SEEN_AT))
    _seek(page, TRACKED_UNTIL + 1.5)
    _assert_blank(page)
    context.close()


def test_it_shows_no_overlay_for_an_alert_without_a_track(world: World, live_server, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, live_server.url, "viewer", PASSWORD)
    page.goto(f"{live_server.url}/alerts/{world.alert_a.pk}/")
    page.wait_for_function("() => document.querySelector('#clip-player').readyState >= 1", timeout=15000)
    assert page.locator("canvas.track-overlay").count() == 0
    assert page.get_by_label("Show what the system saw").count() == 0
    context.close()
