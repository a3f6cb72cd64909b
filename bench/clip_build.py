"""Figure 2: building a 6 s evidence clip (720p25 and 1080p25 H.264) by remuxing, against re-encoding it with libx264.

The spools are made the way the detector process makes them: a CameraStream fills its ring from
GStreamer's RTSP server, and each clip window (2 s before, 2 s during, 2 s after; the ring extends
it back to a keyframe) is written out of the ring as MPEG-TS by detection.recording.remux.write_snapshot,
as detection/recording/recorder.py does. Then, clip by clip and in turn:

  ours      alerts.clip_build.clip_build, what the worker runs: remux to MP4 with faststart, verify
            (decode every frame, check moov before mdat), SHA-256
  baseline  the same steps with alerts.clip_build._transcode_h264 (libx264 veryfast, crf 23) in place
            of the remux

The build step alone (open the spool, then remux against re-encode) is reported too: the verify
decode is the same work in both and dominates ours; and the time to open (probe) the MPEG-TS
spool, which is most of the remux step.

    .venv/bin/python -m bench --only clip_build
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from alerts.clip_build import _open, _remux, _transcode_h264, clip_build, clip_verify, file_sha256
from bench.common import bench_video, percentile, ratio_text
from detection.capture.ring import RingSnapshot
from detection.capture.stream import CameraStream, StreamSpec
from detection.recording.remux import write_snapshot
from tests.support.rtsp import RtspServer, file_mount

# As detection.recording.recorder spools a clip window (not imported: it needs Django set up).
SPOOL_FORMAT, SPOOL_SUFFIX = "mpegts", ".ts"
CLIP_SECONDS = 6.0  # CLIP_PRE + CLIP_DURING + CLIP_POST defaults
RING_SECONDS = 10.0
RESOLUTIONS = ("720p", "1080p")
GOAL_RATIO = 100.0


def ring_windows(count: int, resolution: str) -> list[RingSnapshot]:
    """`count` clip windows, spread over a full 10 s ring filled from the RTSP server."""
    stop = threading.Event()
    with RtspServer([file_mount("/video", bench_video(resolution))]) as server:
        stream = CameraStream(StreamSpec(camera_id=1, name="clip-bench", url=server.url("/video"),
                                         ring_seconds=RING_SECONDS), stop=stop).start()
        try:
            deadline = time.monotonic() + RING_SECONDS + 30
            while stream.ring.stats().seconds < RING_SECONDS:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the ring did not fill from the RTSP server: {stream.counters()}")
                time.sleep(0.2)
            stats = stream.ring.stats()
            assert stats.oldest is not None and stats.newest is not None
            span = stats.newest - stats.oldest - CLIP_SECONDS
            starts = [stats.oldest + span * k / max(count - 1, 1) for k in range(count)]
            return [stream.ring.snapshot(start, start + CLIP_SECONDS) for start in starts]
        finally:
            stop.set()
            stream.join(2.0)


def run(quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for resolution in RESOLUTIONS:
        figures = measure(resolution, count=5 if quick else 20)
        results.update({f"{resolution}_{key}": value for key, value in figures.items()})
    return results


def measure(resolution: str, *, count: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"ours": [], "reencode": [], "remux": [], "transcode": [], "probe": []}
    durations: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-clips-") as tmp:
        folder = Path(tmp)
        spools = []
        for index, snapshot in enumerate(ring_windows(count, resolution)):
            spool = folder / f"{index}{SPOOL_SUFFIX}"
            write_snapshot(snapshot, spool, container_format=SPOOL_FORMAT, faststart=False)
            spools.append(spool)
        for index, spool in enumerate(spools):
            built = clip_build(spool=spool, out=folder / f"{index}.mp4", expected_seconds=CLIP_SECONDS,
                               max_extra_seconds=RING_SECONDS)
            if built.transcoded:
                raise RuntimeError("clip_build transcoded an H.264 spool: the benchmark would not measure a remux")
            times["ours"].append(built.build_seconds)
            durations.append(built.duration)

            # The build step as clip_build runs it: open (probe) the spool once, then write the MP4.
            started = time.perf_counter()
            with _open(spool) as source:
                _transcode_h264(source, folder / f"{index}-x264.mp4")
            step_done = time.perf_counter()
            clip_verify(folder / f"{index}-x264.mp4")
            file_sha256(folder / f"{index}-x264.mp4")
            times["reencode"].append(time.perf_counter() - started)
            times["transcode"].append(step_done - started)

            started = time.perf_counter()
            with _open(spool) as source:
                times["probe"].append(time.perf_counter() - started)  # MPEG-TS has no header: FFmpeg probes packets
                _remux(source, folder / f"{index}-remux.mp4")
            times["remux"].append(time.perf_counter() - started)
    results: dict[str, Any] = {"clips": count, "clip_mean_s": round(sum(durations) / len(durations), 2)}
    for key, values in times.items():
        results[f"{key}_p50_ms"] = round(percentile(values, 50) * 1000, 2)
        results[f"{key}_p95_ms"] = round(percentile(values, 95) * 1000, 2)
    results["ratio_p50"] = round(results["reencode_p50_ms"] / results["ours_p50_ms"], 1)
    results["step_ratio_p50"] = round(results["transcode_p50_ms"] / results["remux_p50_ms"], 1)
    return results


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resolution in RESOLUTIONS:
        if f"{resolution}_clips" not in results:
            continue
        r = {key[len(resolution) + 1:]: value for key, value in results.items() if key.startswith(f"{resolution}_")}
        where = f"6 s {resolution}25 clip ({r['clips']} clips, {r['clip_mean_s']:.1f} s with keyframe lead-in), p50 / p95"
        out += [
            {
                "figure": "2",
                "name": f"Clip job: build + verify decode + SHA-256, {where}",
                "measured": f"{_ms(r['ours_p50_ms'])} / {_ms(r['ours_p95_ms'])} (remux)",
                "baseline": f"{_ms(r['reencode_p50_ms'])} / {_ms(r['reencode_p95_ms'])} (libx264 re-encode)",
                "ratio": ratio_text(r["ratio_p50"], "faster"),
                "goal": f">= {GOAL_RATIO:.0f}x faster",
                "met": r["ratio_p50"] >= GOAL_RATIO,
            },
            {
                "figure": "2",
                "name": f"Clip build step alone (open the spool, write the MP4; no verify, no hash), {where}",
                "measured": f"{_ms(r['remux_p50_ms'])} / {_ms(r['remux_p95_ms'])} (remux; opening the TS spool alone: "
                            f"{_ms(r['probe_p50_ms'])})",
                "baseline": f"{_ms(r['transcode_p50_ms'])} / {_ms(r['transcode_p95_ms'])} (libx264 re-encode)",
                "ratio": ratio_text(r["step_ratio_p50"], "faster"),
                "goal": f">= {GOAL_RATIO:.0f}x faster",
                "met": r["step_ratio_p50"] >= GOAL_RATIO,
            },
        ]
    return out
