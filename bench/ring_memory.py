"""Ring memory per camera at 720p and 1080p, against the same seconds held as decoded BGR frames.

    .venv/bin/python -m bench.ring_memory [--ring-seconds 10] [--resolutions 720p,1080p]

A CameraStream captures a 25 fps H.264 file (keyframe every 2 s; 2 Mbit/s at 720p, 4 Mbit/s at
1080p, typical DVR main-stream settings) from GStreamer's RTSP server until its ring is full.
Then the packets it holds are counted (payload, and payload plus Python object overhead), and
the same packets are decoded to BGR arrays to measure what holding those seconds as frames
would take (each array is measured and discarded, never all kept at once).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time

import av

from detection.capture import CameraStream, StreamSpec
from detection.ring import RingSnapshot
from tests.support.rtsp import RtspServer, file_mount, make_video

RESOLUTIONS = {"720p": (1280, 720, 2000), "1080p": (1920, 1080, 4000)}
MIB = 2**20


def decoded_bytes(snapshot: RingSnapshot) -> tuple[int, int]:
    """(frames, bytes) of the snapshot's packets decoded to BGR24."""
    assert snapshot.codec is not None
    decoder = av.CodecContext.create(snapshot.codec.codec_name, "r")
    if snapshot.codec.extradata:
        decoder.extradata = snapshot.codec.extradata
    frames = total = 0
    for packet in snapshot.packets:
        for frame in decoder.decode(av.Packet(packet.data)):
            frames += 1
            total += frame.to_ndarray(format="bgr24").nbytes
    for frame in decoder.decode(None):
        frames += 1
        total += frame.to_ndarray(format="bgr24").nbytes
    return frames, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ring-seconds", type=float, default=10.0)
    parser.add_argument("--resolutions", default="720p,1080p")
    args = parser.parse_args()
    names = args.resolutions.split(",")
    mounts = []
    for name in names:
        width, height, kbps = RESOLUTIONS[name]
        video = make_video(width=width, height=height, fps=25, seconds=args.ring_seconds + 20, gop=50, bitrate_kbps=kbps)
        mounts.append(file_mount(f"/{name}", video))
    stop = threading.Event()
    with RtspServer(mounts) as server:
        streams = {name: CameraStream(StreamSpec(camera_id=n, name=name, url=server.url(f"/{name}"),
                                                 ring_seconds=args.ring_seconds, frame_size=(640, 360)),
                                      stop=stop).start()
                   for n, name in enumerate(names)}
        deadline = time.monotonic() + args.ring_seconds + 30
        while time.monotonic() < deadline and not all(
                s.ring.stats().seconds >= args.ring_seconds for s in streams.values()):
            time.sleep(0.2)
        # Run on past the first fill (its first GOP came in FFmpeg's opening burst) and keep each
        # ring at its fullest: just before a GOP is evicted it holds the window plus one GOP.
        snapshots = {name: s.ring.snapshot(0, time.time() + 60) for name, s in streams.items()}
        stats = {name: s.ring.stats() for name, s in streams.items()}
        settle_until = time.monotonic() + 3.0
        observe_until = settle_until + 4.5
        while time.monotonic() < observe_until:
            for name, s in streams.items():
                current = s.ring.stats()
                if time.monotonic() < settle_until or current.bytes > stats[name].bytes:
                    stats[name], snapshots[name] = current, s.ring.snapshot(0, time.time() + 60)
            time.sleep(0.02)
        stop.set()
        for s in streams.values():
            s.join(2.0)
        print(f"ring window {args.ring_seconds:g} s; figures at each ring's fullest over 4.5 s (whole 2 s GOPs, "
              "so up to one GOP more than the window)")
        print(f"{'stream':>7} {'held s':>7} {'bitrate':>9} {'packets':>8} {'ring MiB':>9} {'+objects':>9} "
              f"{'as BGR MiB':>11} {'ratio':>6} {'per 10 s: ring':>15} {'BGR':>8}")
        for name in names:
            s, st, snap = streams[name], stats[name], snapshots[name]
            payload = snap.nbytes
            with_objects = sum(sys.getsizeof(p) + sys.getsizeof(p.data) for p in snap.packets)
            frames, bgr = decoded_bytes(snap)
            held = st.seconds + 1 / 25  # the last packet's own duration
            kbps = payload * 8 / held / 1000
            print(f"{name:>7} {held:>7.2f} {kbps:>6.0f} kb {len(snap.packets):>8} {payload / MIB:>9.2f} "
                  f"{with_objects / MIB:>9.2f} {bgr / MIB:>11.0f} {bgr / with_objects:>5.0f}x "
                  f"{payload / held * 10 / MIB:>11.2f} MiB {bgr / frames * 250 / MIB:>4.0f} MiB")
        print("16 cameras: " + ", ".join(
            f"{name} {16 * snapshots[name].nbytes / MIB:.0f} MiB as packets" for name in names))


if __name__ == "__main__":
    main()
