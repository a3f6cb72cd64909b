"""check_camera against GStreamer's RTSP server: a report for a good stream, a clear error for each failure."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.support.factories import make_camera, make_site
from tests.support.rtsp import RtspServer, free_port, live_mount

pytestmark = pytest.mark.rtsp
ROOT = Path(__file__).resolve().parent.parent


def check(*args: str) -> str:
    out = io.StringIO()
    call_command("check_camera", *args, stdout=out)
    return out.getvalue()


def test_it_reports_a_good_stream(rtsp_server: RtspServer):
    report = check(rtsp_server.url("/live"), "--seconds", "4.5")
    assert "codec            h264 (Constrained Baseline)" in report
    assert "resolution       320x240" in report
    assert "fps              2" in report  # ~25
    assert "keyframe every   2.0" in report  # the live mount's GOP is 50 frames at 25 fps
    assert "kbit/s" in report
    assert "ring memory      0." in report and "for 10 s" in report and "decoded BGR" in report
    assert "WARNING" not in report  # 2 s keyframes and the default 2 s pre-roll: fine
    assert report.rstrip().endswith(": OK")


@pytest.mark.django_db
def test_it_checks_a_camera_by_name_and_warns_when_keyframes_are_further_apart_than_the_pre_roll(rtsp_server):
    make_camera(make_site(name="Store 1"), name="Aisle 3", stream_url=rtsp_server.url("/live"), pre_seconds=1.0,
                detect_url=rtsp_server.url("/file"))
    report = check("Store 1 / Aisle 3", "--seconds", "4.5")
    assert "evidence stream: rtsp://127.0.0.1" in report and "detection stream: rtsp://127.0.0.1" in report
    assert "WARNING: keyframe interval 2.0 s is longer than the 1 s pre-roll" in report
    assert "so they will start up to 2.0 s before the pre-roll" in report
    assert report.count("WARNING") == 1  # the substream is never made into clips
    assert "camera 'Aisle 3' (Store 1): OK" in report


def test_it_warns_that_h265_needs_transcoding(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/h265", codec="h265")])
    report = check(server.url("/h265"), "--seconds", "3")
    assert "codec            hevc" in report and "[not playable in browsers]" in report
    assert "WARNING: H.265 (HEVC) does not play in most browsers: clips will be transcoded to H.264" in report


@pytest.mark.parametrize(("path", "credentials", "expected"), [
    ("/nope", ("admin", "s3cret"), "no stream at path '/nope'"),
    ("/live", ("admin", "guess"), "rejected the user name or password (401 Unauthorized)"),
    ("/live", None, "requires a user name and password"),
])
def test_it_fails_clearly_on_a_wrong_path_or_credentials(rtsp_servers, path, credentials, expected):
    server: RtspServer = rtsp_servers([live_mount("/live")], auth=("admin", "s3cret"))
    if credentials:
        url = server.url(path, user=credentials[0], password=credentials[1])
    else:
        url = f"rtsp://127.0.0.1:{server.port}{path}"
    with pytest.raises(CommandError) as error:
        check(url, "--seconds", "2")
    assert expected in str(error.value)
    assert "guess" not in str(error.value) and "s3cret" not in str(error.value)


def test_it_fails_clearly_on_a_refused_connection():
    port = free_port()
    with pytest.raises(CommandError) as error:
        check(f"rtsp://admin:s3cret@127.0.0.1:{port}/ch1", "--seconds", "2")
    assert f"RTSP connection refused by 127.0.0.1:{port}" in str(error.value)
    assert "rtsp://admin:****@" in str(error.value) and "s3cret" not in str(error.value)


def test_it_fails_clearly_on_a_hung_server(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live")])
    server.pause()
    try:
        with pytest.raises(CommandError) as error:
            check(server.url("/live"), "--seconds", "2", "--timeout", "1.5")
    finally:
        server.resume()
    assert f"no answer from 127.0.0.1:{server.port} within 1.5 s" in str(error.value)


def test_it_fails_clearly_on_a_stream_with_no_video(rtsp_server: RtspServer):
    with pytest.raises(CommandError) as error:
        check(rtsp_server.url("/audio"), "--seconds", "2")
    assert "has no video stream (found: audio pcm_alaw)" in str(error.value)


@pytest.mark.django_db
def test_it_fails_clearly_on_an_unknown_or_ambiguous_camera():
    with pytest.raises(CommandError, match="no camera named 'Aisle 9'"):
        check("Aisle 9")
    make_camera(make_site(name="North"), name="Door")
    make_camera(make_site(name="South"), name="Door")
    with pytest.raises(CommandError, match="'North / Door', 'South / Door'"):
        check("Door")


def test_the_command_exits_non_zero_with_the_message_on_stderr():
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check_camera", f"rtsp://127.0.0.1:{port}/ch1", "--seconds", "1"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "RTSP connection refused" in result.stderr
