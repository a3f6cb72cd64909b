"""Write a ring snapshot to a container file without re-encoding (milliseconds, not seconds).

The spooler (detection.recording.spooler) calls this to write a clip window's spool file (MPEG-TS);
the benchmarks and tests call it to write MP4. The MP4 evidence clip itself is built from the
spool by the clip worker (alerts.clip_build).
Timestamps are rebased to start at 0 and forced monotonic, because a window can span a
reconnect (timestamps restart) and the first RTSP keyframe can come without a pts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from detection.capture.ring import RingPacket, RingSnapshot

# A forward jump between consecutive packets larger than this is a discontinuity, not a gap in
# frames, and is replaced by the receive-time distance.
MAX_STEP_SECONDS = 5.0
_ANNEXB_PREFIXES = (b"\x00\x00\x00\x01", b"\x00\x00\x01")


@dataclass(frozen=True)
class RemuxResult:
    path: Path
    packets: int
    bytes: int
    duration: float  # seconds, from the first packet's pts to the end of the last


def write_snapshot(snapshot: RingSnapshot, path: str | os.PathLike[str], *, container_format: str = "mp4",
                   faststart: bool = True) -> RemuxResult:
    """Mux the snapshot's packets into `path`. Raises ValueError for an empty snapshot."""
    if not snapshot.packets or snapshot.codec is None:
        raise ValueError("the snapshot holds no packets: nothing to write")
    codec = snapshot.codec
    if codec.extradata and not codec.extradata.startswith(_ANNEXB_PREFIXES) and codec.codec_name in ("h264", "hevc"):
        # RTSP always delivers Annex B; length-prefixed packets come only from MP4-style sources.
        raise ValueError(f"{codec.codec_name} packets with MP4-style (length-prefixed) extradata are not supported; "
                         "convert them to Annex B first (h264_mp4toannexb)")
    time_base = codec.time_base
    timestamps = rebased_timestamps(snapshot.packets, time_base, codec.framerate)
    options = {"movflags": "+faststart"} if faststart and container_format in ("mp4", "mov") else {}
    target = Path(path)
    with av.open(str(target), "w", format=container_format, options=options) as output:
        stream = output.add_mux_stream(codec.codec_name, rate=codec.framerate, width=codec.width, height=codec.height)
        stream.time_base = time_base
        total = 0
        for index, (packet, (pts, dts)) in enumerate(zip(snapshot.packets, timestamps)):
            data = packet.data
            if index == 0:
                data = _with_parameter_sets(data, codec.extradata)
            out = av.Packet(data)
            out.stream = stream
            out.time_base = time_base
            out.pts, out.dts = pts, dts
            out.duration = packet.duration or None
            out.is_keyframe = packet.is_keyframe
            output.mux(out)
            total += packet.size
    last_pts, _ = timestamps[-1]
    end = last_pts + (snapshot.packets[-1].duration or 0)
    return RemuxResult(target, len(snapshot.packets), total, float(end * time_base))


def rebased_timestamps(packets: tuple[RingPacket, ...] | list[RingPacket], time_base: Fraction,
                       framerate: Fraction | None) -> list[tuple[int, int]]:
    """(pts, dts) per packet in time_base units: starting near 0, dts strictly increasing, pts >= dts."""
    default_step = _default_step(packets, time_base, framerate)
    max_step = int(MAX_STEP_SECONDS / time_base)
    result: list[tuple[int, int]] = []
    out_dts = 0
    previous: RingPacket | None = None
    previous_in: int | None = None
    for packet in packets:
        in_dts = packet.dts if packet.dts is not None else packet.pts
        if previous is None:
            step = 0
        elif in_dts is not None and previous_in is not None and 0 < in_dts - previous_in <= max_step:
            step = in_dts - previous_in
        else:
            # Missing or discontinuous timestamps: use the receive-time distance, at least a frame.
            step = max(default_step, int((packet.recv_time - previous.recv_time) / time_base))
        out_dts += step
        # B-frames: keep the packet's presentation delay over its decode time.
        delay = packet.pts - packet.dts if packet.pts is not None and packet.dts is not None else 0
        result.append((out_dts + max(0, delay), out_dts))
        previous = packet
        previous_in = in_dts if in_dts is not None else (None if previous_in is None else previous_in + step)
    return result


def _default_step(packets: tuple[RingPacket, ...] | list[RingPacket], time_base: Fraction,
                  framerate: Fraction | None) -> int:
    for packet in packets:
        if packet.duration:
            return packet.duration
    if framerate:
        return max(1, int(1 / (framerate * time_base)))
    return max(1, int(Fraction(1, 25) / time_base))


def _with_parameter_sets(data: bytes, extradata: bytes | None) -> bytes:
    """Put the SDP's parameter sets (Annex B SPS/PPS) in front of the first keyframe.

    The MP4 muxer builds its avcC/hvcC box from the first packet when the stream has no
    extradata, and a camera may send SPS/PPS only in the SDP, never in band.
    """
    if not extradata or not extradata.startswith(_ANNEXB_PREFIXES) or data.startswith(extradata):
        return data
    return extradata + data
