"""Figure 3: capture and sampling CPU per camera, in core-seconds per stream-second, at 720p25
and 1080p25, against decoding every frame to BGR.

Each camera is a real RTSP client of GStreamer's RTSP server (a subprocess, whose CPU is not
counted) serving a 25 fps H.264 file with a keyframe every 2 s. This process's CPU time
(user + system, all threads) over the measured window is divided by the seconds of video the
cameras received. Modes:

  ring     demux every packet into the PacketRing only (a camera whose detection uses a substream)
  capture  CameraStream as built: ring + decode every frame (one thread, no loop filter) +
           5 fps sampled, downscaled to 640x360 BGR
  naive    demux + decode every frame + convert every frame to full-size BGR (the usual
           OpenCV-style loop): the baseline

    .venv/bin/python -m bench --only capture_cpu
"""
from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import av.error

from bench.common import FPS, RESOLUTIONS, bench_video, ratio_text
from detection.capture.probe import open_input
from detection.capture.ring import CodecParams, PacketRing, RingPacket
from detection.capture.stream import CameraStream, StreamSpec
from tests.support.rtsp import RtspServer, file_mount

MODES = ("ring", "capture", "naive")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Counter:
    def __init__(self) -> None:
        self.frames = 0


def ring_only(url: str, stop: threading.Event, counter: Counter) -> None:
    """The evidence path of CameraStream without decoding: demux and push."""
    container = open_input(url, open_timeout=5.0, watchdog_seconds=10.0)
    try:
        stream = container.streams.video[0]
        ring = PacketRing(10.0, 64 << 20)
        ring.set_codec(CodecParams.from_stream(stream))
        while not stop.is_set():
            try:
                for packet in container.demux(stream):
                    if packet.size == 0 or stop.is_set():
                        return
                    ring.push(RingPacket(bytes(packet), packet.pts, packet.dts, packet.duration or 0,
                                         packet.time_base, packet.is_keyframe, time.time()))
                    counter.frames += 1
            except av.error.ExitError:
                continue
    finally:
        container.close()


def naive(url: str, stop: threading.Event, counter: Counter) -> None:
    """Decode every frame to a full-size BGR array, as a frame-based pipeline does."""
    container = open_input(url, open_timeout=5.0, watchdog_seconds=10.0)
    try:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        while not stop.is_set():
            try:
                for packet in container.demux(stream):
                    if packet.size == 0 or stop.is_set():
                        return
                    for frame in packet.decode():
                        frame.to_ndarray(format="bgr24")
                    counter.frames += 1
            except av.error.ExitError:
                continue
    finally:
        container.close()


def measure(mode: str, url: str, *, cameras: int, warmup: float, seconds: float) -> float:
    """Core-seconds of this process per second of video received, over `seconds` after `warmup`."""
    stop = threading.Event()
    joins: list[Callable[[float], Any]] = []
    if mode == "capture":
        streams = [CameraStream(StreamSpec(camera_id=n, name=f"bench{n}", url=url, ring_seconds=10.0,
                                           frame_size=(640, 360)), stop=stop).start() for n in range(cameras)]
        frames_now: Callable[[], int] = lambda: sum(s.counters().packets for s in streams)  # noqa: E731
        joins = [s.join for s in streams]
    else:
        counters = [Counter() for _ in range(cameras)]
        target = ring_only if mode == "ring" else naive
        workers = [threading.Thread(target=target, args=(url, stop, c), daemon=True) for c in counters]
        for worker in workers:
            worker.start()
        frames_now = lambda: sum(c.frames for c in counters)  # noqa: E731
        joins = [w.join for w in workers]
    try:
        time.sleep(warmup)
        cpu0, frames0 = cpu_seconds(), frames_now()
        time.sleep(seconds)
        cpu1, frames1 = cpu_seconds(), frames_now()
    finally:
        stop.set()
        for join in joins:
            join(5.0)
    stream_seconds = (frames1 - frames0) / FPS
    if stream_seconds <= 0:
        raise RuntimeError(f"capture_cpu {mode}: no video arrived from {url} in {seconds:g} s")
    time.sleep(1.0)  # let the server drop the sessions before the next mode
    return (cpu1 - cpu0) / stream_seconds


def run(quick: bool = False) -> dict[str, Any]:
    cameras, warmup, seconds = (2, 2.0, 5.0) if quick else (4, 3.0, 15.0)
    results: dict[str, Any] = {"cameras": cameras, "measured_s": seconds}
    for name in RESOLUTIONS:
        with RtspServer([file_mount("/video", bench_video(name))]) as server:
            for mode in MODES:
                per = measure(mode, server.url("/video"), cameras=cameras, warmup=warmup, seconds=seconds)
                results[f"cpu_{name}_{mode}"] = round(per, 4)
    return results


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in RESOLUTIONS:
        if f"cpu_{name}_capture" not in results:
            continue
        capture, naive_cpu, ring = (results[f"cpu_{name}_{m}"] for m in ("capture", "naive", "ring"))
        out.append({
            "figure": "3",
            "name": f"Capture + 5 fps sampling CPU per camera, {name}25 ({results['cameras']} cameras, "
                    f"core-s per stream-s; ring alone {ring:.3f})",
            "measured": f"{capture:.3f} ({2 / capture:.0f} cameras per 2 cores)",
            "baseline": f"{naive_cpu:.3f} (decode every frame to BGR)",
            "ratio": ratio_text(naive_cpu / capture, "less CPU"),
            "goal": "none",
            "met": None,
        })
    return out
