"""Synthetic H.264 video with coloured boxes at known times, sampled like the capture stage does,
and tiny TorchScript models built by the tests (no weights are downloaded anywhere).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from cameras.demo import scene
from detection.capture.stream import SampledFrame

VIDEO_FPS = 25
T0 = 1_700_000_000.0  # the wall-clock time of the first frame: a fixed epoch keeps tests deterministic
RED = (0, 0, 230)  # BGR


@dataclass(frozen=True)
class Box:
    """A filled rectangle, visible for start <= t < end seconds; position and size are fractions of the
    picture, (x, y) the top-left corner at `start`, moving by (dx, dy) per second."""

    start: float
    end: float
    x: float
    y: float
    w: float
    h: float
    dx: float = 0.0
    dy: float = 0.0
    color: tuple[int, int, int] = RED

    def at(self, t: float) -> tuple[float, float, float, float] | None:
        if not self.start <= t < self.end:
            return None
        x, y = self.x + self.dx * (t - self.start), self.y + self.dy * (t - self.start)
        return (x, y, x + self.w, y + self.h)


def background(size: tuple[int, int]) -> np.ndarray:
    """A still 'shop floor': a grey gradient with a few shelves, textured enough to be a real test."""
    width, height = size
    ramp = np.linspace(70, 130, width, dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    for i, shade in enumerate((60, 150, 95)):
        x = int(width * (0.05 + 0.32 * i))
        cv2.rectangle(image, (x, int(height * 0.08)), (x + int(width * 0.22), int(height * 0.3)), (shade, shade, shade + 10), -1)
    return image


def render(size: tuple[int, int], t: float, boxes: Sequence[Box]) -> np.ndarray:
    width, height = size
    image = background(size)
    for box in boxes:
        rect = box.at(t)
        if rect is not None:
            x1, y1, x2, y2 = rect
            cv2.rectangle(image, (round(x1 * width), round(y1 * height)), (round(x2 * width) - 1, round(y2 * height) - 1),
                          box.color, -1)
    return image


def write_video(path: Path, *, seconds: float, boxes: Sequence[Box] = (), size: tuple[int, int] = (320, 240),
                fps: int = VIDEO_FPS) -> Path:
    """Encode an H.264 MP4 with PyAV (libx264), a keyframe every second."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(fps), "bf": "0", "preset": "ultrafast", "crf": "18"}
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(render(size, index / fps, boxes), format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def sample_video(path: Path, *, camera_id: int, fps: float, size: tuple[int, int] | None = None,
                 t0: float = T0) -> list[SampledFrame]:
    """Decode the file and keep one frame per 1/fps seconds, downscaled, stamped t0 + its time."""
    frames: list[SampledFrame] = []
    step, next_t = 1.0 / fps, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.pts * frame.time_base)
            if t + 1e-6 < next_t:
                continue
            next_t += step
            image = frame.to_ndarray(format="bgr24")
            if size is not None and (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            frames.append(SampledFrame(camera_id=camera_id, image=image, captured_at=t0 + t,
                                       source_width=frame.width, source_height=frame.height))
    return frames


# --- Tiny TorchScript models ------------------------------------------------------------------

def _torch() -> Any:
    import torch

    return torch


def red_fraction_module(*, mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                        full: float = 0.05, frames: int = 1, fault: str = "") -> Any:
    """A classifier of 'a red object': score = red fraction of the picture / `full`, clipped to 1.

    It undoes the normalization named in its metadata, so a pipeline that normalizes wrongly scores
    wrongly. Output columns: [normal, red_object]. A clip model (frames > 1, NCTHW) scores the least
    red of its T frames, so it fires only when the object is there in all of them. `fault` makes it
    misbehave on an all-white input: "raise", "nan" or "shape".
    """
    torch = _torch()

    class RedFraction(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))
            self.full = full
            self.frames = frames
            self.fault = fault

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            if self.frames > 1:
                x = x.permute(0, 2, 1, 3, 4).reshape(n * self.frames, 3, x.shape[3], x.shape[4])
            rgb = x * self.std + self.mean
            red = ((rgb[:, 0] > 0.6) & (rgb[:, 1] < 0.35) & (rgb[:, 2] < 0.35)).float().mean(dim=(1, 2))
            white = rgb.flatten(1).mean(dim=1) > 0.95
            if self.frames > 1:
                red = red.view(n, self.frames).min(dim=1).values
                white = white.view(n, self.frames).any(dim=1)
            score = torch.clamp(red / self.full, 0.0, 1.0)
            if self.fault == "raise" and bool(white.any()):
                raise RuntimeError("the model cannot handle a white frame")
            if self.fault == "nan":
                score = torch.where(white, torch.full_like(score, float("nan")), score)
            if self.fault == "shape" and bool(white.any()):
                return torch.zeros(n, 7)
            return torch.stack([1.0 - score, score], dim=1)

    return RedFraction()


def red_metadata(*, size: tuple[int, int] = (64, 48), frames: int = 1, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0), **extra: Any) -> dict[str, Any]:
    meta = {"input_size": list(size), "frames": frames, "mean": list(mean), "std": list(std),
            "class_names": ["normal", "red_object"], "ignore": ["normal"], "activation": "none"}
    meta.update(extra)
    return meta


def save_model(module: Any, path: Path, metadata: dict[str, Any] | None, *, script: bool = True) -> Path:
    """Script and save a module, with its metadata embedded as shoplift.json (None: no metadata)."""
    torch = _torch()
    compiled = torch.jit.script(module) if script else module
    extra = {"shoplift.json": json.dumps(metadata)} if metadata is not None else {}
    torch.jit.save(compiled, str(path), _extra_files=extra)
    return path


def build_red_model(path: Path, *, size: tuple[int, int] = (64, 48), frames: int = 1,
                    mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0), full: float = 0.05,
                    fault: str = "", **metadata: Any) -> Path:
    module = red_fraction_module(mean=mean, std=std, full=full, frames=frames, fault=fault)
    return save_model(module, path, red_metadata(size=size, frames=frames, mean=mean, std=std, **metadata))


def run_detection(detector: Any, rules: Any, config: Any, *streams: Sequence[Any]) -> list[Any]:
    """Drive detector + rules engine over sampled streams (one per camera, batched sample by sample),
    the way the inference loop does; returns every event phase, open events ended at the end."""
    from detection.detectors.base import detect_batch
    from detection.inference.events import RuleEngine

    engine = RuleEngine(config, rules)
    events = []
    for batch in zip(*streams, strict=True):
        detections = detect_batch(detector, batch, rules)
        for frame in batch:
            mine = [d for d in detections if d.camera_id == frame.camera_id]
            events.extend(engine.process(frame.camera_id, frame.captured_at, mine, frame.image))
    events.extend(engine.close_all())
    return events


# --- The demo camera's scene ----------------------------------------------------------------------

_demo_stills: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # size -> (background, person)


def demo_scene_frame(t: float, *, size: tuple[int, int] = (1280, 720), cycle: float = scene.CYCLE) -> np.ndarray:
    """The demo camera's picture at t seconds (BGR): the shop background with the shopper's
    photograph where cameras/demo/scene.py puts them, as bin/demo-camera streams it."""
    if size not in _demo_stills:  # decode and scale the two stills once per size
        width, height = size
        store = cv2.resize(cv2.imread(str(scene.STORE_JPG)), size, interpolation=cv2.INTER_AREA)
        person = cv2.resize(cv2.imread(str(scene.PERSON_JPG)),
                            (round(scene.PERSON_W * width), round(scene.PERSON_H * height)), interpolation=cv2.INTER_AREA)
        _demo_stills[size] = (store, person)
    store, person = _demo_stills[size]
    image = store.copy()
    xy = scene.person_xy(t, size[0], size[1], cycle)
    if xy is not None:
        x, y = xy
        ph, pw = person.shape[:2]
        x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + pw, size[0]), min(y + ph, size[1])
        if x1 < x2 and y1 < y2:
            image[y1:y2, x1:x2] = person[y1 - y:y2 - y, x1 - x:x2 - x]
    return image


def write_demo_video(path: Path, *, seconds: float, fps: int = VIDEO_FPS, size: tuple[int, int] = (1280, 720),
                     cycle: float = scene.CYCLE, start: float = 0.0) -> Path:
    """Encode the demo camera's scene as an H.264 MP4 (libx264, a keyframe every 2 s, no B-frames):
    frame i shows the scene at `start + i / fps` seconds of a demo cycle of `cycle` seconds (30 by
    default; a shorter cycle plays the whole visit faster, see cameras/demo/scene.py)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(2 * fps), "keyint_min": str(2 * fps), "sc_threshold": "0", "bf": "0",
                          "preset": "ultrafast", "crf": "23"}
        stream.codec_context.time_base = Fraction(1, fps)
        # One slice per frame. PyAV's default slice threading makes libx264 cut a 720p frame into
        # slices, which FFmpeg's RTSP client (PyAV and the ffmpeg CLI alike) receives damaged from
        # GStreamer's RTSP server, while GStreamer's own client receives them intact.
        stream.codec_context.thread_type = "FRAME"
        for index in range(round(seconds * fps)):
            image = demo_scene_frame(start + index / fps, size=size, cycle=cycle)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
