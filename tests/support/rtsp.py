"""A real RTSP server for tests: GStreamer's, run as a subprocess, plus the test videos it serves.

The server script (rtsp_server.py) runs under Debian's /usr/bin/python3 because `gi` does not
import from the virtualenv. Videos are made once with Debian's ffmpeg and cached on disk, so a
test session pays for them once (SHOPLIFT_TEST_MEDIA names the cache folder).

The fixtures (rtsp_server, rtsp_servers, rtsp_test_video) reach every test through tests/conftest.py.
"""
from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.requirements import require

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MEDIA_DIR = Path(os.environ.get("SHOPLIFT_TEST_MEDIA") or Path(tempfile.gettempdir()) / "shoplift-test-media")


def wait_until(predicate: Callable[[], Any], timeout: float, *, interval: float = 0.05, message: str = "") -> Any:
    """Poll until predicate() is truthy and return its value; fail the test after `timeout` seconds.

    Tests poll rather than sleep-and-assert: the machine is shared and noisy.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Test videos ---------------------------------------------------------------------------------

def make_video(*, width: int = 320, height: int = 240, fps: int = 25, seconds: float = 30, gop: int = 50,
               bitrate_kbps: int | None = None, container: str = "mp4") -> Path:
    """An H.264 video of a red box moving over testsrc2, keyframe every `gop` frames, no B-frames.

    Cached by its parameters; made atomically so an interrupted run never leaves half a file.
    """
    rate = f"-{bitrate_kbps}k" if bitrate_kbps else ""
    path = MEDIA_DIR / f"box-{width}x{height}-{fps}fps-{seconds:g}s-g{gop}{rate}.{container}"
    if path.exists():
        return path
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    box_w, box_h = max(16, width // 10), max(16, height // 3)
    rate_args = ["-b:v", f"{bitrate_kbps}k", "-maxrate", f"{bitrate_kbps}k", "-bufsize", f"{2 * bitrate_kbps}k"] if bitrate_kbps else []
    format_args = ["-movflags", "+faststart", "-f", "mp4"] if container == "mp4" else ["-f", "mpegts"]
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    command = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-f", "lavfi", "-i", f"color=c=red:size={box_w}x{box_h}:rate={fps}",
        "-filter_complex", f"[0][1]overlay=x='mod(t*{width}/4,{width})':y={height // 3}:shortest=1",
        "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        *rate_args, *format_args, str(tmp),
    ]
    subprocess.run(command, check=True, timeout=300)
    tmp.replace(path)
    return path


def damaged_copy(source: Path, *, kind: str, seed: int = 3) -> Path:
    """A copy of an MPEG-TS or MP4 video that is corrupt (random bytes over the payload) or truncated.

    Corruption keeps the container readable in places so the server still streams broken H.264,
    which is what a flaky DVR or a lossy link delivers.
    """
    path = source.with_name(f"{source.stem}-{kind}{source.suffix}")
    if path.exists():
        return path
    data = bytearray(source.read_bytes())
    if kind == "corrupt":
        rng = random.Random(seed)
        # Leave the first second intact so the stream opens; then damage ~1 % of it in small runs.
        start = len(data) // 10
        for _ in range(max(20, len(data) // 20000)):
            offset = rng.randrange(start, len(data) - 64)
            data[offset:offset + rng.randrange(4, 64)] = rng.randbytes(64)[: rng.randrange(4, 64)]
    elif kind == "truncated":
        data = data[: int(len(data) * 0.6) + 7]  # cut mid-packet, not on a boundary
    else:
        raise ValueError(f"unknown damage {kind!r}")
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    tmp.write_bytes(bytes(data))
    tmp.replace(path)
    return path


# --- The server --------------------------------------------------------------------------------

def live_mount(path: str = "/live", **options: Any) -> dict[str, Any]:
    """A live x264 camera shared by all clients; options: width, height, fps, gop, bitrate, codec."""
    return {"path": path, "kind": "live", **options}


def file_mount(path: str, file: Path) -> dict[str, Any]:
    return {"path": path, "kind": "file", "file": str(file)}


def audio_mount(path: str = "/audio") -> dict[str, Any]:
    return {"path": path, "kind": "audio"}


class RtspServer:
    """GStreamer's RTSP server in a subprocess on 127.0.0.1:port, with kill/pause/restart for fault tests."""

    def __init__(self, mounts: list[dict[str, Any]], *, port: int | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.mounts = mounts
        self.port = port or free_port()
        self.auth = auth
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/live", *, user: str | None = None, password: str | None = None) -> str:
        if user is None and self.auth:
            user, password = self.auth
        credentials = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user is not None else ""
        return f"rtsp://{credentials}127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 20.0) -> RtspServer:
        config: dict[str, Any] = {"mounts": self.mounts}
        if self.auth:
            config["auth"] = {"user": self.auth[0], "password": self.auth[1]}
        for _attempt in range(20):
            self.process = subprocess.Popen(
                [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--config", json.dumps(config)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            line = self._read_line(timeout)
            if line.startswith("READY"):
                return self
            self.kill()
            # A restart can race the old socket's release: wait and try the same port again.
            time.sleep(0.25)
        raise RuntimeError(f"RTSP server did not start on port {self.port}: {line!r}")

    def _read_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return "TIMEOUT"
        return self.process.stdout.readline().decode(errors="replace").strip()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything, like a DVR losing power."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers, like a hung DVR."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> RtspServer:
        self.kill()
        return self.start()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


GSTREAMER_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-{base,good,bad,ugly}"


@cache
def _gstreamer_rtsp_server_imports(python: str) -> bool:
    """Whether `python` (Debian's python3) can import GStreamer's RTSP server, as rtsp_server.py does."""
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_gstreamer() -> None:
    """Skip (fail in CI) unless ffmpeg and GStreamer's RTSP server under Debian's python3 are there."""
    require(shutil.which("ffmpeg") is not None, "ffmpeg", "run bin/setup (Debian package ffmpeg)")
    require(_gstreamer_rtsp_server_imports(SYSTEM_PYTHON), f"GStreamer's RTSP server for {SYSTEM_PYTHON}",
            f"run bin/setup (Debian packages {GSTREAMER_PACKAGES})")


@pytest.fixture(scope="session")
def rtsp_test_video() -> Path:
    """A 40 s 320x240 H.264 MP4, keyframe every 2 s, for file mounts."""
    require_gstreamer()
    return make_video(width=320, height=240, fps=25, seconds=40, gop=50)


@pytest.fixture(scope="session")
def demo_visit() -> Path:
    """One visit of the demo shopper at 720p, 26 s: in (0-5 s), shelf (5-11 s), exit (15-18 s), out by
    20 s. Made once and cached with the other test videos."""
    from tests.support.video import (
        write_demo_video,  # imports the apps: not while plugins load, before Django is set up
    )

    require_gstreamer()
    path = MEDIA_DIR / "person-shelf-to-exit-26s.mp4"
    if not path.exists():
        MEDIA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        write_demo_video(tmp, seconds=26)
        tmp.replace(path)
    return path


@pytest.fixture(scope="session")
def rtsp_server(rtsp_test_video: Path) -> Iterator[RtspServer]:
    """One server for the session: /live (320x240, 25 fps, 2 s GOP), /file (the test video), /audio.

    Tests that kill, pause or restart a server use `rtsp_servers` instead.
    """
    server = RtspServer([live_mount("/live"), file_mount("/file", rtsp_test_video), audio_mount("/audio")])
    with server:
        yield server


@pytest.fixture
def rtsp_servers() -> Iterator[Callable[..., RtspServer]]:
    """A factory of servers owned by one test and stopped after it: rtsp_servers(mounts, auth=...)."""
    require_gstreamer()
    started: list[RtspServer] = []

    def start(mounts: list[dict[str, Any]] | None = None, **kwargs: Any) -> RtspServer:
        server = RtspServer(mounts or [live_mount("/live")], **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
