"""The per-camera ring buffer of compressed video packets (the pre-roll of every evidence clip).

Packets, not decoded frames: 10 s of 1080p is a few MiB as H.264 and over a GiB as BGR arrays.
The ring is kept as whole GOPs so that it always starts on a keyframe, which is what a clip
needs to be decodable from its first packet. Times are wall-clock receive times, so windows
from the evidence stream and the detection stream (or the detector's clock) line up.

Thread safety: one capture thread pushes, any thread may snapshot or read stats.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av

if TYPE_CHECKING:
    import av.stream

logger = logging.getLogger(__name__)

# Two packets further apart than this (receive time) are a gap: a reconnect or a stalled camera.
GAP_SECONDS = 1.0


@dataclass(frozen=True)
class CodecParams:
    """What a muxer needs to write the packets without the original connection."""

    codec_name: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None = None
    framerate: Fraction | None = None
    pix_fmt: str | None = None
    profile: str | None = None
    bit_rate: int | None = None

    @classmethod
    def from_stream(cls, stream: av.stream.Stream) -> CodecParams:
        ctx: Any = stream.codec_context
        rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None)
        fmt = getattr(ctx, "format", None)
        return cls(
            codec_name=ctx.name,
            width=int(getattr(ctx, "width", 0) or 0),
            height=int(getattr(ctx, "height", 0) or 0),
            time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
            extradata=bytes(ctx.extradata) if ctx.extradata else None,
            framerate=Fraction(rate) if rate else None,
            pix_fmt=fmt.name if fmt is not None else None,
            profile=ctx.profile,
            bit_rate=ctx.bit_rate or None,
        )

    def decoder(self) -> Any:
        """A decoding context for packets of this stream (parameter sets from the extradata)."""
        ctx = av.CodecContext.create(self.codec_name, "r")
        if self.extradata:
            ctx.extradata = self.extradata
        return ctx


@dataclass(frozen=True)
class RingPacket:
    """One compressed packet as received. pts/dts are in time_base units and may be None."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    time_base: Fraction
    is_keyframe: bool
    recv_time: float  # wall clock (time.time()), when the demuxer handed it over

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # the default would print the payload
        return (f"RingPacket(pts={self.pts}, dts={self.dts}, key={self.is_keyframe}, "
                f"size={self.size}, recv_time={self.recv_time:.3f})")


@dataclass(frozen=True)
class RingSnapshot:
    """Packets of one window, starting on a keyframe, with the codec parameters to remux them."""

    packets: tuple[RingPacket, ...]
    codec: CodecParams | None
    requested_start: float
    requested_end: float

    @property
    def start_time(self) -> float | None:
        return self.packets[0].recv_time if self.packets else None

    @property
    def end_time(self) -> float | None:
        return self.packets[-1].recv_time if self.packets else None

    @property
    def nbytes(self) -> int:
        return sum(p.size for p in self.packets)

    @property
    def covers_start(self) -> bool:
        """False when the ring no longer (or never) held video from the requested start."""
        return bool(self.packets) and self.packets[0].recv_time <= self.requested_start

    @property
    def covers_end(self) -> bool:
        """False while the post-roll has not been received yet (or the camera stopped sending)."""
        return bool(self.packets) and self.packets[-1].recv_time >= self.requested_end - GAP_SECONDS / 2


@dataclass(frozen=True)
class RingStats:
    bytes: int
    packets: int
    gops: int
    seconds: float  # receive time from the oldest to the newest packet held
    gaps: tuple[tuple[float, float], ...]  # (from, to) receive times with no packet for > GAP_SECONDS
    oldest: float | None
    newest: float | None
    evicted_gops: int
    evicted_for_bytes: int
    discarded_before_keyframe: int


@dataclass
class _Gop:
    codec: CodecParams | None
    packets: list[RingPacket] = field(default_factory=list)
    nbytes: int = 0

    @property
    def start(self) -> float:
        return self.packets[0].recv_time


class PacketRing:
    """At least `window_seconds` of packets in whole GOPs, never more than `max_bytes` (bar one GOP)."""

    def __init__(self, window_seconds: float, max_bytes: int) -> None:
        if window_seconds <= 0 or max_bytes <= 0:
            raise ValueError("window_seconds and max_bytes must be positive")
        self.window_seconds = float(window_seconds)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._gops: deque[_Gop] = deque()
        self._bytes = 0
        self._packets = 0
        self._codec: CodecParams | None = None
        self._awaiting_keyframe = True
        # The previous packet pushed in this connection, to infer a missing pts.
        self._previous: RingPacket | None = None
        self._pts_pending = False
        self._evicted_gops = 0
        self._evicted_for_bytes = 0
        self._discarded = 0
        self._warned_oversized = False
        self._newest: float | None = None

    # --- writing (the capture thread) ----------------------------------------------------------

    def set_codec(self, codec: CodecParams | None) -> None:
        """Start of a new connection: new codec parameters and timestamps; wait for a keyframe."""
        with self._lock:
            self._codec = codec
            self._awaiting_keyframe = True
            self._previous = None
            self._pts_pending = False

    def push(self, packet: RingPacket) -> bool:
        """Add a packet; returns False when it was discarded (no keyframe yet to hang it on)."""
        with self._lock:
            if packet.is_keyframe:
                self._awaiting_keyframe = False
                self._gops.append(_Gop(codec=self._codec))
            elif self._awaiting_keyframe or not self._gops:
                # A P-frame without its keyframe cannot be decoded from the start of a clip.
                self._discarded += 1
                return False
            packet = self._fill_timestamps(packet)
            gop = self._gops[-1]
            gop.packets.append(packet)
            gop.nbytes += packet.size
            self._bytes += packet.size
            self._packets += 1
            self._previous = packet
            self._newest = packet.recv_time
            self._evict()
            return True

    def _fill_timestamps(self, packet: RingPacket) -> RingPacket:
        """Infer a missing pts (RTSP often gives none for the first IDR) from its neighbours."""
        previous = self._previous
        if packet.pts is None and packet.dts is not None:
            packet = replace(packet, pts=packet.dts)
        if packet.pts is None:
            if previous is not None and previous.pts is not None:
                step = previous.duration or packet.duration
                packet = replace(packet, pts=previous.pts + step, dts=None if previous.dts is None else previous.dts + step)
            else:
                self._pts_pending = True  # fixed when the next timed packet arrives
                return packet
        elif self._pts_pending and previous is not None and self._gops and self._gops[-1].packets:
            # The last packet held is the untimed one: give it the slot just before this packet.
            self._pts_pending = False
            last_gop = self._gops[-1]
            if last_gop.packets[-1] is previous:
                step = previous.duration or packet.duration
                dts = packet.dts if packet.dts is not None else packet.pts
                last_gop.packets[-1] = replace(previous, pts=packet.pts - step, dts=dts - step)
        return packet

    def _evict(self) -> None:
        newest = self._gops[-1].packets[-1].recv_time
        # Drop the oldest GOP only while what remains still covers the whole window.
        while len(self._gops) > 1 and newest - self._gops[1].start >= self.window_seconds:
            self._drop_oldest()
            self._evicted_gops += 1
        while self._bytes > self.max_bytes and len(self._gops) > 1:
            self._drop_oldest()
            self._evicted_for_bytes += 1
        if self._bytes > self.max_bytes:
            # One GOP alone is over the cap (a camera with no keyframes for a long time): drop it
            # and wait for the next keyframe rather than hold a ring that cannot start a clip.
            if not self._warned_oversized:
                logger.warning("ring: one GOP is larger than the %s-byte cap; dropping it until the next keyframe",
                               self.max_bytes)
                self._warned_oversized = True
            self._drop_oldest()
            self._evicted_for_bytes += 1
            self._awaiting_keyframe = True

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self._bytes -= gop.nbytes
        self._packets -= len(gop.packets)

    # --- reading (any thread) ------------------------------------------------------------------

    def snapshot(self, start: float, end: float) -> RingSnapshot:
        """Packets received in [start, end], extended back to the keyframe at or before `start`.

        If the window spans a reconnect that changed the codec parameters, the snapshot stops
        before the change: packets of two different streams cannot share one track.
        """
        if end < start:
            raise ValueError(f"snapshot end {end} is before its start {start}")
        with self._lock:
            gops = list(self._gops)
            if not gops:
                return RingSnapshot((), None, start, end)
            first = 0
            for index, gop in enumerate(gops):
                if gop.start <= start:
                    first = index
                else:
                    break
            codec = gops[first].codec
            packets: list[RingPacket] = []
            for gop in gops[first:]:
                if gop.start > end:
                    break
                if gop.codec != codec:
                    logger.info("ring snapshot: codec parameters change at %.3f; stopping the window there", gop.start)
                    break
                for packet in gop.packets:
                    if packet.recv_time > end:
                        break
                    packets.append(packet)
            return RingSnapshot(tuple(packets), codec, start, end)

    def stats(self) -> RingStats:
        with self._lock:
            packets = [p for gop in self._gops for p in gop.packets]
            gaps = tuple(
                (a.recv_time, b.recv_time) for a, b in zip(packets, packets[1:]) if b.recv_time - a.recv_time > GAP_SECONDS
            )
            oldest = packets[0].recv_time if packets else None
            newest = packets[-1].recv_time if packets else None
            return RingStats(
                bytes=self._bytes,
                packets=self._packets,
                gops=len(self._gops),
                seconds=(newest - oldest) if newest is not None and oldest is not None else 0.0,
                gaps=gaps,
                oldest=oldest,
                newest=newest,
                evicted_gops=self._evicted_gops,
                evicted_for_bytes=self._evicted_for_bytes,
                discarded_before_keyframe=self._discarded,
            )

    @property
    def codec(self) -> CodecParams | None:
        with self._lock:
            return self._codec

    @property
    def newest(self) -> float | None:
        """Receive time of the last packet pushed: every packet received up to it is in the ring."""
        return self._newest
