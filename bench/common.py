"""What the benchmarks share: the test videos they serve, percentiles, and number formatting."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from tests.support.rtsp import make_video

FPS = 25
# (width, height, kbit/s): typical DVR main-stream settings, keyframe every 2 s, no B-frames.
RESOLUTIONS = {"720p": (1280, 720, 2000), "1080p": (1920, 1080, 4000)}
# Long enough for every benchmark's warm-up and measurement: the file server plays each client
# from the start of the file once, without looping.
VIDEO_SECONDS = 40
MIB = 2**20


def bench_video(resolution: str) -> Path:
    """The H.264 MP4 a benchmark serves at this resolution (made once with ffmpeg, then cached)."""
    width, height, kbps = RESOLUTIONS[resolution]
    return make_video(width=width, height=height, fps=FPS, seconds=VIDEO_SECONDS, gop=2 * FPS, bitrate_kbps=kbps)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio_text(ratio: float, better: str) -> str:
    """'206x smaller', '99.7x faster', '0.8x faster' (never rounded up across a 100x goal)."""
    if not math.isfinite(ratio):
        return "n/a"
    return f"{ratio:.0f}x {better}" if ratio >= 100 else f"{ratio:.1f}x {better}"
