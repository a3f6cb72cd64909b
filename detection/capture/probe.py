"""Open an RTSP stream, explain why it fails in words an installer can act on, and measure it.

`check_camera` is a thin command over `probe_stream`; the capture threads share `rtsp_options`
and `explain_error` so that the same failure reads the same in the command and in the logs.
"""
from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import av
import av.error

from alerts.clip_build import plays_in_browsers
from detection.capture.ring import CodecParams
from shoplift.masking import mask_text, mask_url

logger = logging.getLogger(__name__)

# How long one blocking read may take before PyAV's interrupt returns control to our loop, which
# then checks the stop event and the watchdog. Short enough for a 2 s stop, long enough that a
# frame still arriving is not cut in half.
READ_SLICE_SECONDS = 1.0
# Probing: half a second of packets is enough when the SDP carries the parameter sets (it opens
# in ~0.4 s instead of ~1.2 s); FFmpeg reads on when it still lacks the codec parameters.
ANALYZE_MICROSECONDS = 500_000


class StreamError(Exception):
    """A stream could not be opened or read; the message is masked and says what to check."""


def rtsp_options(*, open_timeout: float, watchdog_seconds: float) -> dict[str, str]:
    """FFmpeg options for one RTSP input: TCP (no UDP loss or NAT trouble), bounded socket waits."""
    # FFmpeg's own socket timeout backs up PyAV's interrupt; it fires after about twice its value.
    socket_timeout = max(open_timeout, watchdog_seconds)
    return {
        "rtsp_transport": "tcp",
        "timeout": str(int(socket_timeout * 1_000_000)),
        "analyzeduration": str(ANALYZE_MICROSECONDS),
    }


def open_input(url: str, *, open_timeout: float, watchdog_seconds: float) -> Any:
    """av.open with our options; raises StreamError with an explained, masked message."""
    started = time.monotonic()
    try:
        return av.open(url, options=rtsp_options(open_timeout=open_timeout, watchdog_seconds=watchdog_seconds),
                       timeout=(open_timeout, READ_SLICE_SECONDS))
    except (av.error.FFmpegError, OSError) as exc:
        raise StreamError(explain_error(exc, url, elapsed=time.monotonic() - started, open_timeout=open_timeout)) from None


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "?", port or (322 if parts.scheme == "rtsps" else 554)


def explain_error(exc: BaseException, url: str, *, elapsed: float = 0.0, open_timeout: float | None = None) -> str:
    """Turn a PyAV/FFmpeg exception into a sentence that names the cause and what to check.

    FFmpeg reports a timed-out open as 'Invalid data' or 'Immediate exit requested', so the
    elapsed time is what tells a hung DVR from one that answered with nonsense.
    """
    host, port = host_port(url)
    where = f"{host}:{port}"
    strerror = mask_text(str(getattr(exc, "strerror", None) or exc))
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        if urlsplit(url).username is None:
            return (f"the DVR at {where} requires a user name and password (401 Unauthorized): "
                    "put them in the URL, rtsp://user:password@host/path")
        return f"the DVR at {where} rejected the user name or password (401 Unauthorized): check the credentials in the URL"
    if isinstance(exc, av.error.HTTPForbiddenError):
        return f"the DVR at {where} does not let this user view the stream (403 Forbidden): check the user's rights on the DVR"
    if isinstance(exc, av.error.HTTPNotFoundError):
        path = urlsplit(url).path or "/"
        return f"no stream at path '{path}' on {where} (404 Not Found): check the channel path in the DVR's manual"
    if isinstance(exc, av.error.HTTPClientError):
        return f"the DVR at {where} rejected the request ({strerror}): check the path and the credentials"
    if isinstance(exc, ConnectionRefusedError):
        return f"RTSP connection refused by {where}: is the DVR on, and is {port} its RTSP port (usually 554)?"
    timed_out = isinstance(exc, (TimeoutError, av.error.ExitError)) or (
        open_timeout is not None and elapsed >= open_timeout * 0.9
        and isinstance(exc, (av.error.InvalidDataError, av.error.ExitError, TimeoutError))
    )
    if timed_out:
        limit = f" within {open_timeout:g} s" if open_timeout else ""
        return f"no answer from {where}{limit}: the DVR is hung or overloaded, or a firewall drops RTSP traffic"
    if isinstance(exc, OSError) and not _resolves(host):
        return f"cannot resolve the host name '{host}': check the address in the URL and the DNS settings"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return f"the DVR at {where} closed the connection ({strerror})"
    if isinstance(exc, av.error.InvalidDataError):
        return f"{where} did not answer as an RTSP server, or sent a stream FFmpeg cannot read ({strerror})"
    if isinstance(exc, OSError) and getattr(exc, "errno", None) in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        return f"no route to {where} ({strerror}): check the network and the DVR's address"
    return f"{type(exc).__name__} from {where}: {strerror}"


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


# --- Probing for check_camera ----------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeReport:
    url: str  # masked
    codec: str
    profile: str | None
    width: int
    height: int
    fps: float | None
    keyframe_interval: float | None  # seconds, mean between keyframes; None if fewer than two seen
    keyframes_seen: int
    bitrate: float | None  # bits per second, measured
    measured_seconds: float  # media time covered by the packets read
    open_seconds: float
    ring_seconds: float
    ring_bytes: int | None  # what the ring will hold: the window plus one GOP, at the measured bitrate
    ring_max_bytes: int
    decoded_bytes: int | None  # the same window as decoded BGR frames, for comparison
    other_streams: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def plays_in_browsers(self) -> bool:
        return plays_in_browsers(self.codec)


def probe_stream(url: str, *, seconds: float = 10.0, open_timeout: float = 5.0, pre_roll: float = 2.0,
                 ring_seconds: float = 10.0, ring_max_bytes: int = 64 * 1024 * 1024,
                 evidence: bool = True) -> ProbeReport:
    """Read `seconds` of the stream and measure it; raises StreamError with an explained message.

    `evidence=False` is a detection substream: only decoded, never buffered or made into clips,
    so the ring and clip warnings do not apply to it.
    """
    started = time.monotonic()
    container = open_input(url, open_timeout=open_timeout, watchdog_seconds=open_timeout)
    try:
        open_seconds = time.monotonic() - started
        videos = list(container.streams.video)
        others = tuple(f"{s.type} {s.codec_context.name}" for s in container.streams if s.type != "video")
        if not videos:
            found = ", ".join(others) or "nothing"
            raise StreamError(f"{mask_url(url)} has no video stream (found: {found}): check the channel path")
        stream = videos[0]
        codec = CodecParams.from_stream(stream)
        measurement = _measure(container, stream, url, seconds=seconds, stall_timeout=open_timeout)
    finally:
        container.close()
    return _report(url, codec, measurement, others, open_seconds=open_seconds, pre_roll=pre_roll,
                   ring_seconds=ring_seconds, ring_max_bytes=ring_max_bytes, evidence=evidence)


@dataclass
class _Measurement:
    packets: int = 0
    timed_packets: int = 0
    bytes: int = 0
    keyframe_times: list[float] = field(default_factory=list)
    first_time: float | None = None
    last_time: float | None = None
    frame_step: float | None = None
    width: int = 0
    height: int = 0


def _measure(container: Any, stream: Any, url: str, *, seconds: float, stall_timeout: float) -> _Measurement:
    m = _Measurement()
    time_base: Fraction = stream.time_base or Fraction(1, 90000)
    deadline = time.monotonic() + seconds
    last_packet = time.monotonic()
    previous_pts: int | None = None
    decoder = av.CodecContext.create(stream.codec_context.name, "r")
    if stream.codec_context.extradata:
        decoder.extradata = stream.codec_context.extradata
    while time.monotonic() < deadline:
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    raise StreamError(f"{mask_url(url)}: the stream ended after {m.packets} packets")
                last_packet = time.monotonic()
                pts = packet.pts if packet.pts is not None else (
                    previous_pts + (packet.duration or 0) if previous_pts is not None else None)
                m.packets += 1
                m.bytes += packet.size
                if pts is not None:
                    t = float(pts * time_base)
                    m.timed_packets += 1
                    m.first_time = t if m.first_time is None else min(m.first_time, t)
                    m.last_time = t if m.last_time is None else max(m.last_time, t)
                    if packet.is_keyframe:
                        m.keyframe_times.append(t)
                    if m.frame_step is None and packet.duration:
                        m.frame_step = float(packet.duration * time_base)
                    previous_pts = pts
                if not m.width and packet.is_keyframe:
                    # The SDP may lack the size; the first decoded keyframe has it.
                    try:
                        frames = decoder.decode(packet)
                    except av.error.FFmpegError:
                        frames = []
                    if frames:
                        m.width, m.height = frames[0].width, frames[0].height
                if time.monotonic() >= deadline:
                    break
            else:
                raise StreamError(f"{mask_url(url)}: the stream ended after {m.packets} packets")
        except av.error.ExitError:
            silent = time.monotonic() - last_packet
            if silent >= stall_timeout:
                raise StreamError(f"{mask_url(url)}: the stream opened but sent no video for {silent:.0f} s") from None
        except av.error.FFmpegError as exc:
            raise StreamError(f"{mask_url(url)}: reading the stream failed: {explain_error(exc, url)}") from None
    if m.packets == 0:
        raise StreamError(f"{mask_url(url)}: the stream opened but sent no video in {seconds:g} s")
    return m


def _report(url: str, codec: CodecParams, m: _Measurement, others: tuple[str, ...], *, open_seconds: float,
            pre_roll: float, ring_seconds: float, ring_max_bytes: int, evidence: bool) -> ProbeReport:
    span = (m.last_time - m.first_time) if m.first_time is not None and m.last_time is not None else 0.0
    step = m.frame_step
    measured = span + (step or 0.0)
    fps: float | None = (m.timed_packets / measured) if measured > 0 and m.timed_packets > 1 else (
        float(codec.framerate) if codec.framerate else None)
    keys = m.keyframe_times
    interval = (keys[-1] - keys[0]) / (len(keys) - 1) if len(keys) >= 2 else None
    bitrate = (m.bytes * 8 / measured) if measured > 0 else None
    width, height = codec.width or m.width, codec.height or m.height
    ring_bytes = None
    if bitrate and evidence:
        # The ring evicts whole GOPs, so it holds the window plus up to one more GOP.
        ring_bytes = int(bitrate / 8 * (ring_seconds + (interval or 0.0)))
    decoded = None if not evidence else int(width * height * 3 * (fps or 0) * ring_seconds) if width and height and fps else None
    warnings: list[str] = []
    if evidence and interval is not None and interval > pre_roll + 0.05:
        warnings.append(
            f"keyframe interval {interval:.1f} s is longer than the {pre_roll:g} s pre-roll: clips start on a keyframe, "
            f"so they will start up to {interval:.1f} s before the pre-roll. Set the DVR's I-frame interval "
            f"(GOP) to at most {pre_roll:g} s, e.g. {max(1, int(pre_roll * (fps or 25)))} frames.")
    if interval is None:
        if len(keys) == 1:
            warnings.append(f"only one keyframe in {measured:.1f} s: the keyframe interval is longer than that; "
                            "measure longer with --seconds")
        else:
            warnings.append(f"no keyframe in {measured:.1f} s: clips cannot start until one arrives; "
                            "check the DVR's I-frame interval")
    if not evidence:
        pass
    elif codec.codec_name == "hevc":
        warnings.append("H.265 (HEVC) does not play in most browsers: clips will be transcoded to H.264, "
                        "which costs seconds of CPU per clip. Set the DVR channel to H.264 if it allows.")
    elif codec.codec_name != "h264":
        warnings.append(f"codec {codec.codec_name} does not play in browsers: clips will need transcoding to H.264")
    if ring_bytes is not None and ring_bytes > ring_max_bytes:
        warnings.append(f"the ring would need {ring_bytes / 2**20:.1f} MiB but is capped at "
                        f"{ring_max_bytes / 2**20:.1f} MiB: it will hold less than {ring_seconds:g} s")
    return ProbeReport(
        url=mask_url(url), codec=codec.codec_name, profile=codec.profile, width=width, height=height, fps=fps,
        keyframe_interval=interval, keyframes_seen=len(keys), bitrate=bitrate, measured_seconds=measured,
        open_seconds=open_seconds, ring_seconds=ring_seconds, ring_bytes=ring_bytes, ring_max_bytes=ring_max_bytes,
        decoded_bytes=decoded, other_streams=others, warnings=tuple(warnings),
    )


def format_report(report: ProbeReport, *, label: str = "stream") -> str:
    def mib(value: int | None) -> str:
        return "unknown" if value is None else f"{value / 2**20:.1f} MiB"

    lines = [
        f"{label}: {report.url}",
        f"  codec            {report.codec}{f' ({report.profile})' if report.profile else ''}"
        f"{'' if report.plays_in_browsers else '  [not playable in browsers]'}",
        f"  resolution       {report.width}x{report.height}",
        f"  fps              {report.fps:.2f}" if report.fps else "  fps              unknown",
        f"  keyframe every   {report.keyframe_interval:.2f} s ({report.keyframes_seen} keyframes seen)"
        if report.keyframe_interval is not None else f"  keyframe every   unknown ({report.keyframes_seen} keyframes seen)",
        f"  bitrate          {report.bitrate / 1000:.0f} kbit/s" if report.bitrate else "  bitrate          unknown",
        f"  ring memory      {mib(report.ring_bytes)} for {report.ring_seconds:g} s "
        f"(cap {mib(report.ring_max_bytes)}; as decoded BGR frames it would be {mib(report.decoded_bytes)})"
        if report.ring_bytes is not None else "  ring memory      none (detection only, not buffered)",
        f"  measured         {report.measured_seconds:.1f} s of video, opened in {report.open_seconds:.2f} s",
    ]
    if report.other_streams:
        lines.append(f"  other streams    {', '.join(report.other_streams)} (ignored)")
    lines.extend(f"  WARNING: {warning}" for warning in report.warnings)
    return "\n".join(lines)
