"""Helpers of the fault suite: real processes (run_detectors, Celery workers, Redis, GStreamer's RTSP
server, an S3 server) broken on purpose, and the exact accounting every fault test ends with.

Everything here drives processes from the outside (signals, sockets, /proc): the suite must keep
working while the modules under detection/ move. The shared fixtures (redis_server, clip_settings,
rtsp_servers) come from tests/conftest.py.
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from alerts.models import Alert, ClipStatus, clip_storage
from cameras.models import Camera
from tests.support.factories import make_alert, make_camera, make_site, make_zone
from tests.support.processes import ROOT, RedisServer, subprocess_env
from tests.support.rtsp import MEDIA_DIR, require_gstreamer, wait_until
from tests.support.video import Box, write_video

SHELF = [[0.6, 0.3], [0.95, 0.3], [0.95, 0.9], [0.6, 0.9]]
# The visits scene: someone steps into the shelf zone for one second every VISIT_EVERY seconds.
VISIT_FIRST, VISIT_EVERY, VISITS = 2.0, 5.0, 12
VISITS_SCENE_SECONDS = VISIT_FIRST + VISIT_EVERY * (VISITS - 1) + 4.0  # 61 s: no test outlasts one play
# Short rules so that a visit is an alert within a second and a spooled clip within about 5 s.
FAST_DETECTORS = {
    "EVENT_QUIET_SECONDS": "2", "DETECTOR_RELOAD_SECONDS": "5", "DEDUP_WINDOW_SECONDS": "0",
    "CAPTURE_OPEN_TIMEOUT_SECONDS": "3", "CAPTURE_BACKOFF_CAP_SECONDS": "2", "CAPTURE_WATCHDOG_SECONDS": "4",
}


# --- Scenes -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def visits_scene() -> Path:
    """A still shop floor where a red box stands in the SHELF zone for 1 s at 2, 7, 12 ... 57 s."""
    require_gstreamer()
    path = MEDIA_DIR / f"faults-visits-{VISITS}x{VISIT_EVERY:g}s-{VISITS_SCENE_SECONDS:g}s.mp4"
    if not path.exists():
        MEDIA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{os.getpid()}.{path.name}")
        boxes = [Box(at, at + 1, x=0.7, y=0.45, w=0.15, h=0.35) for at in visit_offsets()]
        write_video(tmp, seconds=VISITS_SCENE_SECONDS, boxes=boxes)
        tmp.replace(path)
    return path


def visit_offsets() -> list[float]:
    return [VISIT_FIRST + VISIT_EVERY * i for i in range(VISITS)]


def shelf_camera(url: str, name: str = "Aisle 3") -> Camera:
    camera = make_camera(make_site("Main St"), name, stream_url=url, detector="motion")
    make_zone(camera, "Shelf", polygon=SHELF)
    return camera


# --- The detector process -----------------------------------------------------------------------

class DetectorProcess:
    """`manage.py run_detectors` as a subprocess, its output in a file (a pipe could fill and block it)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "manage.py", "run_detectors", *args], cwd=ROOT, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            pytest.fail(f"run_detectors did not stop within {timeout:g} s of SIGTERM\n{self.log()[-6000:]}")
        finally:
            self._log.close()


@pytest.fixture
def detectors(tmp_path: Path) -> Iterator[Callable[..., DetectorProcess]]:
    """Start run_detectors on the test database: detectors(*args, **env), its
    settings overridden by environment variables (FAST_DETECTORS, then `env`)."""
    started: list[DetectorProcess] = []

    def start(*args: str, log_name: str = "detectors.log", **env: str) -> DetectorProcess:
        variables = {"SHOPLIFT_PROCESS": "detectors", **FAST_DETECTORS, **env}
        run = DetectorProcess(list(args), subprocess_env(**variables), tmp_path / log_name)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.alive:
            run.process.kill()
            run.process.wait(10)


# --- The broker ---------------------------------------------------------------------------------

@dataclass
class Broker:
    """The test run's Redis, which a test may kill and restart. Emptied before and after each test,
    so a job one test left in the queue (a retry's countdown) never reaches another test's alert."""

    server: RedisServer

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.server.port, socket_connect_timeout=1)

    def kill(self) -> None:
        """SIGKILL whichever redis-server answers on the port (whichever fixture instance started it)."""
        pid = int(self.client().info("server")["process_id"])
        os.kill(pid, signal.SIGKILL)
        if self.server.process is not None and self.server.process.pid == pid:
            self.server.process.wait(10)
            self.server.process = None
        wait_until(lambda: not self.server.ping(), 10, message="Redis to be gone after SIGKILL")

    def start(self) -> None:
        self.server.start()

    def flush(self) -> None:
        self.client().flushall()


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[Broker]:
    broker = Broker(redis_server)
    broker.flush()
    yield broker
    if not redis_server.ping():
        broker.start()
    broker.flush()


# --- Alerts and storage accounting ----------------------------------------------------------------

def queued_alert_with_spool(spool: bytes, *, camera: Camera | None = None, window: float = 6.0) -> Alert:
    """An alert whose post-roll was recorded: status queued, its spool in the clips storage."""
    at = timezone.now() - timedelta(seconds=30)
    camera = camera or make_camera(make_site("Main St"), "Aisle 3")
    alert = make_alert(camera, at=at, clip_status=ClipStatus.QUEUED, clip_start=at - timedelta(seconds=2),
                       clip_end=at - timedelta(seconds=2) + timedelta(seconds=window))
    alert.spool_name = clip_storage().save(f"spool/{alert.pk}.ts", ContentFile(spool))
    alert.save(update_fields=["spool_name"])
    return alert


def statuses() -> dict[int, str]:
    return dict(Alert.objects.order_by("pk").values_list("pk", "clip_status"))


def all_ready(pks: Iterable[int] | None = None) -> bool:
    """Every alert (or those given) is ready. A failed build may still have a retry scheduled."""
    qs = Alert.objects.all() if pks is None else Alert.objects.filter(pk__in=list(pks))
    return qs.exists() and not qs.exclude(clip_status=ClipStatus.READY).exists()


def local_files(root: Path) -> set[str]:
    """Every file under the clips storage folder, as storage names (posix, relative)."""
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_exact_accounting(alerts: list[Alert], files: set[str], read: Callable[[str], bytes], *,
                            max_attempts: int, cameras: int = 1) -> None:
    """The books balance: every ready alert has exactly one clip file (its own, with its hash) and
    no spool; every other alert keeps its spool; nothing else lies in clips/, spool/ or thumbnails/."""
    ready = [a for a in alerts if a.clip_status == ClipStatus.READY]
    by_folder: dict[str, set[str]] = {}
    for name in files:
        by_folder.setdefault(name.split("/", 1)[0], set()).add(name)
    clips = {a.clip.name for a in ready}
    assert len(clips) == len(ready) and all(clips), [(a.pk, a.clip.name) for a in ready]
    assert by_folder.get("clips", set()) == clips, (
        f"clip files other than the ready alerts' clips (orphans) or missing: "
        f"extra={sorted(by_folder.get('clips', set()) - clips)} missing={sorted(clips - by_folder.get('clips', set()))}")
    for alert in ready:
        assert sha256(read(alert.clip.name)) == alert.clip_sha256, f"alert {alert.pk}: stored clip does not match its hash"
        assert 1 <= alert.clip_attempts <= max_attempts, (alert.pk, alert.clip_attempts, max_attempts)
    spools = {a.spool_name for a in alerts if a.clip_status != ClipStatus.READY}
    assert all(spools), [(a.pk, a.clip_status) for a in alerts if a.clip_status != ClipStatus.READY and not a.spool_name]
    assert by_folder.get("spool", set()) == spools, (
        f"spool files: extra={sorted(by_folder.get('spool', set()) - spools)} "
        f"missing={sorted(spools - by_folder.get('spool', set()))}")
    thumbnails = {a.thumbnail.name for a in alerts if a.thumbnail}
    assert by_folder.get("thumbnails", set()) == thumbnails, (sorted(by_folder.get("thumbnails", set())), sorted(thumbnails))
    assert set(by_folder) <= {"clips", "spool", "thumbnails", "snapshots"}, sorted(by_folder)
    assert len(by_folder.get("snapshots", set())) <= cameras, sorted(by_folder.get("snapshots", set()))


def clip_ready_lines(log: str, alert_id: int) -> int:
    return log.count(f"clip ready alert={alert_id} ")


def max_attempts() -> int:
    return int(settings.CLIP_BUILD_MAX_ATTEMPTS)


# --- Small servers ---------------------------------------------------------------------------------

class TcpProxy:
    """A TCP forwarder on a fixed port: stop() closes the port and resets every open connection, like
    a server going down; start() listens on the same port again."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port, self.port = target_port, port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the listening thread
            except OSError:
                pass
            listener.close()
        with self._lock:
            open_sockets, self._sockets = self._sockets, set()
        for sock in open_sockets:
            try:
                # Linger 0: the peer gets a reset, as when the server process dies.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update({client, upstream})
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

