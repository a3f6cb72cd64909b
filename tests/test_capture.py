"""CameraStream against GStreamer's RTSP server streaming real H.264, live and from files."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import pytest

from cameras.models import Camera
from detection.capture.probe import probe_stream
from detection.capture.stream import CameraStatus, CameraStream, StreamSpec
from detection.recording.remux import write_snapshot
from detection.status_writer import Writer
from tests.support.factories import make_camera, make_site
from tests.support.rtsp import RtspServer, damaged_copy, file_mount, free_port, live_mount, make_video, wait_until

pytestmark = pytest.mark.rtsp


def make_spec(url: str, **overrides: Any) -> StreamSpec:
    values: dict[str, Any] = {
        "camera_id": 1, "name": "Aisle 3", "url": url, "detection_fps": 5.0, "ring_seconds": 4.0,
        "frame_size": (160, 120), "open_timeout": 2.0, "watchdog_seconds": 3.0, "backoff_cap": 2.0,
    }
    values.update(overrides)
    return StreamSpec(**values)


class Recorder:
    """Collects CameraStatus updates from the capture threads."""

    def __init__(self) -> None:
        self.statuses: list[CameraStatus] = []
        self._lock = threading.Lock()

    def __call__(self, status: CameraStatus) -> None:
        with self._lock:
            self.statuses.append(status)

    @property
    def last(self) -> CameraStatus | None:
        with self._lock:
            return self.statuses[-1] if self.statuses else None

    def online(self) -> bool:
        return self.last is not None and self.last.online

    def offline_with(self, text: str) -> bool:
        last = self.last
        return last is not None and not last.online and text in last.last_error


@contextmanager
def running(*specs: StreamSpec, on_status: Any = None) -> Iterator[list[CameraStream]]:
    """Start the streams; on the way out, stop them and require every thread to end within 2 s."""
    stop = threading.Event()
    streams = [CameraStream(spec, stop=stop, on_status=on_status).start() for spec in specs]
    try:
        yield streams
    finally:
        stop.set()
        deadline = time.monotonic() + 2.0
        ended = [stream.join(max(0.0, deadline - time.monotonic())) for stream in streams]
        assert all(ended), "capture threads still running 2 s after the stop event"


def test_it_captures_a_live_stream_and_samples_frames_at_the_detection_fps(rtsp_server: RtspServer):
    recorder = Recorder()
    with running(make_spec(rtsp_server.url("/live")), on_status=recorder) as (stream,):
        wait_until(lambda: stream.counters().frames_sampled >= 15, 20, message="15 sampled frames")
        frame = wait_until(lambda: stream.frames.take(timeout=1), 5, message="a frame in the slot")
        counters = stream.counters()
    assert frame.image.shape == (120, 160, 3) and frame.image.dtype.name == "uint8"
    assert (frame.source_width, frame.source_height) == (320, 240) and frame.camera_id == 1
    assert abs(frame.captured_at - time.time()) < 10
    assert frame.image.std() > 5  # a picture, not a blank buffer
    # 5 of every 25 frames, whatever the machine's load: sampling runs on the stream's clock.
    assert 0.15 <= counters.frames_sampled / counters.frames_decoded <= 0.3
    assert counters.packets > 0 and counters.bytes > 0 and counters.connects == 1 and counters.reconnects == 0
    assert counters.frames_dropped >= 10  # nobody took them: replaced in the slot, counted
    assert recorder.statuses[0].online and recorder.statuses[0].last_error == ""
    assert recorder.statuses[0].last_frame_at is not None


@pytest.mark.parametrize(("path", "ring_seconds"), [("/live", 10.0), ("/file", 4.0)])
def test_the_ring_holds_the_window_from_a_keyframe_and_a_snapshot_remuxes(rtsp_server: RtspServer, tmp_path: Path,
                                                                          path: str, ring_seconds: float):
    spec = make_spec(rtsp_server.url(path), ring_seconds=ring_seconds)
    with running(spec) as (stream,):
        wait_until(lambda: stream.ring.stats().seconds >= ring_seconds, ring_seconds + 20,
                   message=f"{ring_seconds} s in the ring")
        now = time.time()
        start, end = now - 3.0, now - 1.0
        wait_until(lambda: stream.ring.snapshot(start, end).covers_end, 5, message="the window received")
        stats = stream.ring.stats()
        held = stream.ring.snapshot(0, now + 60)
        snapshot = stream.ring.snapshot(start, end)
    assert stats.seconds >= ring_seconds and stats.seconds <= ring_seconds + 2.0 + 1.0  # + one 2 s GOP + jitter
    assert held.packets[0].is_keyframe
    assert snapshot.packets[0].is_keyframe
    # Snapped back to the keyframe at or before the start (keyframes every 2 s), ending by the end.
    assert start - 2.5 <= snapshot.start_time <= start
    assert end - 0.5 <= snapshot.end_time <= end
    assert snapshot.codec is not None and snapshot.codec.extradata  # parameter sets from the SDP
    result = write_snapshot(snapshot, tmp_path / "clip.mp4")
    with av.open(str(result.path)) as clip:
        frames = list(clip.decode(video=0))
    assert len(frames) == len(snapshot.packets) and frames[0].key_frame
    assert (frames[0].width, frames[0].height) == (320, 240)


def test_a_killed_server_is_reconnected_once_it_is_back(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live")])
    recorder = Recorder()
    with running(make_spec(server.url("/live")), on_status=recorder) as (stream,):
        wait_until(recorder.online, 15, message="online")
        server.kill()
        wait_until(lambda: not stream.counters().online, 15, message="the capture to notice the dead server")
        wait_until(lambda: recorder.offline_with("refused") or recorder.offline_with("ended"), 10,
                   message="offline status with the reason")
        packets = stream.counters().packets
        server.start()
        wait_until(lambda: stream.counters().connects >= 2 and stream.counters().packets > packets + 25, 20,
                   message="reconnected and receiving")
        wait_until(recorder.online, 10, message="online again")
        assert stream.counters().reconnects >= 1
        assert stream.ring.snapshot(0, time.time() + 60).packets[0].is_keyframe


def test_a_hung_server_is_caught_by_the_watchdog_and_capture_recovers_after_it_resumes(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live")])
    recorder = Recorder()
    spec = make_spec(server.url("/live"), watchdog_seconds=3.0, open_timeout=2.0)
    with running(spec, on_status=recorder) as (stream,):
        wait_until(recorder.online, 15, message="online")
        server.pause()
        paused_at = time.monotonic()
        wait_until(lambda: recorder.offline_with("watchdog"), 15, message="the watchdog")
        # No packet for 3 s is noticed within the next 1 s read slice, plus scheduling noise.
        assert time.monotonic() - paused_at < 3.0 + 4.0
        # While hung, attempts time out on opening instead of blocking forever.
        wait_until(lambda: recorder.offline_with("no answer"), 15, message="a timed-out reconnect")
        connects = stream.counters().connects
        server.resume()
        wait_until(lambda: stream.counters().connects > connects, 20, message="reconnected after SIGCONT")
        wait_until(recorder.online, 10, message="online again")


def test_a_refused_connection_at_start_is_retried_with_growing_delays(rtsp_servers, caplog):
    caplog.set_level(logging.INFO, logger="detection.capture.stream")
    port = free_port()
    url = f"rtsp://admin:s3cret@127.0.0.1:{port}/live"
    recorder = Recorder()
    spec = make_spec(url, backoff_initial=1.0, backoff_cap=30.0)

    def delays() -> list[float]:
        return [float(m) for m in re.findall(r"next_delay=([\d.]+)", caplog.text)]

    with running(spec, on_status=recorder) as (stream,):
        wait_until(lambda: len(delays()) >= 3, 20, message="three failed attempts")
        first, second, third = delays()[:3]
        assert 0.8 <= first <= 1.2 and second > first and third > second and third >= 3.2
        assert recorder.offline_with("connection refused")
        assert "s3cret" not in caplog.text and f"rtsp://admin:****@127.0.0.1:{port}/live" in caplog.text
        assert re.search(r"attempt=3\b", caplog.text)
        rtsp_servers([live_mount("/live")], port=port)
        wait_until(recorder.online, 20, message="online once the server is up")
        assert stream.counters().connects == 1


def test_wrong_path_and_wrong_credentials_give_clear_errors_and_keep_retrying(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live")], auth=("admin", "s3cret"))
    cases = {
        "wrong path": (server.url("/nope"), "404 Not Found"),
        "wrong password": (server.url("/live", user="admin", password="guess"), "rejected the user name or password"),
        "no credentials": (server.url("/live", user=None).replace("admin:s3cret@", ""), "requires a user name"),
    }
    recorders = {name: Recorder() for name in cases}
    stop = threading.Event()
    streams = {name: CameraStream(make_spec(url, name=name), stop=stop, on_status=recorders[name]).start()
               for name, (url, _) in cases.items()}
    good = CameraStream(make_spec(server.url("/live"), name="good"), stop=stop).start()
    try:
        for name, (_, expected) in cases.items():
            wait_until(lambda: recorders[name].offline_with(expected), 15, message=f"{name}: {expected}")
            assert "guess" not in recorders[name].last.last_error
        wait_until(lambda: good.counters().packets > 10, 15, message="the right credentials work")
        wait_until(lambda: all(s.counters().reconnects >= 1 for s in streams.values()), 15, message="retries")
        assert all(s.alive for s in streams.values())
    finally:
        stop.set()
        assert all(s.join(2.0) for s in [*streams.values(), good])


def test_corrupt_and_truncated_streams_do_not_crash_capture(rtsp_servers):
    source_ts = make_video(width=320, height=240, seconds=8, gop=50, container="ts")
    source_mp4 = make_video(width=320, height=240, seconds=8, gop=50)
    server: RtspServer = rtsp_servers([
        file_mount("/corrupt", damaged_copy(source_ts, kind="corrupt")),
        file_mount("/truncated-ts", damaged_copy(source_ts, kind="truncated")),
        file_mount("/truncated-mp4", damaged_copy(source_mp4, kind="truncated")),
    ])
    specs = [make_spec(server.url(path), name=path, backoff_cap=1.0)
             for path in ("/corrupt", "/truncated-ts", "/truncated-mp4")]
    with running(*specs) as streams:
        for stream in streams:
            # Each file ends (early, when truncated): capture must survive, reconnect and read again.
            wait_until(lambda: stream.counters().connects >= 2, 30, message=f"{stream.spec.name} reconnects at the end")
        for stream in streams:
            counters = stream.counters()
            assert stream.alive and counters.packets > 25 and counters.frames_decoded > 0, (stream.spec.name, counters)
            assert stream.ring.snapshot(0, time.time() + 60).packets[0].is_keyframe


def test_sixteen_cameras_at_once(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live", width=320, height=240)])
    specs = [make_spec(server.url("/live"), camera_id=n, name=f"cam{n}") for n in range(16)]
    with running(*specs) as streams:
        wait_until(lambda: all(s.counters().frames_sampled >= 3 and s.ring.stats().seconds >= 2.0 for s in streams),
                   40, message="all sixteen cameras capturing and sampling")
        for stream in streams:
            frame = stream.frames.take()
            assert frame is not None and frame.camera_id == stream.spec.camera_id
            assert stream.ring.snapshot(0, time.time() + 60).packets[0].is_keyframe
            assert stream.counters().reconnects == 0
    leftover = [t.name for t in threading.enumerate() if t.name.startswith(("capture-", "decode-", "detect-", "open-"))]
    assert leftover == []


def test_stop_ends_every_thread_within_two_seconds_even_while_opening_a_hung_server(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live")])
    healthy = make_spec(server.url("/live"), name="healthy")
    hung = make_spec(server.url("/live"), name="hung", open_timeout=30.0, watchdog_seconds=30.0)
    stop = threading.Event()
    first = CameraStream(healthy, stop=stop).start()
    wait_until(lambda: first.counters().packets > 10, 15, message="healthy camera capturing")
    server.pause()
    second = CameraStream(hung, stop=stop).start()
    time.sleep(0.5)  # let it get into the open (no assertion rides on this)
    stopped_at = time.monotonic()
    stop.set()
    assert first.join(2.0) and second.join(max(0.0, 2.0 - (time.monotonic() - stopped_at)))
    assert time.monotonic() - stopped_at < 2.0
    server.resume()


def test_a_detection_substream_feeds_the_detector_while_the_main_stream_fills_the_ring(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/main", width=320, height=240),
                                       live_mount("/sub", width=176, height=144, fps=10, gop=20)])
    spec = make_spec(server.url("/main"), detect_url=server.url("/sub"), frame_size=(96, 72), detection_fps=2.0)
    recorder = Recorder()
    with running(spec, on_status=recorder) as (stream,):
        frame = wait_until(lambda: stream.frames.take(timeout=1), 15, message="a frame from the substream")
        wait_until(lambda: stream.counters().frames_sampled >= 6, 15, message="frames sampled")
        counters = stream.counters()
        codec = stream.ring.codec
    assert (frame.source_width, frame.source_height) == (176, 144) and frame.image.shape == (72, 96, 3)
    assert codec is not None and (codec.width, codec.height) == (320, 240)
    assert counters.detect_packets > 0 and counters.packets > 0
    # Only the substream is decoded: 10 fps, of which 2 are sampled.
    assert counters.frames_decoded <= counters.detect_packets + 1
    assert 0.1 <= counters.frames_sampled / counters.frames_decoded <= 0.35
    assert any(s.online for s in recorder.statuses)


def test_a_camera_with_audio_keeps_only_its_video(rtsp_servers, tmp_path: Path):
    server: RtspServer = rtsp_servers([live_mount("/av", audio=True)])
    assert probe_stream(server.url("/av"), seconds=0.5).other_streams == ("audio pcm_alaw",)
    with running(make_spec(server.url("/av"))) as (stream,):
        wait_until(lambda: stream.counters().frames_sampled >= 3, 15, message="frames sampled")
        snapshot = stream.ring.snapshot(0, time.time() + 60)
    assert snapshot.codec is not None and snapshot.codec.codec_name == "h264"
    result = write_snapshot(snapshot, tmp_path / "clip.mp4")
    with av.open(str(result.path)) as clip:
        assert [s.type for s in clip.streams] == ["video"]
        assert len(list(clip.decode(video=0))) == len(snapshot.packets)


@pytest.mark.django_db(transaction=True)
def test_status_reaches_the_camera_row_through_the_writer(rtsp_servers):
    server: RtspServer = rtsp_servers([live_mount("/live")])
    camera = make_camera(make_site(), stream_url=server.url("/live", user="admin", password="s3cret"))
    stop = threading.Event()
    writer = Writer(stop=stop).start()
    stream = CameraStream(StreamSpec.from_camera(camera, open_timeout=2.0, backoff_cap=2.0, frame_size=(160, 120)),
                          stop=stop, on_status=writer.submit_status).start()
    try:
        wait_until(lambda: Camera.objects.get(pk=camera.pk).online, 20, message="camera row online")
        assert Camera.objects.get(pk=camera.pk).last_frame_at is not None
        server.kill()
        wait_until(lambda: not Camera.objects.get(pk=camera.pk).online, 20, message="camera row offline")
        row = Camera.objects.get(pk=camera.pk)
        assert row.last_error and "s3cret" not in row.last_error
    finally:
        stop.set()
        assert stream.join(2.0) and writer.join(2.0)
