"""The police export's working copy plays in Chromium, and the frame Chromium shows carries the
burned-in date and time of that moment (not another moment's).

No OCR is available here, so the check is by picture: the bright text pixels in the overlay box of
the frame Chromium draws are compared with the overlay drawn (by the same function) on the master's
frame for the right time, and for a time 11 h 11 min 11 s off. The right time must match far better.
"""
from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest

from alerts.export import _overlay_lines, burn_in, evidence_export
from tests.support.clips import World

SEEK_SECONDS = 2.02  # inside frame 50 (25 fps), away from a frame boundary
PAGE = """<!doctype html><html><body style="margin:0">
<video id="v" src="working.mp4" muted playsinline preload="auto"></video>
<canvas id="c"></canvas></body></html>"""
GRAB = """(t) => new Promise((resolve, reject) => {
    const v = document.getElementById('v');
    v.onerror = () => reject(new Error('video error ' + (v.error && v.error.code)));
    const grab = () => {
        const c = document.getElementById('c');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(v, 0, 0);
        const data = ctx.getImageData(0, 0, c.width, c.height).data;
        resolve({width: c.width, height: c.height, duration: v.duration, pixels: Array.from(data)});
    };
    const seek = () => { v.addEventListener('seeked', () => requestAnimationFrame(grab), {once: true});
                         v.currentTime = t; };
    v.play().then(() => { v.pause(); seek(); }, reject);
})"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A localhost HTTP server over a folder, so the page and the video share an origin (a canvas
    may then read the video's pixels)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def _master_frame(master: bytes, seconds: float, folder: Path) -> tuple[np.ndarray, float]:
    path = folder / "master.mp4"
    path.write_bytes(master)
    with av.open(str(path)) as container:
        shown = None
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time <= seconds:
                shown = (frame.to_ndarray(format="rgb24"), float(frame.time))
            else:
                break
    assert shown is not None
    return shown


def _text_mask(image: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    rows, cols = box
    luma = image[:rows, :cols].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mask: np.ndarray = luma > 160
    return mask


def test_the_working_copy_plays_in_chromium_showing_the_burned_in_time(  # type: ignore[no-untyped-def]
        world: World, served: tuple[str, Path], tmp_path: Path, browser) -> None:
    base_url, folder = served
    out = tmp_path / "export.zip"
    evidence_export(alert_ids=[world.alert_a.pk], user=world.users["reviewer"], out=out)  # type: ignore[arg-type]
    with zipfile.ZipFile(out) as bundle:
        names = bundle.namelist()
        working = bundle.read(next(n for n in names if n.endswith("-working.mp4")))
        master = bundle.read(next(n for n in names if n.endswith("-master.mp4")))
    (folder / "working.mp4").write_bytes(working)

    page: Any = browser.new_page()
    try:
        page.goto(f"{base_url}/index.html")
        shot = page.evaluate(GRAB, SEEK_SECONDS)
    finally:
        page.close()
    shown = np.array(shot["pixels"], dtype=np.uint8).reshape(shot["height"], shot["width"], 4)[:, :, :3]
    assert shot["duration"] > 5  # the whole clip, not a fragment

    picture, frame_time = _master_frame(master, SEEK_SECONDS, tmp_path)
    assert shown.shape == picture.shape
    alert = world.alert_a
    assert alert.clip_start is not None
    moment = alert.clip_start + timedelta(seconds=frame_time)
    zone = ZoneInfo(alert.camera.site.time_zone)
    right, wrong = picture.copy(), picture.copy()
    burn_in(right, _overlay_lines(alert, moment, zone))
    burn_in(wrong, _overlay_lines(alert, moment + timedelta(hours=11, minutes=11, seconds=11.11), zone))
    # The overlay box: rows and columns the dark box covers in the expected picture.
    darkened = np.argwhere((right.astype(np.int16) - picture.astype(np.int16)).any(axis=2))
    box = (int(darkened[:, 0].max()) + 1, int(darkened[:, 1].max()) + 1)

    seen = _text_mask(shown, box)
    right_mask, wrong_mask = _text_mask(right, box), _text_mask(wrong, box)
    off_right = int((seen ^ right_mask).sum())
    off_wrong = int((seen ^ wrong_mask).sum())
    assert right_mask.sum() > 200  # there is text to compare
    assert off_right < 0.5 * off_wrong, (off_right, off_wrong)
    assert off_right < 0.25 * right_mask.sum(), (off_right, int(right_mask.sum()))
