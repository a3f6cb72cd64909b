"""Figure 1: pre-roll memory per camera (10 s ring) at 720p25 and 1080p25, against the same
seconds held as decoded BGR frames.

A CameraStream captures a 25 fps H.264 file (keyframe every 2 s; 2 Mbit/s at 720p, 4 Mbit/s at
1080p) from GStreamer's RTSP server until its ring is full, then runs on and keeps each ring's
snapshot at its fullest (just before a GOP is evicted it holds the window plus one GOP). The
packets it holds are counted (payload plus Python object overhead), and the same packets are
decoded to BGR arrays to measure what holding those seconds as frames would take (each array is
measured and discarded, never all kept at once).

    .venv/bin/python -m bench --only ring_memory
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any

import av

from bench.common import FPS, MIB, RESOLUTIONS, bench_video, ratio_text
from detection.capture.ring import RingSnapshot
from detection.capture.stream import CameraStream, StreamSpec
from tests.support.rtsp import RtspServer, file_mount

RING_SECONDS = 10.0
GOAL_RATIO = 100.0


def decoded_bytes(snapshot: RingSnapshot) -> tuple[int, int]:
    """(frames, bytes) of the snapshot's packets decoded to BGR24."""
    assert snapshot.codec is not None
    decoder = snapshot.codec.decoder()
    frames = total = 0
    for packet in [*snapshot.packets, None]:
        for frame in decoder.decode(av.Packet(packet.data) if packet is not None else None):
            frames += 1
            total += frame.to_ndarray(format="bgr24").nbytes
    return frames, total


def fullest_snapshots(streams: dict[str, CameraStream], settle: float, observe: float) -> dict[str, RingSnapshot]:
    """Each ring's snapshot at its largest over `observe` seconds, after `settle` seconds.

    Settling skips the first fill, whose first GOP came in FFmpeg's opening burst.
    """
    snapshots = {name: s.ring.snapshot(0, time.time() + 60) for name, s in streams.items()}
    sizes = {name: s.ring.stats().bytes for name, s in streams.items()}
    settle_until = time.monotonic() + settle
    observe_until = settle_until + observe
    while time.monotonic() < observe_until:
        for name, s in streams.items():
            current = s.ring.stats().bytes
            if time.monotonic() < settle_until or current > sizes[name]:
                sizes[name], snapshots[name] = current, s.ring.snapshot(0, time.time() + 60)
        time.sleep(0.02)
    return snapshots


def run(quick: bool = False) -> dict[str, Any]:
    names = list(RESOLUTIONS)
    mounts = [file_mount(f"/{name}", bench_video(name)) for name in names]
    stop = threading.Event()
    with RtspServer(mounts) as server:
        streams = {name: CameraStream(StreamSpec(camera_id=n, name=name, url=server.url(f"/{name}"),
                                                 ring_seconds=RING_SECONDS, frame_size=(640, 360)), stop=stop).start()
                   for n, name in enumerate(names)}
        try:
            deadline = time.monotonic() + RING_SECONDS + 30
            while not all(s.ring.stats().seconds >= RING_SECONDS for s in streams.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the rings did not fill from the RTSP server within "
                                       f"{RING_SECONDS + 30:g} s: {[s.counters() for s in streams.values()]}")
                time.sleep(0.2)
            # A 2 s GOP is evicted every 2 s: a shorter watch in quick mode may miss the fullest moment.
            snapshots = fullest_snapshots(streams, settle=1.0 if quick else 3.0, observe=2.5 if quick else 4.5)
        finally:
            stop.set()
            for s in streams.values():
                s.join(2.0)
    results: dict[str, Any] = {"ring_seconds": RING_SECONDS}
    for name in names:
        snap = snapshots[name]
        payload = snap.nbytes
        with_objects = sum(sys.getsizeof(p) + sys.getsizeof(p.data) for p in snap.packets)
        frames, bgr = decoded_bytes(snap)
        held = len(snap.packets) / FPS  # seconds of video (receive times bunch up in bursts)
        results.update({
            f"ring_{name}_held_s": round(held, 3),
            f"ring_{name}_packets": len(snap.packets),
            f"ring_{name}_payload_mib": round(payload / MIB, 3),
            f"ring_{name}_mib": round(with_objects / MIB, 3),  # payload + Python objects: what the process holds
            f"ring_{name}_kbps": round(payload * 8 / held / 1000),
            f"bgr_{name}_frames": frames,
            f"bgr_{name}_mib": round(bgr / MIB, 1),
            f"ring_{name}_ratio": round(bgr / with_objects, 1),
            f"ring_{name}_per_10s_mib": round(with_objects / held * 10 / MIB, 3),
            f"bgr_{name}_per_10s_mib": round(bgr / frames * 10 * FPS / MIB, 1),
        })
    return results


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in RESOLUTIONS:
        if f"ring_{name}_mib" not in results:
            continue
        ratio = results[f"ring_{name}_ratio"]
        out.append({
            "figure": "1",
            "name": f"Pre-roll memory per camera, {results['ring_seconds']:g} s ring, {name}25 "
                    f"(held {results[f'ring_{name}_held_s']:.1f} s: whole 2 s GOPs)",
            "measured": f"{results[f'ring_{name}_mib']:.1f} MiB (H.264 packets)",
            "baseline": f"{results[f'bgr_{name}_mib']:.0f} MiB (same {results[f'bgr_{name}_frames']} frames as BGR)",
            "ratio": ratio_text(ratio, "smaller"),
            "goal": f">= {GOAL_RATIO:.0f}x smaller",
            "met": ratio >= GOAL_RATIO,
        })
    return out
