"""Cameras whose address answers with garbage instead of RTSP: capture says so clearly, retries with a
growing delay, and run_detectors neither crashes nor gathers threads or file descriptors."""
from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.models import Alert
from cameras.models import Camera
from tests.faults.conftest import local_files, shelf_camera
from tests.support.factories import make_camera, make_zone
from tests.support.rtsp import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

OPEN_TIMEOUT, BACKOFF_CAP = 2.0, 4.0
RUN_SECONDS = 22.0


class GarbageServer:
    """A TCP server on 127.0.0.1 that answers every connection with nonsense:

    burst    4 KiB of random bytes, then it hangs up
    trickle  one random byte every 50 ms, never a line end that means anything
    rtspish  a well-formed "RTSP/1.0 200 OK" status line and headers for every request, random bytes as the body
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(client,), daemon=True).start()

    def _answer(self, client: socket.socket) -> None:
        rng = random.Random(self.connections)
        try:
            if self.mode == "burst":
                client.sendall(rng.randbytes(4096))
            elif self.mode == "trickle":
                while not self._closed.wait(0.05):
                    client.sendall(rng.randbytes(1))
            else:
                while request := client.recv(4096):
                    cseq = re.search(rb"CSeq: *(\d+)", request)
                    body = rng.randbytes(300)
                    client.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + (cseq.group(1) if cseq else b"1") +
                                   b"\r\nContent-Type: application/sdp\r\nContent-Length: 300\r\n\r\n" + body)
        except OSError:
            pass  # the client gave up on us: what we want
        finally:
            client.close()


@pytest.fixture
def garbage_servers() -> Iterator[dict[str, GarbageServer]]:
    servers = {mode: GarbageServer(mode) for mode in ("burst", "trickle", "rtspish")}
    yield servers
    for server in servers.values():
        server.close()


# What each camera's log line and status must say (a sentence an installer can act on).
EXPECTED = {
    "burst": "did not answer as an RTSP server",
    "trickle": f"within {OPEN_TIMEOUT:g} s",
    "rtspish": "has no video stream",
}


def delays(log: str, camera: str) -> list[float]:
    return [float(d) for d in re.findall(rf"camera '{camera}': .*next_delay=([\d.]+)\)", log)]


def test_garbage_instead_of_rtsp_is_reported_clearly_and_retried_with_backoff_without_leaks(
    garbage_servers: dict[str, GarbageServer], clip_settings: Path, detectors
):
    cameras = {}
    for mode, server in garbage_servers.items():
        if not cameras:
            cameras[mode] = shelf_camera(f"rtsp://admin:s3cret@127.0.0.1:{server.port}/ch1", name=mode)
        else:
            camera = make_camera(next(iter(cameras.values())).site, mode, detector="motion",
                                 stream_url=f"rtsp://admin:s3cret@127.0.0.1:{server.port}/ch1")
            make_zone(camera, "Shelf")
            cameras[mode] = camera
    run = detectors(CLIP_STORAGE_DIR=str(clip_settings), CAPTURE_OPEN_TIMEOUT_SECONDS=f"{OPEN_TIMEOUT:g}",
                    CAPTURE_BACKOFF_CAP_SECONDS=f"{BACKOFF_CAP:g}", CAPTURE_WATCHDOG_SECONDS="4")
    wait_until(lambda: all(delays(run.log(), mode) for mode in cameras), 20,
               message=f"a first failure of each camera\n{run.log()[-4000:]}")

    samples: list[tuple[float, int, int]] = []  # (seconds since the first failures, threads, fds)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < RUN_SECONDS:
        assert run.alive, f"run_detectors exited with {run.process.returncode}\n{run.log()[-6000:]}"
        samples.append((elapsed, run.threads(), run.fds()))
        time.sleep(0.25)
    code = run.stop()
    log = run.log()

    assert code == 0, log[-4000:]
    assert "Traceback" not in log and "unexpected error" not in log, log[-6000:]
    for mode, camera in cameras.items():
        lines = [line for line in log.splitlines() if f"camera '{mode}': " in line and "retrying in" in line]
        assert lines and all(EXPECTED[mode] in line for line in lines), (mode, lines[:3])
        assert all("s3cret" not in line for line in lines)
        waits = delays(log, mode)
        # Backoff: about 1 s, then doubling (±20 % jitter) up to the cap, and the retries go on.
        assert 0.8 <= waits[0] <= 1.2 and waits[1] > waits[0], (mode, waits)
        assert all(w <= BACKOFF_CAP * 1.2 for w in waits) and max(waits) >= BACKOFF_CAP * 0.8, (mode, waits)
        assert len(waits) >= 4 and garbage_servers[mode].connections >= len(waits), \
            (mode, waits, garbage_servers[mode].connections)
        row = Camera.objects.get(pk=camera.pk)
        assert not row.online and EXPECTED[mode] in row.last_error and "Traceback" not in row.last_error, row.last_error
    # No thread or descriptor piles up across the retries: the last samples are no higher than the first.
    early = [s for s in samples if s[0] < 6.0]
    late = [s for s in samples if s[0] > RUN_SECONDS - 6.0]
    assert max(t for _, t, _ in late) <= max(t for _, t, _ in early) + 1, samples
    assert max(f for _, _, f in late) <= max(f for _, _, f in early) + 2, samples
    # No video, no alert, no files.
    assert Alert.objects.count() == 0
    assert {name.split("/", 1)[0] for name in local_files(clip_settings)} <= {"snapshots"}, local_files(clip_settings)
