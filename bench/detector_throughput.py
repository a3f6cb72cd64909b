"""Figure 7: detector time per batch on CPU, for batches of 1, 4 and 16 cameras, p50 and p95.

The frames are real: the 720p bench video decoded with PyAV and sampled at 5 fps, downscaled to
640x360 BGR the way the capture stage does. Each camera of a batch starts at a different frame, and
the batch goes through detect_batch, as in the inference loop. Two detectors:

  motion       the built-in baseline (background subtraction at 320x180), two zones per camera
  torchscript  the TorchScript backend with a frame classifier built here (no weights can be
               downloaded): five stride-2 conv + batch-norm + ReLU layers, global pooling and a linear
               head at 224x224, random weights, softmax over [normal, concealment], at the
               deployment's default of 2 torch threads

    .venv/bin/python -m bench --only detector_throughput
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import torch

from bench.common import bench_video, percentile
from detection.capture.stream import SampledFrame
from detection.detectors.base import Detector, detect_batch
from detection.detectors.motion import MotionDetector
from detection.detectors.torchscript import METADATA_NAME, TorchScriptDetector
from detection.inference.events import CameraRules, ZoneRule

BATCHES = (1, 4, 16)
FRAME_SIZE = (640, 360)
SAMPLE_FPS = 5
INPUT = 224
CHANNELS = (24, 48, 96, 192, 384)
TORCH_THREADS = 2  # the TORCH_THREADS default
T0 = 1_700_000_000.0


def sampled_images(count: int) -> list[Any]:
    """`count` BGR frames of the 720p video, one every 1/SAMPLE_FPS s, at FRAME_SIZE."""
    images = []
    with av.open(str(bench_video("720p"))) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index % (25 // SAMPLE_FPS) == 0:
                images.append(frame.to_ndarray(width=FRAME_SIZE[0], height=FRAME_SIZE[1], format="bgr24",
                                               interpolation="AREA"))
                if len(images) == count:
                    break
    return images


def classifier() -> tuple[torch.nn.Module, float]:
    """The frame classifier and its multiply-accumulates per 224x224 frame, in GMAC."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    macs, size, previous = 0, INPUT, 3
    for channels in CHANNELS:
        size //= 2
        layers += [torch.nn.Conv2d(previous, channels, 3, stride=2, padding=1, bias=False),
                   torch.nn.BatchNorm2d(channels), torch.nn.ReLU(inplace=True)]
        macs += size * size * channels * previous * 9
        previous = channels
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(previous, 2)]
    macs += previous * 2
    return torch.nn.Sequential(*layers).eval(), macs / 1e9


def save_classifier(path: Path) -> float:
    model, gmac = classifier()
    metadata = {"input_size": [INPUT, INPUT], "frames": 1, "channel_order": "rgb", "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225], "class_names": ["normal", "concealment"], "ignore": ["normal"],
                "activation": "softmax"}
    torch.jit.save(torch.jit.script(model), str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
    return gmac


def rules_for(camera_id: int) -> CameraRules:
    shelf = ZoneRule(id=camera_id * 10 + 1, name="shelf", polygon=((0.05, 0.1), (0.5, 0.1), (0.5, 0.6), (0.05, 0.6)))
    exit_ = ZoneRule(id=camera_id * 10 + 2, name="exit", polygon=((0.6, 0.4), (0.95, 0.4), (0.95, 0.95), (0.6, 0.95)))
    return CameraRules(camera_id=camera_id, name=f"camera {camera_id}", zones=(shelf, exit_))


def time_batches(detector: Detector, images: list[Any], cameras: int, *, warmup: int, iterations: int) -> list[float]:
    context = {c: rules_for(c) for c in range(cameras)}
    times = []
    for step in range(warmup + iterations):
        batch = [SampledFrame(camera_id=c, image=images[(step + 7 * c) % len(images)],
                              captured_at=T0 + step / SAMPLE_FPS, source_width=1280, source_height=720)
                 for c in range(cameras)]
        started = time.perf_counter()
        detect_batch(detector, batch, context)
        if step >= warmup:
            times.append(time.perf_counter() - started)
    return times


def run(quick: bool = False) -> dict[str, Any]:
    images = sampled_images(50)
    motion_iterations, torch_iterations = (40, 12) if quick else (200, 60)
    results: dict[str, Any] = {
        "gpu": "not available on this machine" if not torch.cuda.is_available()
        else "available, not measured: the torchscript detector runs on CPU",
        "torch_threads": TORCH_THREADS,
    }
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        results["torchscript_gmac_per_frame"] = round(save_classifier(Path(tmp) / "classifier.pt"), 3)
        for name in ("motion", "torchscript"):
            for cameras in BATCHES:
                if name == "motion":
                    detector: Detector = MotionDetector()
                    iterations = motion_iterations
                else:
                    detector = TorchScriptDetector(model_path=Path(tmp) / "classifier.pt", threads=TORCH_THREADS)
                    iterations = torch_iterations
                times = time_batches(detector, images, cameras, warmup=5, iterations=iterations)
                detector.close()
                results[f"{name}_b{cameras}_p50_ms"] = round(percentile(times, 50) * 1000, 2)
                results[f"{name}_b{cameras}_p95_ms"] = round(percentile(times, 95) * 1000, 2)
                results[f"{name}_b{cameras}_iterations"] = iterations
    return results


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for cameras in BATCHES:
        ts, motion = f"torchscript_b{cameras}", f"motion_b{cameras}"
        if f"{ts}_p50_ms" not in results or f"{motion}_p50_ms" not in results:
            continue
        ts_p50, motion_p50 = results[f"{ts}_p50_ms"], results[f"{motion}_p50_ms"]
        out.append({
            "figure": "7",
            "name": f"Detector time per batch of {cameras} camera{'s' if cameras > 1 else ''} on CPU, p50 / p95: "
                    f"TorchScript CNN 224x224 ({results['torchscript_gmac_per_frame']:.2f} GMAC/frame, "
                    f"{results['torch_threads']} threads) vs motion baseline; GPU: {results['gpu']}",
            "measured": f"{ts_p50:.1f} / {results[f'{ts}_p95_ms']:.1f} ms ({ts_p50 / cameras:.1f} ms per camera)",
            "baseline": f"{motion_p50:.1f} / {results[f'{motion}_p95_ms']:.1f} ms ({motion_p50 / cameras:.1f} ms "
                        "per camera, motion)",
            "ratio": f"{ts_p50 / motion_p50:.1f}x the motion time",
            "goal": "none",
            "met": None,
        })
    return out
