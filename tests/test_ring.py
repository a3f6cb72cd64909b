"""PacketRing and remux on real H.264 packets (read from a test video), without a server."""
from __future__ import annotations

import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from detection.capture.ring import CodecParams, PacketRing, RingPacket
from detection.recording.remux import rebased_timestamps, write_snapshot
from tests.support.rtsp import make_video, require_gstreamer

T0 = 1_700_000_000.0
TB = Fraction(1, 90000)
FRAME = 3600  # 1/25 s at 90 kHz


@pytest.fixture(scope="module")
def annexb_packets() -> tuple[CodecParams, list[RingPacket]]:
    """30 s of 320x240 H.264 at 25 fps, keyframe every 2 s, as RTSP delivers it (Annex B, pts in 1/90000)."""
    require_gstreamer()
    path = make_video(width=320, height=240, fps=25, seconds=30, gop=50)
    packets: list[RingPacket] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", in_stream=stream)
        for packet in container.demux(stream):
            for out in bsf.filter(packet if packet.size else None):
                seconds = float(out.pts * stream.time_base)
                packets.append(RingPacket(
                    data=bytes(out), pts=round(seconds * 90000), dts=round(seconds * 90000), duration=FRAME,
                    time_base=TB, is_keyframe=out.is_keyframe, recv_time=T0 + seconds,
                ))
        codec = replace(CodecParams.from_stream(stream), time_base=TB, extradata=None)
    return codec, packets


def filled_ring(codec: CodecParams, packets: list[RingPacket], *, window: float = 10.0,
                max_bytes: int = 64 << 20) -> PacketRing:
    ring = PacketRing(window, max_bytes)
    ring.set_codec(codec)
    for packet in packets:
        ring.push(packet)
    return ring


def test_it_holds_at_least_the_window_in_whole_gops_starting_on_a_keyframe(annexb_packets):
    codec, packets = annexb_packets
    ring = filled_ring(codec, packets)
    stats = ring.stats()
    assert 10.0 <= stats.seconds < 12.0 + 0.05  # the window, plus at most one 2 s GOP
    snapshot = ring.snapshot(0, T0 + 1e6)
    assert snapshot.packets[0].is_keyframe
    assert stats.packets == len(snapshot.packets) and stats.bytes == snapshot.nbytes
    assert stats.evicted_gops > 0 and stats.gaps == ()


def test_it_evicts_whole_gops_under_the_byte_cap(annexb_packets):
    codec, packets = annexb_packets
    gop_bytes = sum(p.size for p in packets[:50])
    ring = filled_ring(codec, packets, max_bytes=int(gop_bytes * 2.5))
    stats = ring.stats()
    assert stats.bytes <= gop_bytes * 2.5
    assert stats.evicted_for_bytes > 0
    assert ring.snapshot(0, T0 + 1e6).packets[0].is_keyframe


def test_it_discards_packets_until_the_first_keyframe(annexb_packets):
    codec, packets = annexb_packets
    ring = PacketRing(10, 64 << 20)
    ring.set_codec(codec)
    accepted = [ring.push(p) for p in packets[10:60]]  # joins mid-GOP, like a shared live stream
    assert accepted[:40] == [False] * 40 and all(accepted[40:])
    assert ring.stats().discarded_before_keyframe == 40
    assert ring.snapshot(0, T0 + 1e6).packets[0].is_keyframe


def test_it_keeps_a_first_keyframe_without_pts_and_infers_its_time(annexb_packets):
    codec, packets = annexb_packets
    first = replace(packets[0], pts=None, dts=None)
    ring = PacketRing(10, 64 << 20)
    ring.set_codec(codec)
    assert ring.push(first)
    for packet in packets[1:5]:
        ring.push(packet)
    held = ring.snapshot(0, T0 + 1e6).packets
    assert held[0].is_keyframe and held[0].pts == packets[1].pts - FRAME and held[0].dts == held[0].pts
    assert [p.pts for p in held] == [p.pts for p in packets[:5]]


def test_a_snapshot_snaps_back_to_the_keyframe_at_or_before_its_start(annexb_packets):
    codec, packets = annexb_packets
    ring = filled_ring(codec, packets)
    # The ring holds about 18–30 s; keyframes every 2 s at T0 + 0, 2, 4 …
    snapshot = ring.snapshot(T0 + 23.3, T0 + 26.5)
    assert snapshot.codec == codec
    assert snapshot.packets[0].is_keyframe
    assert snapshot.start_time == pytest.approx(T0 + 22.0)
    assert snapshot.end_time <= T0 + 26.5 and snapshot.end_time == pytest.approx(T0 + 26.48)
    assert snapshot.covers_start and snapshot.covers_end
    # A start exactly on a keyframe starts there.
    assert ring.snapshot(T0 + 24.0, T0 + 25.0).start_time == pytest.approx(T0 + 24.0)
    # Earlier than the ring reaches: starts at the ring's first keyframe, and says so.
    early = ring.snapshot(T0 + 1.0, T0 + 21.0)
    assert early.packets[0].is_keyframe and not early.covers_start
    # Later than anything received: the post-roll is not there yet.
    assert not ring.snapshot(T0 + 28.0, T0 + 31.0).covers_end


def test_a_snapshot_stops_where_the_codec_changed_after_a_reconnect(annexb_packets):
    codec, packets = annexb_packets
    ring = filled_ring(codec, packets[:250], window=30)
    ring.set_codec(replace(codec, width=640, height=480))
    for packet in packets[250:]:
        ring.push(packet)
    snapshot = ring.snapshot(T0 + 8.0, T0 + 14.0)
    assert snapshot.codec == codec
    assert snapshot.end_time < T0 + 10.0


def test_snapshots_are_consistent_while_the_capture_thread_pushes(annexb_packets):
    codec, packets = annexb_packets
    ring = PacketRing(4, 64 << 20)
    ring.set_codec(codec)
    errors: list[str] = []

    def reader() -> None:
        for _ in range(300):
            snapshot = ring.snapshot(0, T0 + 1e6)
            if snapshot.packets and not snapshot.packets[0].is_keyframe:
                errors.append("snapshot did not start on a keyframe")
            times = [p.recv_time for p in snapshot.packets]
            if times != sorted(times):
                errors.append("packets out of order")

    thread = threading.Thread(target=reader)
    thread.start()
    for packet in packets:
        ring.push(packet)
    thread.join(10)
    assert errors == []


def test_stats_report_gaps(annexb_packets):
    codec, packets = annexb_packets
    ring = PacketRing(30, 64 << 20)
    ring.set_codec(codec)
    for packet in packets[:100]:
        ring.push(packet)
    ring.set_codec(codec)  # a reconnect, 3 s later
    for packet in packets[100:200]:
        ring.push(replace(packet, recv_time=packet.recv_time + 3.0))
    (gap,) = ring.stats().gaps
    assert gap[1] - gap[0] == pytest.approx(3.04, abs=0.01)


def test_it_remuxes_a_snapshot_to_a_faststart_mp4_that_decodes_from_its_first_frame(annexb_packets, tmp_path: Path):
    codec, packets = annexb_packets
    ring = filled_ring(codec, packets)
    snapshot = ring.snapshot(T0 + 23.3, T0 + 26.5)
    result = write_snapshot(snapshot, tmp_path / "clip.mp4")
    assert result.packets == len(snapshot.packets)
    data = (tmp_path / "clip.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # faststart: playable before fully downloaded
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        stream = clip.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 240)
        frames = list(clip.decode(stream))
    assert len(frames) == len(snapshot.packets)
    assert frames[0].pts == 0 and frames[0].key_frame
    assert float(frames[-1].time) == pytest.approx(len(frames) / 25 - 1 / 25, abs=0.01)


def test_remux_rebases_timestamps_across_a_reconnect_and_missing_pts(annexb_packets, tmp_path: Path):
    codec, packets = annexb_packets
    before = packets[100:150]
    # After a reconnect the server's timestamps start over, and the first IDR has no pts.
    after = [replace(p, pts=p.pts - packets[150].pts, dts=p.dts - packets[150].pts, recv_time=p.recv_time + 1.5)
             for p in packets[150:200]]
    after[0] = replace(after[0], pts=None, dts=None)
    stamps = rebased_timestamps(before + after, TB, codec.framerate)
    dts = [d for _, d in stamps]
    assert dts[0] == 0 and all(b > a for a, b in zip(dts, dts[1:]))
    assert all(p >= d for p, d in stamps)
    # The discontinuity is bridged with the receive-time distance (1.54 s), not the raw jump.
    assert float((dts[50] - dts[49]) * TB) == pytest.approx(1.54, abs=0.01)
    ring = PacketRing(30, 64 << 20)
    ring.set_codec(codec)
    for packet in before + after:
        ring.push(packet)
    result = write_snapshot(ring.snapshot(0, T0 + 1e6), tmp_path / "joined.mp4")
    with av.open(str(result.path)) as clip:
        assert len(list(clip.decode(video=0))) == 100


def test_an_empty_snapshot_is_refused(tmp_path: Path):
    ring = PacketRing(10, 1 << 20)
    with pytest.raises(ValueError, match="no packets"):
        write_snapshot(ring.snapshot(0, 1), tmp_path / "x.mp4")
