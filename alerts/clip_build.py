"""Building an evidence clip from a spool file: remux (or, for codecs browsers can't play, transcode)
to MP4 with the moov atom first, verify it, and hash it. No database here: alerts.clip_jobs drives it, in the Celery task alerts.tasks.build_clip.
"""
from __future__ import annotations

import hashlib
import logging
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

log = logging.getLogger("shoplift.clips")

# Codecs that play in an MP4 in every current browser; anything else (H.265 above all: Chrome on most
# desktops, Firefox) is transcoded.
BROWSER_PLAYABLE = frozenset({"h264"})
TRANSCODE_TIME_BASE = Fraction(1, 90000)


def plays_in_browsers(codec_name: str | None) -> bool:
    """Whether an MP4 of this codec plays in every current browser as it is (else it is transcoded)."""
    return codec_name in BROWSER_PLAYABLE


class ClipError(Exception):
    """A clip that cannot be built from this spool, whatever the retry: corrupt or empty input."""


@dataclass(frozen=True)
class BuiltClip:
    path: Path
    size: int
    duration: float
    frames: int
    sha256: str
    source_codec: str
    transcoded: bool
    build_seconds: float


def clip_build(*, spool: Path, out: Path, expected_seconds: float | None = None, max_extra_seconds: float = 12.0) -> BuiltClip:
    """Write `out` (MP4, faststart) from `spool`, verify it and hash it.

    `expected_seconds` is the clip window; the clip may be longer by up to `max_extra_seconds`
    (it starts at the keyframe before the window) and shorter by one second (frames lost at the end).
    """
    started = time.perf_counter()
    with _open(spool) as source:  # once: probing the MPEG-TS spool is most of a remux's time
        if not source.streams.video:
            raise ClipError("the spool file holds no video stream")
        codec = str(source.streams.video[0].codec_context.name)
        transcoded = not plays_in_browsers(codec)
        (_transcode_h264 if transcoded else _remux)(source, out)
    frames, duration = clip_verify(out)
    if expected_seconds is not None and not (expected_seconds - 1.0 <= duration <= expected_seconds + max_extra_seconds):
        raise ClipError(
            f"the clip lasts {duration:.2f} s but its window is {expected_seconds:.2f} s: the spool does not cover the event"
        )
    return BuiltClip(path=out, size=out.stat().st_size, duration=duration, frames=frames, sha256=file_sha256(out),
                     source_codec=codec, transcoded=transcoded, build_seconds=time.perf_counter() - started)


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError) as exc:
        raise ClipError(f"the spool file cannot be opened as video ({exc})") from exc


def _remux(source: av.container.InputContainer, out: Path) -> None:
    """Copy the packets into MP4 unchanged, timestamps rebased to start at 0."""
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as target:
        in_stream = source.streams.video[0]
        out_stream = target.add_stream_from_template(in_stream)
        origin: int | None = None
        last_dts: int | None = None
        count = 0
        try:
            for packet in source.demux(in_stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                if packet.dts is None:
                    packet.dts = packet.pts if packet.pts is not None else (last_dts + 1 if last_dts is not None else 0)
                if packet.pts is None:
                    packet.pts = packet.dts
                if origin is None:
                    origin = packet.dts
                packet.pts -= origin
                packet.dts -= origin
                if last_dts is not None and packet.dts <= last_dts:
                    continue  # a duplicate or out-of-order packet from a reconnect would break the muxer
                last_dts = packet.dts
                packet.stream = out_stream
                target.mux(packet)
                count += 1
        except av.error.FFmpegError as exc:
            raise ClipError(f"the spool file is corrupt after {count} packets ({exc})") from exc
        if count == 0:
            raise ClipError("the spool file holds no video packets")


def _transcode_h264(source: av.container.InputContainer, out: Path) -> None:
    """Decode and re-encode to H.264 (libx264). Only for codecs browsers can't play: it costs seconds of CPU."""
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as target:
        in_stream = source.streams.video[0]
        rate, out_stream = h264_output(target, in_stream, crf=23)
        origin: float | None = None
        last_pts = -1
        count = 0
        try:
            for frame in source.decode(in_stream):
                seconds = frame.time if frame.time is not None else count / float(rate)
                origin = seconds if origin is None else origin
                # Explicit pts and time base: without them the output can carry all-zero timestamps.
                pts = max(int(round((seconds - origin) / TRANSCODE_TIME_BASE)), last_pts + 1)
                last_pts = pts
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = pts, TRANSCODE_TIME_BASE
                for packet in out_stream.encode(frame):
                    target.mux(packet)
                count += 1
            for packet in out_stream.encode(None):
                target.mux(packet)
        except av.error.FFmpegError as exc:
            raise ClipError(f"the spool file is corrupt after {count} frames ({exc})") from exc
        if count == 0:
            raise ClipError("the spool file holds no decodable frames")


def h264_output(target: av.container.OutputContainer, like: av.video.stream.VideoStream, *,
                crf: int) -> tuple[Fraction, av.video.stream.VideoStream]:
    """An H.264 (libx264, yuv420p) stream in `target` of the size and rate of `like`, with the 90 kHz
    time base its frames are stamped in. Returns (frame rate, stream)."""
    rate = like.average_rate or like.guessed_rate or Fraction(25)
    stream = target.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": str(crf)})
    stream.width = like.codec_context.width
    stream.height = like.codec_context.height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = TRANSCODE_TIME_BASE
    return Fraction(rate), stream


def clip_verify(path: Path) -> tuple[int, float]:
    """Open the clip, decode every frame and check faststart. Returns (frames, duration in seconds)."""
    if not moov_before_mdat(path):
        raise ClipError("the clip's moov atom is not before its media data (not faststart)")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames, first, last, step = 0, None, None, 0.0
            for frame in container.decode(stream):
                frames += 1
                if frame.time is not None:
                    first = frame.time if first is None else first
                    step = frame.time - last if last is not None else step
                    last = frame.time
    except (av.error.FFmpegError, IndexError) as exc:
        raise ClipError(f"the clip does not decode ({exc})") from exc
    if frames == 0 or first is None or last is None:
        raise ClipError("the clip holds no decodable frames")
    return frames, (last - first) + step


def moov_before_mdat(path: Path) -> bool:
    """Read the MP4's top-level boxes: a browser can start playing before the download ends only if moov comes first."""
    order: list[bytes] = []
    with path.open("rb") as fh:
        while True:
            header = fh.read(8)
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0] - 8
            elif size == 0:
                order.append(kind)
                break
            order.append(kind)
            fh.seek(size - 8, 1)
    return b"moov" in order and b"mdat" in order and order.index(b"moov") < order.index(b"mdat")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
