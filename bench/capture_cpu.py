"""Capture CPU per camera, in core-seconds per stream-second, at 720p25 and 1080p25.

    .venv/bin/python -m bench.capture_cpu [--cameras 4] [--seconds 15] [--resolutions 720p,1080p]

Each camera is a real RTSP client of GStreamer's RTSP server (a subprocess, whose CPU is not
counted) serving a 25 fps H.264 file with a keyframe every 2 s. This process's CPU time
(user + system, all threads) over the measured window is divided by the seconds of video the
cameras received. Modes:

  ring     demux every packet into the PacketRing only (a camera whose detection uses a substream)
  capture  CameraStream as built: ring + decode every frame (one thread, no loop filter) +
           5 fps sampled, downscaled to 640x360 BGR
  naive    demux + decode every frame + convert every frame to full-size BGR (the usual
           OpenCV-style loop), for comparison
  sub      ring on the main stream + CameraStream decoding a 640x360 substream (detect_url)

The machine is shared: run it when the load is low (the script prints the load average).
"""
from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import av.error

from detection.capture import CameraStream, StreamSpec
from detection.probe import open_input
from detection.ring import CodecParams, PacketRing, RingPacket
from tests.support.rtsp import RtspServer, file_mount, make_video

RESOLUTIONS = {"720p": (1280, 720, 2000), "1080p": (1920, 1080, 4000), "360p": (640, 360, 512)}
FPS = 25


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


def measure(label: str, start: Callable[[threading.Event], Callable[[], int]], *, cameras: int, warmup: float,
            seconds: float) -> dict[str, Any]:
    stop = threading.Event()
    frames_now = start(stop)
    time.sleep(warmup)
    cpu0, frames0, wall0 = cpu_seconds(), frames_now(), time.monotonic()
    time.sleep(seconds)
    cpu1, frames1, wall1 = cpu_seconds(), frames_now(), time.monotonic()
    stop.set()
    stream_seconds = (frames1 - frames0) / FPS
    per_stream = (cpu1 - cpu0) / stream_seconds if stream_seconds else float("nan")
    return {"mode": label, "cameras": cameras, "wall": wall1 - wall0, "cpu": cpu1 - cpu0,
            "stream_seconds": stream_seconds, "core_s_per_stream_s": per_stream}


def run_mode(mode: str, server: RtspServer, sub_server: RtspServer | None, cameras: int, warmup: float,
             seconds: float) -> dict[str, Any]:
    url = server.url("/video")

    def threads(target: Callable[[str, threading.Event, Counter], None]) -> Callable[[threading.Event], Callable[[], int]]:
        def start(stop: threading.Event) -> Callable[[], int]:
            counters = [Counter() for _ in range(cameras)]
            workers = [threading.Thread(target=target, args=(url, stop, c), daemon=True) for c in counters]
            for worker in workers:
                worker.start()
            return lambda: sum(c.frames for c in counters)
        return start

    def streams(detect: bool) -> Callable[[threading.Event], Callable[[], int]]:
        def start(stop: threading.Event) -> Callable[[], int]:
            specs = [StreamSpec(camera_id=n, name=f"bench{n}", url=url, ring_seconds=10.0, frame_size=(640, 360),
                                detect_url=sub_server.url("/video") if detect and sub_server else None)
                     for n in range(cameras)]
            running = [CameraStream(spec, stop=stop).start() for spec in specs]
            return lambda: sum(s.counters().packets for s in running)
        return start

    starters = {"ring": threads(ring_only), "naive": threads(naive), "capture": streams(False), "sub": streams(True)}
    result = measure(mode, starters[mode], cameras=cameras, warmup=warmup, seconds=seconds)
    time.sleep(2.5)  # let the threads end and the server drop the sessions before the next mode
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--resolutions", default="720p,1080p")
    parser.add_argument("--modes", default="ring,capture,naive")
    args = parser.parse_args()
    length = args.warmup + args.seconds + 10
    sub_video = make_video(width=640, height=360, fps=FPS, seconds=length, gop=50, bitrate_kbps=512)
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores); {args.cameras} cameras per run, "
          f"{args.seconds:g} s measured after {args.warmup:g} s warm-up")
    print(f"{'stream':>7} {'mode':>8} {'core-s per stream-s':>20} {'cameras on 2 cores':>19} {'16 cameras use':>15}")
    for name in args.resolutions.split(","):
        width, height, kbps = RESOLUTIONS[name]
        video = make_video(width=width, height=height, fps=FPS, seconds=length, gop=50, bitrate_kbps=kbps)
        with RtspServer([file_mount("/video", video)]) as server, RtspServer([file_mount("/video", sub_video)]) as sub:
            for mode in args.modes.split(","):
                r = run_mode(mode, server, sub, args.cameras, args.warmup, args.seconds)
                per = r["core_s_per_stream_s"]
                print(f"{name + '25':>7} {mode:>8} {per:>20.4f} {2 / per:>19.0f} {16 * per / 2:>14.0%}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
