"""A test whose system component is missing skips on a developer's machine and fails in CI."""
import pytest

from tests.support import browser, rtsp
from tests.support.requirements import require


def test_it_goes_on_when_the_component_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require(True, "ffmpeg", "run bin/setup (Debian package ffmpeg)")


def test_it_skips_naming_the_component_and_the_package_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^ffmpeg is missing: run bin/setup \(Debian package ffmpeg\)$"):
        require(False, "ffmpeg", "run bin/setup (Debian package ffmpeg)")


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no"])
def test_it_skips_when_ci_is_set_to_a_false_value(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception):
        require(False, "ffmpeg", "run bin/setup (Debian package ffmpeg)")


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_it_fails_naming_the_component_and_the_package_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"^ffmpeg is missing: run bin/setup \(Debian package ffmpeg\) \(CI is set"):
        require(False, "ffmpeg", "run bin/setup (Debian package ffmpeg)")


def test_a_missing_chromium_fails_the_browser_tests_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match=r"/nonexistent/chromium is missing: .*Debian package chromium"):
        browser.require_chromium()


def test_a_missing_chromium_skips_the_browser_tests_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.skip.Exception, match=r"/nonexistent/chromium is missing: .*Debian package chromium"):
        browser.require_chromium()


def test_a_python_without_gstreamers_rtsp_server_fails_the_rtsp_tests_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(rtsp, "SYSTEM_PYTHON", "/nonexistent/python3")
    with pytest.raises(pytest.fail.Exception,
                       match=r"GStreamer's RTSP server for /nonexistent/python3 is missing: .*gir1\.2-gst-rtsp-server-1\.0"):
        rtsp.require_gstreamer()


def test_a_missing_ffmpeg_fails_the_rtsp_tests_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(rtsp.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"ffmpeg is missing: .*Debian package ffmpeg"):
        rtsp.require_gstreamer()
