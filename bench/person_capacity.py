"""Figure 4p: how many 720p25 cameras one machine sustains with the person detector, a person
walking in front of each.

    .venv/bin/python -m bench.person_capacity [--quick]

As bench.capacity (whose step child, criteria and RTSP servers this reuses), but every camera
shows the demo shop (cameras/demo: the store picture, a real photograph of a person, the demo
camera's zones with their kinds) with the shopper walking across the floor and back without
stopping, past the shelf and into the exit zone, so the motion gate never skips the model and
every step pays for NanoDet on every sampled frame, BlazePose while the person is at the shelf,
the tracker and the behaviour rules. The file is pre-encoded H.264 (2 Mbit/s, keyframe every 2 s,
no B-frames) served by GStreamer's RTSP server; each camera is an RTSP/TCP client.

Each camera is sampled at DETECTION_FPS (2 fps) and the person detector (960x540 frames, as
PERSON_INPUT_SIZE, letterboxed to NanoDet's 416x416; 2 ONNX Runtime threads, as INFERENCE_THREADS)
runs in the one inference loop, batched across cameras. A step is sustained when, over its window,
bench.capacity's criteria all hold: every camera received 98 % of its packets, its 10 s ring has
no gap or hole, neither the receive lag nor the detected frames' age grew, and every camera's
frames went through the detector at 95 % of DETECTION_FPS with no packet skipped by its decoder.

Two ways of feeding the detector, each stepped up (2, 4, 6, ...) until a step fails:
  full       the detector's frames are decoded from the 720p stream (every frame: P-frames need it)
  substream  the same scene as a second 640x360 mount, the camera's detect_url: the 720p stream
             only fills the ring, and only the substream is decoded (its frames are scaled up to
             the detector's 960x540, as the supervisor sets frame_size). Started at the largest
             count the full design sustained (it decodes less), to keep a run short; stepped down
             if that fails.
What limits each is told from the failing step's CPU by thread: decoding (capture, decode and
substream threads) against the model (the inference thread plus the ONNX Runtime and OpenCV pool
threads, which Python did not start: "native").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench import capacity
from bench._support import sigterm_cleans_up

DETECTION_FPS = 2.0
PERSON_INPUT = (960, 540)  # PERSON_INPUT_SIZE's default
INFERENCE_THREADS = 2  # INFERENCE_THREADS's default
MAIN_SIZE, MAIN_KBPS = (1280, 720), 2000
SUB_SIZE, SUB_KBPS = (640, 360), 500
FPS = 25
WALK_SECONDS = 40  # the file plays once per client, from the start: warm-up and window must fit
WALK_PERIOD = 10.0  # across the floor and back, seconds
WALK_FEET_X = (0.12, 0.94)  # through the shelf zone, and 2 s in the exit zone (x >= 0.78) per turn
STEPS = (2, 4, 6, 8, 10, 12, 16, 20, 24)
QUICK_STEPS = (4, 8, 12, 16, 20)  # quick: coarser steps, shorter windows and no retry
MODULE = "bench.person_capacity"
SCENE_VERSION = 3  # bump when the drawing changes: cached videos are named by it

Box = tuple[float, float, float, float]


# =================================================================================================
# The scene: the demo shop with its shopper, as H.264 files (shared by bench.person_latency and
# bench.person_models).
# =================================================================================================

def walking_box(t: float) -> Box:
    """The shopper's box at t seconds when walking across the floor and back, never stopping."""
    from cameras.demo import scene

    phase = (t % WALK_PERIOD) / WALK_PERIOD
    x0, x1 = WALK_FEET_X
    x = x0 + (x1 - x0) * (2 * phase if phase < 0.5 else 2 - 2 * phase)
    return (x - scene.PERSON_W / 2, scene.FOOT_Y - scene.PERSON_H, x + scene.PERSON_W / 2, scene.FOOT_Y)


class SceneRenderer:
    """The demo shop at one size, with the person photograph pasted at a box (as the tests'
    demo_frame does: the photo scaled to the box, cut where the box leaves the picture)."""

    def __init__(self, size: tuple[int, int]) -> None:
        import cv2

        from cameras.demo import scene

        self.size = size
        store, person = cv2.imread(str(scene.STORE_JPG)), cv2.imread(str(scene.PERSON_JPG))
        if store is None or person is None:
            raise FileNotFoundError(f"cannot read the demo scene's pictures {scene.STORE_JPG} and {scene.PERSON_JPG}")
        self.store = cv2.resize(store, size, interpolation=cv2.INTER_AREA)
        self.person = person
        self._scaled: dict[tuple[int, int], Any] = {}

    def frame(self, box: Box | None) -> Any:
        import cv2

        image = self.store.copy()
        if box is None:
            return image
        width, height = self.size
        w, h = round((box[2] - box[0]) * width), round((box[3] - box[1]) * height)
        if (w, h) not in self._scaled:
            self._scaled[(w, h)] = cv2.resize(self.person, (w, h), interpolation=cv2.INTER_AREA)
        person = self._scaled[(w, h)]
        x, y = round(box[0] * width), round(box[1] * height)
        x1, x2 = max(x, 0), min(x + w, width)
        y1, y2 = max(y, 0), min(y + h, height)
        if x2 > x1 and y2 > y1:
            image[y1:y2, x1:x2] = person[y1 - y:y2 - y, x1 - x:x2 - x]
        return image


def scene_video(name: str, box_at: Callable[[float], Box | None], *, size: tuple[int, int], seconds: float,
                kbps: int) -> Path:
    """An H.264 MP4 of the demo shop with the shopper at box_at(t): 25 fps, keyframe every 2 s,
    no B-frames, `kbps` kbit/s. Made once (PyAV's libx264), cached in the test media folder."""
    import av

    from tests.support.rtsp import MEDIA_DIR

    path = MEDIA_DIR / f"person-{name}-v{SCENE_VERSION}-{size[0]}x{size[1]}-{seconds:g}s-{kbps}k.mp4"
    if path.exists():
        return path
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    renderer = SceneRenderer(size)
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = kbps * 1000
        # One slice per frame, as a DVR's encoder: PyAV's default (slice threads) makes two, and over the
        # GStreamer server and FFmpeg's RTSP client each slice then arrives as a packet of its own, which
        # decodes to half-grey pictures.
        stream.codec_context.thread_type = "FRAME"
        stream.options = {"g": str(2 * FPS), "keyint_min": str(2 * FPS), "sc_threshold": "0", "bf": "0",
                          "preset": "veryfast", "maxrate": f"{kbps}k", "bufsize": f"{2 * kbps}k"}
        stream.codec_context.time_base = Fraction(1, FPS)
        for index in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(renderer.frame(box_at(index / FPS)), format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    tmp.replace(path)
    return path


def walk_videos() -> tuple[Path, Path]:
    """(720p main stream, 640x360 substream) of the walking shopper."""
    main = scene_video(f"walk{WALK_PERIOD:g}", walking_box, size=MAIN_SIZE, seconds=WALK_SECONDS, kbps=MAIN_KBPS)
    sub = scene_video(f"walk{WALK_PERIOD:g}", walking_box, size=SUB_SIZE, seconds=WALK_SECONDS, kbps=SUB_KBPS)
    return main, sub


def demo_rules(camera_id: int, *, name: str = "") -> Any:
    """The demo camera's zones (cameras/demo/scene.py ZONES, with their kinds) as one camera's rules."""
    from cameras.demo import scene
    from detection.inference.events import CameraRules, ZoneRule

    zones = tuple(ZoneRule(id=1000 * camera_id + k, name=zone_name, kind=kind,
                           polygon=tuple((x, y) for x, y in polygon))
                  for k, (zone_name, kind, polygon) in enumerate(scene.ZONES, start=1))
    return CameraRules(camera_id=camera_id, name=name or f"cam{camera_id}", zones=zones, detector="person")


# =================================================================================================
# The child: one step, measured from inside by bench.capacity.child_step.
# =================================================================================================

def start_person(urls: list[str], stop: threading.Event, *, substream: bool,
                 ) -> tuple[list[capacity.Probe], Callable[[], dict[str, Any]]]:
    from detection.detectors.registry import create_detector

    detector: Any = create_detector("person", input_size=PERSON_INPUT, threads=INFERENCE_THREADS)
    seen = {"frames": 0, "with_person": 0}
    inner = detector.detect

    def detect(frames: Any, context: Any) -> Any:  # counts the frames in which a person is tracked
        found = inner(frames, context)
        for frame in frames:
            seen["frames"] += 1
            seen["with_person"] += bool(detector.people(frame.camera_id))
        return found

    detector.detect = detect
    rules = {n: demo_rules(n) for n in range(len(urls))}
    detect_urls = [url.replace("/cam", "/sub") for url in urls] if substream else None
    probes, finish = capacity.start_ours(urls, stop, detector=detector, rules=rules, detect_urls=detect_urls,
                                         detection_fps=DETECTION_FPS)

    def finished() -> dict[str, Any]:
        out = finish()
        stats = detector.stats
        out.update(
            model_frame_ratio=round(stats.model_frames / stats.frames, 3) if stats.frames else math.nan,
            person_frame_ratio=round(seen["with_person"] / seen["frames"], 3) if seen["frames"] else math.nan,
            pose_runs_per_frame=round(stats.pose_runs / stats.frames, 3) if stats.frames else math.nan,
        )
        return out

    return probes, finished


# =================================================================================================
# The parent: servers with both mounts, stepping, and what limits it.
# =================================================================================================

class Servers(capacity.Servers):
    """bench.capacity's servers with two mounts each: /cam the 720p stream, /sub its 640x360 substream."""

    def __init__(self, main: Path, sub: Path) -> None:
        from tests.support.rtsp import RtspServer, file_mount

        super().__init__(main)
        self._make = lambda: RtspServer([file_mount("/cam", main), file_mount("/sub", sub)])


DECODE_GROUPS = ("capture", "decode", "detect", "open", "exited")
MODEL_GROUPS = ("inference", "native")


def split_cores(r: dict[str, Any]) -> tuple[float, float]:
    """(decoding, model) cores of a step, from its CPU by thread."""
    groups = r.get("threads_cores", {})
    return (sum(groups.get(g, 0.0) for g in DECODE_GROUPS), sum(groups.get(g, 0.0) for g in MODEL_GROUPS))


def limit_text(design: str, ok: dict[str, Any] | None, stop: dict[str, Any] | None, problems: list[str]) -> str:
    """What stopped the design: the failing step's criterion and CPU, and where the CPU goes per camera
    at the largest sustained step (the failing step's split is skewed by whatever starved it)."""
    if stop is None:
        return f"{design}: nothing failed up to the largest step tried"
    cores = os.cpu_count() or 2
    busy = stop["machine_cores"] / cores
    base = ok or stop
    decode, model = split_cores(base)
    n = base["cameras"]
    inference = stop.get("threads_cores", {}).get("inference", 0.0)
    if inference >= 0.85:
        verdict = ("the model: the one inference thread is saturated (it runs every camera's gate, NanoDet batch, "
                   "tracker, pose and rules in turn)")
    else:
        verdict = "the model" if model >= decode else "decoding"
        verdict += " (the CPU is saturated)" if busy >= 0.9 else f" (the machine was {busy:.0%} busy)"
    others = (f"; other work on this shared machine took {stop['other_cores']:.2f} cores of it"
              if stop["other_cores"] > 0.3 else "")
    return (f"{design} at {stop['cameras']} cameras: {problems[0].split(':')[0]}; limited by {verdict}. At {n} cameras"
            f"{' (the largest sustained)' if ok else ''} the model (inference thread + ONNX Runtime/OpenCV pool threads) "
            f"took {model:.2f} cores = {1000 * model / n:.0f} core-ms per camera-second and decoding (capture, decode, "
            f"substream threads) {decode:.2f} = {1000 * decode / n:.0f}, of the detector process's "
            f"{base['process_cores']:.2f}. At {stop['cameras']}: machine CPU {busy:.0%} of {cores} cores (detector "
            f"process {stop['process_cores']:.2f}, RTSP servers {stop['server_cores']:.2f}, other processes "
            f"{stop['other_cores']:.2f}){others}; threads: {capacity.threads_text(stop)}")


def run_design(servers: Servers, design: str, steps: tuple[int, ...], warmup: float, seconds: float,
               retry: bool, down: tuple[int, ...] = ()) -> dict[str, Any]:
    """Step up until a step fails (a failing step is measured once more when `retry`). When the first
    step already fails, step `down` (descending) until one is sustained."""
    ok: dict[str, Any] | None = None
    stop: dict[str, Any] | None = None
    problems: list[str] = []
    log: list[str] = []

    def step(n: int) -> tuple[dict[str, Any], list[str]]:
        r = capacity.measure_step(servers, design, n, warmup, seconds, module=MODULE)
        found = capacity.failures(r)
        if found and retry:
            print(f"   {design} x{n}: {'; '.join(found)}: once more", flush=True)
            log.append(f"{n}:retry")
            r = capacity.measure_step(servers, design, n, warmup, seconds, module=MODULE)
            found = capacity.failures(r)
        decode, model = split_cores(r)
        status = "ok" if not found else found[0].split(":")[0]
        log.append(f"{n}:{status}")
        print(f"   {design} x{n}: {status}; process {r['process_cores']:.2f} cores (model {model:.2f}, decoding "
              f"{decode:.2f}), servers {r['server_cores']:.2f}, machine {r['machine_cores']:.2f}, other processes "
              f"{r['other_cores']:.2f}; model ran on {r.get('model_frame_ratio', math.nan):.0%} of frames, person "
              f"tracked in {r.get('person_frame_ratio', math.nan):.0%}; {'; '.join(found) or 'all criteria met'}",
              flush=True)
        return r, found

    for n in steps:
        r, found = step(n)
        if found:
            stop, problems = r, found
            break
        ok = r
    if ok is None:
        for n in down:
            r, found = step(n)
            if not found:
                ok = r
                break
            stop, problems = r, found
    out: dict[str, Any] = {
        f"{design}_max_cameras": ok["cameras"] if ok else 0,
        f"{design}_stopped_by": "; ".join(problems) if stop else "none: every step tried was sustained",
        f"{design}_stop_cameras": stop["cameras"] if stop else 0,
        f"{design}_steps": " ".join(log),
        f"{design}_limiting_factor": limit_text(design, ok, stop, problems),
    }
    for label, measured in (("at_max", ok), ("at_stop", stop)):
        if measured is None:
            continue
        r = measured
        decode, model = split_cores(r)
        out.update({
            f"{design}_process_cores_{label}": r["process_cores"],
            f"{design}_model_cores_{label}": round(model, 3),
            f"{design}_decode_cores_{label}": round(decode, 3),
            f"{design}_server_cores_{label}": r["server_cores"],
            f"{design}_machine_cores_{label}": r["machine_cores"],
            f"{design}_other_cores_{label}": r["other_cores"],
            f"{design}_detect_fps_min_{label}": round(r["detect_ratio_min"] * DETECTION_FPS, 2),
            f"{design}_frame_age_mean_s_{label}": r["frame_age_mean_s"],
            f"{design}_model_frame_ratio_{label}": r.get("model_frame_ratio"),
            f"{design}_person_frame_ratio_{label}": r.get("person_frame_ratio"),
            f"{design}_pose_runs_per_frame_{label}": r.get("pose_runs_per_frame"),
            f"{design}_events_{label}": r.get("events"),
            f"{design}_rss_mib_{label}": r["rss_mib"],
            f"{design}_threads_{label}": capacity.threads_text(r),
        })
    if ok:
        decode, model = split_cores(ok)
        out[f"{design}_model_core_ms_per_camera_s"] = round(1000 * model / ok["cameras"], 1)
        out[f"{design}_decode_core_ms_per_camera_s"] = round(1000 * decode / ok["cameras"], 1)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    steps = QUICK_STEPS if quick else STEPS
    # The warm-up plus the window must fill the 10 s ring after the ~1.5 s it takes to connect, and at
    # 2 fps a window of 10 s is 20 frames: one late frame is the 5 % the criterion allows.
    warmup, seconds = (5.0, 10.0) if quick else (5.0, 15.0)
    main, sub = walk_videos()
    servers = Servers(main, sub)
    results: dict[str, Any] = {"window_s": seconds, "warmup_s": warmup, "detection_fps": DETECTION_FPS,
                               "person_input": f"{PERSON_INPUT[0]}x{PERSON_INPUT[1]}",
                               "inference_threads": INFERENCE_THREADS}
    with sigterm_cleans_up():
        try:
            results.update(run_design(servers, "full", steps, warmup, seconds, retry=not quick))
            start = max(2, results["full_max_cameras"])
            results.update(run_design(servers, "substream", tuple(n for n in steps if n >= start), warmup, seconds,
                                      retry=not quick, down=tuple(n for n in reversed(steps) if n < start)))
        finally:
            servers.stop()
    full, sub_max = results["full_max_cameras"], results["substream_max_cameras"]
    results["substream_ratio"] = round(sub_max / full, 2) if full else math.nan
    return results


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    full, sub_max = results.get("full_max_cameras", 0), results.get("substream_max_cameras", 0)
    ratio = results.get("substream_ratio", math.nan)
    fps = results.get("detection_fps", DETECTION_FPS)

    def at_max(design: str) -> str:
        if not results.get(f"{design}_max_cameras"):
            return ""
        return (f"; at {results[f'{design}_max_cameras']}: model {results.get(f'{design}_model_cores_at_max', 0):.2f} "
                f"cores ({results.get(f'{design}_model_core_ms_per_camera_s', 0):.0f} core-ms per camera-s), "
                f"decoding {results.get(f'{design}_decode_cores_at_max', 0):.2f} "
                f"({results.get(f'{design}_decode_core_ms_per_camera_s', 0):.0f}), model ran on "
                f"{results.get(f'{design}_model_frame_ratio_at_max') or 0:.0%} of frames, person tracked in "
                f"{results.get(f'{design}_person_frame_ratio_at_max') or 0:.0%}")

    return [
        {"figure": "4p", "name": f"720p25 cameras sustained, person detector at {fps:g} fps per camera "
                                 f"({results.get('person_input', '960x540')} -> NanoDet 416, "
                                 f"{results.get('inference_threads', 2)} threads) with a person walking in each, "
                                 "no gaps, lost packets or lag (2 cores)",
         "measured": f"{full} (decoding the 720p stream; stopped at {results.get('full_stop_cameras') or '-'}: "
                     f"{results.get('full_stopped_by', '')}{at_max('full')})",
         "baseline": f"{sub_max} (640x360 detection substream; stopped at "
                     f"{results.get('substream_stop_cameras') or '-'}: {results.get('substream_stopped_by', '')}"
                     f"{at_max('substream')})",
         "ratio": f"{ratio:.2f}x with the substream" if isinstance(ratio, (int, float)) and math.isfinite(ratio)
         else "n/a",
         "goal": "none (motion baseline: figure 4)", "met": None},
        {"figure": "4p", "name": "What limits person-detector capacity",
         "measured": str(results.get("full_limiting_factor", "")),
         "baseline": str(results.get("substream_limiting_factor", "")), "ratio": "", "goal": "", "met": None},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument("--step", action="store_true", help=argparse.SUPPRESS)  # the child of one step
    parser.add_argument("--design", default="full", choices=("full", "substream"))
    parser.add_argument("--urls", default="")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mem-cap", type=int, default=8 * 2**30)
    args = parser.parse_args()
    if args.step:
        substream = args.design == "substream"
        result = capacity.child_step(
            args.design, args.urls.split(","), args.warmup, args.seconds, args.mem_cap, detection_fps=DETECTION_FPS,
            starter=lambda urls, stop: start_person(urls, stop, substream=substream))
        print("RESULT " + json.dumps(result), flush=True)
        os._exit(0)  # daemon threads blocked in FFmpeg calls must not hold the exit
    figures = run(quick=args.quick)
    if args.json:
        from bench._support import print_result

        print_result(figures)
    else:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
