"""Figure 7p: the person detector's models on CPU, ONNX Runtime against PyTorch in the same run.

    .venv/bin/python -m bench --only person_models

The frames are real: the demo shop with its shopper walking (bench.person_capacity's 720p H.264
file), decoded with PyAV and downscaled to 960x540 (PERSON_INPUT_SIZE) as the capture stage does,
16 frames 0.5 s apart so the person is at a different place in each. Measured, each with 2 threads
(INFERENCE_THREADS) and with 1 (a figure per core):

  person model  NanoDet 416x416 through NanoDet.detect (letterbox, model, GFL decode, NMS) at
                batch 1 and 16: wall ms per frame, frames per second, and frames per CPU-second (the
                process's CPU time, so ONNX Runtime's spinning pool threads count). The shipped
                nanodet.onnx in ONNX Runtime against the same graph converted to TorchScript with
                onnx2torch, traced and frozen, run through the same NanoDet code; the runtimes
                alternate in rounds so machine load falls on both alike. Model calls alone too, and
                ONNX Runtime with its pool threads spin-waiting between runs (its default,
                session.intra_op.allow_spinning=1; the shipped sessions turn it off).
                Outputs equal: the largest absolute difference of the six output maps on the same
                batch, and of the decoded boxes.
  pose          BlazePose full and lite per person box (crop, model, keypoints)
  tracker       Tracker.update with 1, 5 and 20 synthetic people moving at 5 fps
  motion gate   MotionGate.moved per 960x540 frame
  detector      PersonDetector.detect, all stages (gate, NanoDet, tracker, pose at the shelf,
                behaviour rules) on the walking shopper at 5 fps, 1 camera and 16 cameras a batch,
                as shipped and with both sessions spin-waiting (ONNX Runtime's default): wall and CPU
                ms per frame

PyTorch needs onnx2torch, which is no project requirement. Install it into the virtualenv with

    .venv/bin/pip install onnx==1.23.2 && .venv/bin/pip install --no-deps onnx2torch==1.5.15

(--no-deps: its torchvision requirement would replace the pinned CPU torch). Without it the
PyTorch part is recorded as skipped and the rest runs. onnx2torch imports torchvision at import
time, and PyPI's torchvision fails beside torch 2.13.0, so the conversion runs with a stand-in
torchvision module (only its NMS and RoIAlign converters would use it; NanoDet has neither).
"""
from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import percentile

THREADS = (2, 1)  # INFERENCE_THREADS's default, then one core
BATCHES = (1, 16)
FRAMES = 16
PERSON_INPUT = (960, 540)
TRACKER_PEOPLE = (1, 5, 20)
SAMPLE_FPS = 5.0
ONNX2TORCH_INSTALL = ".venv/bin/pip install onnx==1.23.2 && .venv/bin/pip install --no-deps onnx2torch==1.5.15"


# --- Frames ---------------------------------------------------------------------------------------

def real_frames(count: int, every: float) -> list[np.ndarray]:
    """`count` frames of the walking shopper, `every` seconds apart, at PERSON_INPUT (BGR)."""
    import av

    from bench.person_capacity import walk_videos

    main, _ = walk_videos()
    images: list[np.ndarray] = []
    next_t = 0.0
    with av.open(str(main)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.time is None or frame.time + 1e-6 < next_t:
                continue
            next_t += every
            images.append(frame.to_ndarray(width=PERSON_INPUT[0], height=PERSON_INPUT[1], format="bgr24",
                                           interpolation="AREA"))
            if len(images) == count:
                break
    return images


# --- PyTorch ----------------------------------------------------------------------------------------

def _stand_in_torchvision() -> None:
    """onnx2torch imports torchvision for its NMS and RoIAlign converters; NanoDet uses neither."""
    if "torchvision" in sys.modules:
        return

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("torchvision is a stand-in here (bench.person_models)")

    torchvision = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = missing  # type: ignore[attr-defined]
    torchvision.ops = ops  # type: ignore[attr-defined]
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.ops"] = ops


def torchscript_nanodet(model_bytes: bytes, size: int) -> tuple[Any, str]:
    """(frozen TorchScript module, how it was made), or (None, why it was skipped)."""
    try:
        import onnx
    except ImportError:
        return None, f"skipped: onnx and onnx2torch are not installed; {ONNX2TORCH_INSTALL} to measure it"
    _stand_in_torchvision()
    try:
        import onnx2torch
    except ImportError:
        return None, f"skipped: onnx2torch is not installed; {ONNX2TORCH_INSTALL} to measure it"
    import torch

    module = onnx2torch.convert(onnx.load_from_string(model_bytes)).eval()
    example = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's notes on onnx2torch's shape arithmetic
        traced = torch.jit.trace(module, example, strict=False)
    frozen = torch.jit.freeze(traced.eval())
    version = getattr(onnx2torch, "__version__", None) or _dist_version("onnx2torch")
    return frozen, f"onnx2torch {version}, traced at batch 1, frozen; torch {torch.__version__}"


def _dist_version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class TorchSession:
    """ONNX Runtime's session interface over a TorchScript module, so that NanoDet's own
    letterbox and decoding run unchanged around either runtime."""

    def __init__(self, module: Any, like: Any) -> None:
        self.module = module
        self._inputs, self._outputs = like.get_inputs(), like.get_outputs()

    def get_inputs(self) -> Any:
        return self._inputs

    def get_outputs(self) -> Any:
        return self._outputs

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        (tensor,) = feeds.values()
        with torch.inference_mode():
            outputs = self.module(torch.from_numpy(tensor))
        return [output.numpy() for output in outputs]


# --- Timing -----------------------------------------------------------------------------------------

class Timer:
    """Wall time per call and the process's CPU time, summed over blocks of calls."""

    def __init__(self, frames_per_call: int) -> None:
        self.frames_per_call = frames_per_call
        self.walls: list[float] = []
        self.cpu = 0.0

    def block(self, call: Callable[[int], Any], calls: int, start: int = 0) -> None:
        cpu0 = time.process_time()
        for i in range(calls):
            t0 = time.perf_counter()
            call(start + i)
            self.walls.append(time.perf_counter() - t0)
        self.cpu += time.process_time() - cpu0

    def figures(self, prefix: str) -> dict[str, float]:
        frames = len(self.walls) * self.frames_per_call
        ms = 1000 * percentile(self.walls, 50) / self.frames_per_call
        cpu_ms = 1000 * self.cpu / frames if frames else math.nan
        return {f"{prefix}_ms": round(ms, 2), f"{prefix}_p95_ms": round(1000 * percentile(self.walls, 95)
                                                                         / self.frames_per_call, 2),
                f"{prefix}_fps": round(1000 / ms, 1), f"{prefix}_cpu_ms": round(cpu_ms, 2),
                f"{prefix}_fps_per_core": round(1000 / cpu_ms, 1), f"{prefix}_frames": frames}


def interleaved(runs: dict[str, tuple[Callable[[int], Any], int]], *, rounds: int, calls: int,
                warmup: int = 2) -> dict[str, Timer]:
    """Time each named call in turn, `rounds` times `calls` calls, after `warmup` untimed calls."""
    timers = {name: Timer(frames) for name, (_, frames) in runs.items()}
    for call, _ in runs.values():
        for i in range(warmup):
            call(i)
    for r in range(rounds):
        for name, (call, _) in runs.items():
            timers[name].block(call, calls, start=r * calls)
    return timers


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# --- The measurements -------------------------------------------------------------------------------

def measure_person_model(frames: list[np.ndarray], quick: bool) -> dict[str, Any]:
    from detection.detectors.person.detector import PERSON_MODEL
    from detection.detectors.person.modelfiles import model_file, onnx_session
    from detection.detectors.person.nanodet import NanoDet

    out: dict[str, Any] = {}
    model = model_file(PERSON_MODEL)
    probe = NanoDet(onnx_session(model, threads=1))
    module, how = torchscript_nanodet(model.data, probe.size)
    out["torch"] = how
    try:
        import torch

        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process
    rounds, calls16 = (2, 1) if quick else (4, 2)
    calls1 = 8 if quick else 12
    batch = [frames[i % len(frames)] for i in range(16)]
    tensor = np.ascontiguousarray(np.stack([probe._letterbox(f)[0] for f in batch]).transpose(0, 3, 1, 2))
    for threads in THREADS:
        ort = NanoDet(onnx_session(model, threads=threads))
        detectors: dict[str, NanoDet] = {"ort": ort}
        if module is not None:
            set_torch_threads(threads)
            detectors["torch"] = NanoDet(TorchSession(module, ort.session))
        ort_spin = None
        if threads > 1:
            ort_spin = NanoDet(_session_spinning(model.data, threads))
        for size in BATCHES:
            named = {**detectors, **({"ort_spin": ort_spin} if ort_spin is not None else {})}
            calls, warmup = (calls1, 2) if size == 1 else (calls16, 1)
            timers = interleaved({name: (detect_call(det, frames, batch, size), size) for name, det in named.items()},
                                 rounds=rounds, calls=calls, warmup=warmup)
            for name, timer in timers.items():
                out.update(timer.figures(f"{name}_b{size}_t{threads}"))
            # The model call alone (no letterbox, no decoding), on the same batch.
            timers = interleaved({name: (model_call(det, tensor[:size]), size) for name, det in detectors.items()},
                                 rounds=rounds, calls=calls, warmup=0)
            for name, timer in timers.items():
                out[f"{name}_b{size}_t{threads}_model_ms"] = timer.figures("m")["m_ms"]
        if module is not None and threads == THREADS[0]:
            out.update(outputs_equal(ort, detectors["torch"], tensor, batch))
    return out


def detect_call(detector: Any, frames: list[np.ndarray], batch: list[np.ndarray], size: int) -> Callable[[int], Any]:
    """Call i: one frame after another at batch 1, else the first `size` frames of the batch."""
    if size == 1:
        return lambda i: detector.detect([frames[i % len(frames)]])
    return lambda i: detector.detect(batch[:size])


def model_call(detector: Any, tensor: np.ndarray) -> Callable[[int], Any]:
    return lambda i: detector.session.run(None, {detector.input_name: tensor})


def _session_spinning(data: bytes, threads: int) -> Any:
    """As modelfiles.onnx_session, but with ONNX Runtime's default: pool threads spin between runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def outputs_equal(ort: Any, torch_det: Any, tensor: np.ndarray, batch: list[np.ndarray]) -> dict[str, Any]:
    """The largest absolute difference between the runtimes' outputs and decoded boxes, batch 16."""
    a = ort.session.run(None, {ort.input_name: tensor})
    b = torch_det.session.run(None, {torch_det.input_name: tensor})
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
    magnitude = max(float(np.abs(x).max()) for x in a)
    people_a, people_b = ort.detect(batch), torch_det.detect(batch)
    same_count = all(len(p) == len(q) for p, q in zip(people_a, people_b, strict=True))
    box_diff = max((abs(u - v) for p, q in zip(people_a, people_b, strict=True) for s, t in zip(p, q, strict=False)
                    for u, v in zip((*s.box, s.score), (*t.box, t.score), strict=True)), default=0.0)
    return {"outputs_max_abs_diff": float(f"{diff:.3g}"), "outputs_max_abs_value": round(magnitude, 2),
            "people_same_count": same_count, "people_found": sum(len(p) for p in people_a),
            "boxes_max_abs_diff": float(f"{box_diff:.3g}")}


def measure_pose(frames: list[np.ndarray], quick: bool) -> dict[str, Any]:
    from detection.detectors.person.detector import PERSON_MODEL, POSE_MODELS
    from detection.detectors.person.modelfiles import model_file, onnx_session
    from detection.detectors.person.nanodet import NanoDet
    from detection.detectors.person.pose import BlazePose

    finder = NanoDet(onnx_session(model_file(PERSON_MODEL), threads=2))
    people = [(image, found[0].box) for image, found in zip(frames, finder.detect(frames), strict=True) if found]
    out: dict[str, Any] = {"pose_people": len(people)}
    rounds, calls = (2, 8) if quick else (4, 16)
    for threads in THREADS:
        runs: dict[str, tuple[Callable[[int], Any], int]] = {}
        for kind, file in POSE_MODELS.items():
            pose = BlazePose(onnx_session(model_file(file), threads=threads))
            runs[kind] = (pose_call(pose, people), 1)
        for kind, timer in interleaved(runs, rounds=rounds, calls=calls).items():
            out.update(timer.figures(f"pose_{kind}_t{threads}"))
    return out


def pose_call(pose: Any, people: list[tuple[np.ndarray, Any]]) -> Callable[[int], Any]:
    """Call i: the keypoints of person i (one person box on its frame)."""
    return lambda i: pose.keypoints(people[i % len(people)][0], [people[i % len(people)][1]])


def synthetic_people(n: int, steps: int, seed: int = 1) -> list[list[Any]]:
    """n people on a grid, each walking at its own steady velocity with a little jitter, per frame."""
    from detection.tracking.tracker import PersonBox

    rng = random.Random(seed)
    w, h = 0.07, 0.22
    people = []
    for k in range(n):
        x, y = 0.05 + 0.18 * (k % 5), 0.05 + 0.24 * (k // 5)
        people.append([x, y, rng.uniform(-0.05, 0.05), rng.uniform(-0.02, 0.02)])
    frames = []
    for _ in range(steps):
        boxes = []
        for person in people:
            person[0] += person[2] / SAMPLE_FPS
            person[1] += person[3] / SAMPLE_FPS
            jx, jy = rng.uniform(-0.002, 0.002), rng.uniform(-0.002, 0.002)
            boxes.append(PersonBox((person[0] + jx, person[1] + jy, person[0] + w + jx, person[1] + h + jy),
                                   rng.uniform(0.55, 0.8)))
        frames.append(boxes)
    return frames


def measure_tracker(quick: bool) -> dict[str, Any]:
    from detection.tracking.tracker import Tracker

    steps = 60 if quick else 200
    out: dict[str, Any] = {}
    for n in TRACKER_PEOPLE:
        frames = synthetic_people(n, steps + 10)
        tracker = Tracker(max_age=2.0, new_track_score=0.4)
        times = []
        for i, boxes in enumerate(frames):
            t0 = time.perf_counter()
            tracker.update(100.0 + i / SAMPLE_FPS, boxes)
            if i >= 10:
                times.append(time.perf_counter() - t0)
        out[f"tracker_{n}_ms"] = round(1000 * percentile(times, 50), 3)
        out[f"tracker_{n}_p95_ms"] = round(1000 * percentile(times, 95), 3)
        out[f"tracker_{n}_tracks"] = len(tracker.tracks)  # n when every person kept one id
    return out


def measure_gate(frames: list[np.ndarray], quick: bool) -> dict[str, Any]:
    from detection.detectors.person.gate import MotionGate

    gate = MotionGate()
    calls = 100 if quick else 400
    times, moved = [], 0
    for i in range(calls + 5):
        t0 = time.perf_counter()
        moved += gate.moved(0, frames[i % len(frames)])
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return {"gate_ms": round(1000 * percentile(times, 50), 3), "gate_p95_ms": round(1000 * percentile(times, 95), 3)}


def measure_detector(quick: bool) -> dict[str, Any]:
    """PersonDetector.detect on the walking shopper sampled at 5 fps: 1 camera, then 16 a batch; as
    shipped, and with both ONNX Runtime sessions spin-waiting between runs (ONNX Runtime's default)."""
    from bench.person_capacity import WALK_PERIOD, demo_rules
    from detection.capture.stream import SampledFrame
    from detection.detectors.person.detector import PERSON_MODEL, POSE_MODELS
    from detection.detectors.person.modelfiles import model_file
    from detection.detectors.person.nanodet import NanoDet
    from detection.detectors.person.pose import BlazePose
    from detection.detectors.registry import create_detector

    # Two walks across the floor and back: the sequence loops without a jump.
    sequence = real_frames(int(2 * WALK_PERIOD * SAMPLE_FPS), 1 / SAMPLE_FPS)
    warmup = 2
    out: dict[str, Any] = {}
    for size in BATCHES:
        for name in ("detector", "detector_spin"):
            detector: Any = create_detector("person", input_size=PERSON_INPUT, threads=THREADS[0])
            if name == "detector_spin":
                threshold = detector.people_model.score_threshold
                detector.people_model = NanoDet(_session_spinning(model_file(PERSON_MODEL).data, THREADS[0]),
                                                score_threshold=threshold)
                detector.pose_model = BlazePose(_session_spinning(model_file(POSE_MODELS["full"]).data,
                                                                          THREADS[0]))
            rules = {c: demo_rules(c) for c in range(size)}
            steps = (40 if size == 1 else 4) if quick else (80 if size == 1 else 8)
            times = []
            cpu = 0.0
            for step in range(warmup + steps):
                batch = [SampledFrame(camera_id=c, image=sequence[(step + 3 * c) % len(sequence)],
                                      captured_at=1000.0 + step / SAMPLE_FPS, source_width=1280, source_height=720)
                         for c in range(size)]
                t0, cpu0 = time.perf_counter(), time.process_time()
                detector.detect(batch, rules)
                if step >= warmup:
                    times.append(time.perf_counter() - t0)
                    cpu += time.process_time() - cpu0
            stats = detector.stats
            key = f"{name}_b{size}"
            out[f"{key}_ms"] = round(1000 * statistics.median(times) / size, 2)
            out[f"{key}_mean_ms"] = round(1000 * statistics.fmean(times) / size, 2)
            out[f"{key}_p95_ms"] = round(1000 * percentile(times, 95) / size, 2)
            out[f"{key}_cpu_ms"] = round(1000 * cpu / (steps * size), 2)
            out[f"{key}_model_frame_ratio"] = round(stats.model_frames / stats.frames, 3)
            out[f"{key}_pose_runs_per_frame"] = round(stats.pose_runs / stats.frames, 3)
            detector.close()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    import onnxruntime  # type: ignore[import-untyped]

    frames = real_frames(FRAMES, 0.5)
    results: dict[str, Any] = {"frames": len(frames), "frame_size": f"{PERSON_INPUT[0]}x{PERSON_INPUT[1]}",
                               "onnxruntime": onnxruntime.__version__}
    results.update(measure_person_model(frames, quick))
    results.update(measure_pose(frames, quick))
    results.update(measure_tracker(quick))
    results.update(measure_gate(frames, quick))
    results.update(measure_detector(quick))
    return results


# --- The table --------------------------------------------------------------------------------------

def _runtime_text(r: dict[str, Any], name: str, size: int) -> str:
    two, one = f"{name}_b{size}_t2", f"{name}_b{size}_t1"
    if f"{two}_ms" not in r:
        return ""
    text = (f"{r[f'{two}_ms']:.1f} ms/frame = {r[f'{two}_fps']:.0f} fps at 2 threads "
            f"({r[f'{two}_fps_per_core']:.0f} frames per CPU-second; model call alone {r[f'{two}_model_ms']:.1f} ms)")
    if f"{one}_ms" in r:
        text += f"; 1 thread: {r[f'{one}_ms']:.1f} ms/frame = {r[f'{one}_fps_per_core']:.0f} fps per core"
    return text


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    r = results
    out = []
    torch_ok = "torch_b1_t2_ms" in r
    for size in BATCHES:
        if f"ort_b{size}_t2_ms" not in r:
            continue
        ratio = r[f"torch_b{size}_t2_ms"] / r[f"ort_b{size}_t2_ms"] if torch_ok else math.nan
        nospin = (f"; with ONNX Runtime's spin-wait (its default): {r[f'ort_spin_b{size}_t2_ms']:.1f} ms/frame, "
                  f"{r[f'ort_spin_b{size}_t2_fps_per_core']:.0f} frames per CPU-second"
                  if f"ort_spin_b{size}_t2_ms" in r else "")
        out.append({
            "figure": "7p",
            "name": f"Person model NanoDet 416x416 (real 960x540 frames letterboxed; letterbox + model + decode), "
                    f"batch {size}, p50",
            "measured": f"ONNX Runtime {r.get('onnxruntime', '')}: {_runtime_text(r, 'ort', size)}{nospin}",
            "baseline": f"PyTorch TorchScript ({r.get('torch', '')}): {_runtime_text(r, 'torch', size)}" if torch_ok
            else str(r.get("torch", "PyTorch: not measured")),
            "ratio": f"{ratio:.1f}x faster" if math.isfinite(ratio) else "n/a",
            "goal": "none", "met": None,
        })
    if "outputs_max_abs_diff" in r:
        out.append({
            "figure": "7p", "name": "Person model outputs, ONNX Runtime vs PyTorch (same batch of 16 frames)",
            "measured": f"max abs difference {r['outputs_max_abs_diff']:.2g} over six output maps (values up to "
                        f"{r['outputs_max_abs_value']:g}); decoded people: same count "
                        f"{'yes' if r['people_same_count'] else 'NO'} ({r['people_found']} found), boxes and scores "
                        f"within {r['boxes_max_abs_diff']:.2g}",
            "baseline": "", "ratio": "", "goal": "equal to float rounding", "met": None,
        })
    if "pose_full_t2_ms" in r:
        out.append({
            "figure": "7p", "name": f"Pose per person (BlazePose 256x256 on a crop of the person box, "
                                    f"{r['pose_people']} people), p50",
            "measured": f"full {r['pose_full_t2_ms']:.1f} ms at 2 threads ({r['pose_full_t2_fps_per_core']:.0f} per "
                        f"CPU-second); 1 thread {r['pose_full_t1_ms']:.1f} ms",
            "baseline": f"lite {r['pose_lite_t2_ms']:.1f} ms at 2 threads ({r['pose_lite_t2_fps_per_core']:.0f} per "
                        f"CPU-second); 1 thread {r['pose_lite_t1_ms']:.1f} ms",
            "ratio": f"lite {r['pose_full_t2_ms'] / r['pose_lite_t2_ms']:.1f}x faster", "goal": "none", "met": None,
        })
    if "tracker_1_ms" in r:
        out.append({
            "figure": "7p", "name": "Tracker per frame (synthetic people at 5 fps), p50 / p95",
            "measured": "; ".join(f"{n} {'person' if n == 1 else 'people'} {r[f'tracker_{n}_ms']:.3f} / "
                                  f"{r[f'tracker_{n}_p95_ms']:.3f} ms ({r[f'tracker_{n}_tracks']} tracks)"
                                  for n in TRACKER_PEOPLE),
            "baseline": f"motion gate {r.get('gate_ms', math.nan):.3f} / {r.get('gate_p95_ms', math.nan):.3f} ms per "
                        "960x540 frame",
            "ratio": "", "goal": "none", "met": None,
        })
    if "detector_b1_ms" in r:
        out.append({
            "figure": "7p", "name": "Whole person detector per frame (gate, NanoDet, tracker, pose at the shelf, "
                                    "rules; ONNX Runtime, 2 threads; the shopper walking, 5 fps), p50 / mean / p95",
            "measured": "; ".join(f"batch {s}: {r[f'detector_b{s}_ms']:.1f} / {r.get(f'detector_b{s}_mean_ms', math.nan):.1f}"
                                  f" / {r.get(f'detector_b{s}_p95_ms', math.nan):.1f} ms per frame "
                                  f"({r[f'detector_b{s}_cpu_ms']:.0f} CPU-ms; model on "
                                  f"{r[f'detector_b{s}_model_frame_ratio']:.0%} of frames, pose "
                                  f"{r[f'detector_b{s}_pose_runs_per_frame']:.2f} per frame)" for s in BATCHES),
            "baseline": "with ONNX Runtime's spin-wait (its default) (both sessions): " + "; ".join(
                f"batch {s}: {r[f'detector_spin_b{s}_ms']:.1f} / {r[f'detector_spin_b{s}_mean_ms']:.1f} / "
                f"{r[f'detector_spin_b{s}_p95_ms']:.1f} ms per frame ({r[f'detector_spin_b{s}_cpu_ms']:.0f} CPU-ms)"
                for s in BATCHES) if "detector_spin_b1_ms" in r else "",
            "ratio": (f"spin-wait costs {r['detector_spin_b1_cpu_ms'] / r['detector_b1_cpu_ms']:.1f}x the CPU per frame "
                      "at batch 1") if "detector_spin_b1_cpu_ms" in r else "",
            "goal": "none", "met": None,
        })
    return out


def main() -> None:
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))


if __name__ == "__main__":
    main()
