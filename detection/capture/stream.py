"""Camera ingestion: one capture thread per camera keeps the ring full and the detector fed.

Threads per camera, all ending within about a second of the stop event:
  capture-<name>  RTSP/TCP demux of the evidence stream ─▶ PacketRing (every packet)
  detect-<name>   only when the camera has a detection substream: its demux
  decode-<name>   decodes the detection stream (the substream, else the evidence stream) and puts
                  frames at the camera's detection fps, downscaled, into a latest-frame slot
Opening a connection runs in a short-lived helper thread (open-<name>) because FFmpeg cannot
be interrupted by our stop event while it opens; see `_Opener`.

Why decoding has its own thread: H.264 P-frames need every packet decoded (about 1.5–2 ms per
720p frame here), and a slow decode must never delay reading packets, or receive times drift
and the server's buffers fill. The capture thread hands packets over a bounded queue; when
the decoder falls behind, the backlog is dropped and decoding resumes at the next keyframe.

Nothing here touches the database: status changes go out through `on_status`, which the
detector process wires to the `Writer`.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import av
import av.error
import numpy as np

from detection.capture.probe import StreamError, explain_error, open_input
from detection.capture.ring import CodecParams, PacketRing, RingPacket
from shoplift.masking import mask_text, mask_url

if TYPE_CHECKING:
    from cameras.models import Camera

logger = logging.getLogger(__name__)

DEFAULT_FRAME_SIZE = (640, 360)
# Consecutive decoder errors (no good frame between them) that count as a broken stream.
DECODE_ERRORS_BEFORE_RECONNECT = 25


@dataclass(frozen=True)
class StreamSpec:
    """Everything a CameraStream needs, read once from the Camera row and settings."""

    camera_id: int
    name: str
    url: str
    detect_url: str | None = None
    detection_fps: float = 5.0
    ring_seconds: float = 10.0
    ring_max_bytes: int = 64 * 1024 * 1024
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE  # (width, height) of frames given to the detector
    open_timeout: float = 5.0
    watchdog_seconds: float = 10.0  # reconnect a stream that delivered no packet for this long
    backoff_cap: float = 30.0
    backoff_initial: float = 1.0
    backoff_reset_seconds: float = 30.0  # a connection healthy this long resets the backoff
    decode_queue_packets: int = 50  # packets waiting for the decoder before the backlog is dropped
    fast_decode: bool = True  # skip H.264's loop filter for detection frames: ~15 % less CPU
    status_interval: float = 5.0  # seconds between status heartbeats while online

    @classmethod
    def from_camera(cls, camera: Camera, **overrides: Any) -> StreamSpec:
        from django.conf import settings

        values: dict[str, Any] = {
            "camera_id": camera.pk,
            "name": camera.name,
            "url": camera.stream_url,
            "detect_url": camera.detect_url or None,
            "detection_fps": camera.detection_fps,
            "ring_seconds": camera.timing().ring,
            "ring_max_bytes": settings.RING_MAX_BYTES,
            "open_timeout": settings.CAPTURE_OPEN_TIMEOUT_SECONDS,
            "watchdog_seconds": settings.CAPTURE_WATCHDOG_SECONDS,
            "backoff_cap": settings.CAPTURE_BACKOFF_CAP_SECONDS,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:  # never print a password
        return f"StreamSpec(camera_id={self.camera_id}, name={self.name!r}, url={self.masked_url!r})"


@dataclass(frozen=True)
class SampledFrame:
    camera_id: int
    image: np.ndarray  # BGR, frame_size
    captured_at: float  # wall clock: receive time of the packet that carried this frame
    source_width: int
    source_height: int


@dataclass(frozen=True)
class CameraStatus:
    camera_id: int
    online: bool
    last_frame_at: datetime | None
    last_error: str  # masked; '' when healthy


@dataclass(frozen=True)
class CaptureCounters:
    packets: int  # evidence stream
    bytes: int
    connects: int  # successful opens of the evidence stream
    reconnects: int  # attempts made after a failure or a lost connection (both streams)
    frames_decoded: int
    frames_sampled: int  # put into the slot
    frames_dropped: int  # replaced in the slot before the detector took them
    decode_skipped: int  # packets never decoded because the decoder fell behind
    decode_errors: int
    detect_packets: int  # detection substream, when there is one
    last_packet_at: float | None  # wall clock, evidence stream
    online: bool


class FrameSlot:
    """The latest sampled frame of one camera. Never queues: a newer frame replaces an untaken one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: SampledFrame | None = None
        self.put_count = 0
        self.taken = 0
        self.dropped = 0

    def put(self, frame: SampledFrame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.put_count += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> SampledFrame | None:
        """The latest frame, or None; waits up to `timeout` seconds for one when given."""
        with self._cond:
            if self._frame is None and timeout:
                self._cond.wait_for(lambda: self._frame is not None, timeout)
            frame, self._frame = self._frame, None
            if frame is not None:
                self.taken += 1
            return frame


class Backoff:
    """Exponential backoff with ±20 % jitter: about 1, 2, 4 … s up to `cap`.

    Jitter keeps sixteen cameras of one DVR that dropped together from retrying in lockstep.
    """

    def __init__(self, *, initial: float = 1.0, cap: float = 30.0, reset_after: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.initial, self.cap, self.reset_after = initial, cap, reset_after
        self.attempt = 0  # failures since the last healthy period
        self._rng = rng or random.Random()

    def next_delay(self, *, healthy_for: float = 0.0) -> float:
        """Delay before the next attempt; a connection healthy for `reset_after` s starts over."""
        if healthy_for >= self.reset_after:
            self.attempt = 0
        self.attempt += 1
        base = min(self.cap, self.initial * 2.0 ** (self.attempt - 1))
        return min(self.cap, base * self._rng.uniform(0.8, 1.2))


class _Opener:
    """av.open in a helper thread, so that the caller can give up on stop.

    FFmpeg's open polls only PyAV's timeout interrupt, not our stop event: a hung DVR would
    hold the capture thread for the whole open timeout. The capture thread waits here in
    0.1 s steps instead; if it is stopped, the helper closes the connection when (and if) the
    open returns, within the open timeout, and touches nothing else.
    """

    def __init__(self, url: str, spec: StreamSpec, stop: threading.Event, label: str) -> None:
        self._url, self._spec, self._stop, self._label = url, spec, stop, label
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._container: Any = None
        self._error: BaseException | None = None
        self._abandoned = False

    def open(self) -> Any:
        """The open container; None if stopped first; raises StreamError on failure."""
        thread = threading.Thread(target=self._run, name=f"open-{self._label}", daemon=True)
        thread.start()
        while not self._done.wait(0.1):
            if self._stop.is_set():
                with self._lock:
                    self._abandoned = True
                    container, self._container = self._container, None
                if container is not None:
                    container.close()
                return None
        if self._error is not None:
            raise self._error
        return self._container

    def _run(self) -> None:
        try:
            container = open_input(self._url, open_timeout=self._spec.open_timeout,
                                   watchdog_seconds=self._spec.watchdog_seconds)
        except StreamError as exc:
            self._error = exc
        except BaseException as exc:  # the capture thread re-raises it and logs it at its loop top
            self._error = exc
        else:
            with self._lock:
                if self._abandoned:
                    container.close()
                else:
                    self._container = container
        finally:
            self._done.set()


class _Decoder:
    """Decodes the detection stream in its own thread and samples frames into the slot."""

    def __init__(self, stream: CameraStream) -> None:
        self._camera = stream
        spec = stream.spec
        self._cond = threading.Condition()
        self._queue: deque[Any] = deque()
        self._max = max(2, spec.decode_queue_packets)
        self._skip_to_keyframe = True
        self._interval = 1.0 / spec.detection_fps
        self._width, self._height = spec.frame_size
        self.decoded = 0
        self.sampled = 0
        self.skipped = 0
        self.errors = 0
        self._consecutive_errors = 0

    # --- called by the reader thread ---------------------------------------------------------------

    def reset(self, codec: CodecParams) -> None:
        """A new connection: new decoder, and wait for its first keyframe."""
        with self._cond:
            self.skipped += sum(1 for item in self._queue if not isinstance(item, CodecParams))
            self._queue.clear()
            self._queue.append(codec)
            self._skip_to_keyframe = True
            self._cond.notify()

    def feed(self, packet: Any, recv_time: float) -> None:
        with self._cond:
            if self._skip_to_keyframe and not packet.is_keyframe:
                self.skipped += 1
                return
            if len(self._queue) >= self._max:
                # The decoder is behind: drop the backlog rather than fall further behind, and
                # restart at a keyframe because the P-frames after a gap cannot be decoded.
                codec = next((item for item in reversed(self._queue) if isinstance(item, CodecParams)), None)
                self.skipped += sum(1 for item in self._queue if not isinstance(item, CodecParams))
                self._queue.clear()
                if codec is not None:
                    self._queue.append(codec)
                if not packet.is_keyframe:
                    self._skip_to_keyframe = True
                    self.skipped += 1
                    return
            self._skip_to_keyframe = False
            self._queue.append((packet, recv_time))
            self._cond.notify()

    # --- the decode thread -------------------------------------------------------------------------

    def run(self) -> None:
        stop = self._camera.stop
        ctx: Any = None
        times: dict[int, float] = {}
        next_due: float | None = None
        while not stop.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(0.2)
                    continue
                item = self._queue.popleft()
            try:
                if isinstance(item, CodecParams):
                    ctx = self._new_context(item)
                    times.clear()
                    next_due = None
                    continue
                if ctx is None:
                    continue
                packet, recv_time = item
                if packet.pts is not None:
                    times[packet.pts] = recv_time
                    if len(times) > 256:  # frames that never came out (errors): forget the oldest
                        for key in list(times)[:128]:
                            del times[key]
                try:
                    frames = ctx.decode(packet)
                except av.error.FFmpegError as exc:
                    self._decode_failed(exc)
                    continue
                for frame in frames:
                    self.decoded += 1
                    self._consecutive_errors = 0
                    captured_at = times.pop(frame.pts, recv_time) if frame.pts is not None else recv_time
                    next_due, due = self._due(frame.time, next_due)
                    if due:
                        self._sample(frame, captured_at)
            except Exception:  # loop top: one bad frame must not end detection for this camera
                logger.exception("decode camera=%s: unexpected error; continuing", self._camera.spec.name)

    def _due(self, media_time: float | None, next_due: float | None) -> tuple[float | None, bool]:
        """(next due time, sample this frame?) on the stream's own clock.

        The media clock, not receive times, so that the burst of packets FFmpeg buffers while
        opening does not collapse into one sample. A frame without a time (the first IDR) is
        sampled only when nothing is scheduled yet.
        """
        if media_time is None:
            return next_due, next_due is None
        if next_due is not None and next_due - media_time > 5.0:
            next_due = None  # timestamps jumped back: start the cadence over
        if next_due is not None and media_time < next_due:
            return next_due, False
        if next_due is None or media_time - next_due > self._interval:
            return media_time + self._interval, True
        return next_due + self._interval, True

    def _new_context(self, codec: CodecParams) -> Any:
        ctx = codec.decoder()
        # Many cameras share two cores: one thread each beats oversubscribed frame threads.
        ctx.thread_count = 1
        if self._camera.spec.fast_decode:
            ctx.options = {"skip_loop_filter": "all"}
        return ctx

    def _decode_failed(self, exc: av.error.FFmpegError) -> None:
        self.errors += 1
        self._consecutive_errors += 1
        with self._cond:
            self._skip_to_keyframe = True
        if self._consecutive_errors == 1 or self._consecutive_errors % 10 == 0:
            logger.warning("decode camera=%s consecutive_errors=%d error=%s", self._camera.spec.name,
                           self._consecutive_errors, mask_text(str(exc)))
        if self._consecutive_errors >= DECODE_ERRORS_BEFORE_RECONNECT:
            self._consecutive_errors = 0
            self._camera._request_reconnect(detect=True, reason=f"decode errors: {mask_text(str(exc))}")

    def _sample(self, frame: Any, captured_at: float) -> None:
        # threads=1: PyAV's default builds a scaler thread pool on every call (2x the CPU for a small frame).
        image = frame.to_ndarray(width=self._width, height=self._height, format="bgr24", interpolation="AREA", threads=1)
        self.sampled += 1
        self._camera.frames.put(SampledFrame(
            camera_id=self._camera.spec.camera_id, image=image, captured_at=captured_at,
            source_width=frame.width, source_height=frame.height,
        ))


class _Link:
    """State of one RTSP connection (evidence or detection) as the status sees it."""

    def __init__(self, role: str, url: str) -> None:
        self.role, self.url = role, url
        self.online = False
        self.error = ""
        self.packets = 0
        self.reconnect_reason: str | None = None


class CameraStream:
    """Capture for one camera: start(), then stop the shared event and join()."""

    def __init__(self, spec: StreamSpec, *, stop: threading.Event,
                 on_status: Callable[[CameraStatus], None] | None = None) -> None:
        self.spec = spec
        self.stop = stop
        self._on_status = on_status
        self.ring = PacketRing(spec.ring_seconds, spec.ring_max_bytes)
        self.frames = FrameSlot()
        self._decoder = _Decoder(self)
        self._main = _Link("evidence", spec.url)
        self._detect = _Link("detection", spec.detect_url) if spec.detect_url else None
        self._threads: list[threading.Thread] = []
        self._status_lock = threading.Lock()
        self._last_status: CameraStatus | None = None
        self._last_status_sent = 0.0
        self._packets = 0
        self._bytes = 0
        self._connects = 0
        self._reconnects = 0
        self._last_packet_at: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> CameraStream:
        label = self.spec.name
        self._threads = [
            threading.Thread(target=self._run_link, args=(self._main,), name=f"capture-{label}", daemon=True),
            threading.Thread(target=self._decoder.run, name=f"decode-{label}", daemon=True),
        ]
        if self._detect is not None:
            self._threads.append(
                threading.Thread(target=self._run_link, args=(self._detect,), name=f"detect-{label}", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread of this camera; True if all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not self.alive

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def counters(self) -> CaptureCounters:
        decoder = self._decoder
        return CaptureCounters(
            packets=self._packets, bytes=self._bytes, connects=self._connects, reconnects=self._reconnects,
            frames_decoded=decoder.decoded, frames_sampled=decoder.sampled, frames_dropped=self.frames.dropped,
            decode_skipped=decoder.skipped, decode_errors=decoder.errors,
            detect_packets=self._detect.packets if self._detect else 0,
            last_packet_at=self._last_packet_at, online=self._main.online,
        )

    def _request_reconnect(self, *, detect: bool, reason: str) -> None:
        link = self._detect if detect and self._detect is not None else self._main
        link.reconnect_reason = reason

    # --- one connection, kept alive ------------------------------------------------------------------

    def _run_link(self, link: _Link) -> None:
        spec = self.spec
        backoff = Backoff(initial=spec.backoff_initial, cap=spec.backoff_cap, reset_after=spec.backoff_reset_seconds)
        feeds_decoder = link.role == "detection" or self._detect is None
        while not self.stop.is_set():
            healthy_for = 0.0
            try:
                container = _Opener(link.url, spec, self.stop, spec.name).open()
                if container is None:
                    break
                try:
                    connected_at = time.monotonic()
                    reason = self._pump(link, container, feeds_decoder)
                    healthy_for = time.monotonic() - connected_at
                finally:
                    container.close()
            except StreamError as exc:
                reason = str(exc)
            except Exception as exc:  # loop top: any failure becomes a logged reconnect, never a dead camera
                logger.exception("capture camera=%s stream=%s url=%s: unexpected error",
                                 spec.name, link.role, mask_url(link.url))
                reason = f"unexpected error: {mask_text(str(exc))}"
            if reason is None or self.stop.is_set():
                break
            delay = backoff.next_delay(healthy_for=healthy_for)
            link.online, link.error = False, reason
            self._publish(force=True)
            logger.warning(
                "camera %r: %s; retrying in %.1f s (camera_id=%s stream=%s url=%s attempt=%d next_delay=%.1f)",
                spec.name, reason, delay, spec.camera_id, link.role, mask_url(link.url), backoff.attempt, delay,
            )
            if self.stop.wait(delay):
                break
            self._reconnects += 1
            logger.info("camera %r: reconnecting (camera_id=%s stream=%s url=%s attempt=%d)",
                        spec.name, spec.camera_id, link.role, mask_url(link.url), backoff.attempt + 1)
        link.online = False
        logger.debug("capture camera=%s stream=%s stopped", spec.name, link.role)

    def _pump(self, link: _Link, container: Any, feeds_decoder: bool) -> str | None:
        """Read packets until stop (None) or a failure (its reason)."""
        spec = self.spec
        if not container.streams.video:
            found = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "nothing"
            return f"{mask_url(link.url)} has no video stream (found: {found})"
        stream = container.streams.video[0]
        codec = CodecParams.from_stream(stream)
        is_main = link is self._main
        if is_main:
            self._connects += 1
            self.ring.set_codec(codec)
        if feeds_decoder:
            self._decoder.reset(codec)
        link.reconnect_reason = None
        logger.info("camera %r: connected (camera_id=%s stream=%s url=%s codec=%s size=%sx%s)", spec.name,
                    spec.camera_id, link.role, mask_url(link.url), codec.codec_name, codec.width, codec.height)
        last_packet = time.monotonic()
        video_index = stream.index
        ring, decoder = self.ring, self._decoder
        while not self.stop.is_set():
            try:
                # Every stream, not just the video: a camera whose audio flows while its video has
                # frozen would otherwise never let a read slice expire, and never meet the watchdog.
                for packet in container.demux():
                    if packet.stream_index != video_index:
                        silent = time.monotonic() - last_packet
                        if silent >= spec.watchdog_seconds:
                            return f"no video packet for {silent:.0f} s (watchdog {spec.watchdog_seconds:g} s)"
                        if self.stop.is_set():
                            return None
                        continue
                    if packet.size == 0:  # the demuxer's flush packet: the stream ended
                        break
                    now = time.time()
                    last_packet = time.monotonic()
                    if is_main:
                        data = bytes(packet)
                        ring.push(RingPacket(
                            data=data, pts=packet.pts, dts=packet.dts, duration=packet.duration or 0,
                            time_base=packet.time_base, is_keyframe=packet.is_keyframe, recv_time=now,
                        ))
                        self._packets += 1
                        self._bytes += len(data)
                        self._last_packet_at = now
                    link.packets += 1
                    if feeds_decoder:
                        decoder.feed(packet, now)
                    if not link.online:
                        link.online, link.error = True, ""
                        self._publish(force=True)
                    elif is_main and now - self._last_status_sent >= spec.status_interval:
                        self._publish()
                    if self.stop.is_set():
                        return None
                    if link.reconnect_reason:
                        return link.reconnect_reason
                return "the stream ended (the DVR closed it or restarted)"
            except av.error.ExitError:
                # One read slice passed with no packet: check stop and the watchdog, then read on.
                silent = time.monotonic() - last_packet
                if silent >= spec.watchdog_seconds:
                    return f"no packet for {silent:.0f} s (watchdog {spec.watchdog_seconds:g} s): the DVR stopped sending"
            except (av.error.FFmpegError, OSError) as exc:
                return f"reading failed: {explain_error(exc, link.url)}"
        return None

    # --- status -------------------------------------------------------------------------------------

    def _publish(self, *, force: bool = False) -> None:
        """Send the camera's combined status when it changed, or as a heartbeat."""
        if self._on_status is None:
            return
        links = [self._main] + ([self._detect] if self._detect else [])
        online = all(link.online for link in links)
        error = ""
        for link in links:
            if not link.online and link.error:
                error = link.error if link is self._main else f"detection stream: {link.error}"
                break
        last = self._last_packet_at
        status = CameraStatus(
            camera_id=self.spec.camera_id, online=online,
            last_frame_at=datetime.fromtimestamp(last, tz=UTC) if last else None,
            last_error=mask_text(error),
        )
        with self._status_lock:
            now = time.time()
            previous = self._last_status
            changed = previous is None or (previous.online, previous.last_error) != (status.online, status.last_error)
            if not (force or changed or now - self._last_status_sent >= self.spec.status_interval):
                return
            self._last_status, self._last_status_sent = status, now
        try:
            self._on_status(status)
        except Exception:  # a broken sink must not stop capture
            logger.exception("capture camera=%s: status callback failed", self.spec.name)
