"""A PyTorch backend: a TorchScript classifier file named in settings, with its metadata.

The metadata travels inside the file (torch.jit.save(..., _extra_files={"shoplift.json": ...}))
or beside it as <model file>.json:

    {
      "input_size": [224, 224],          # width, height the frames are resized to
      "frames": 1,                       # 1: frame classifier; T > 1: clip of the last T samples
      "layout": "NCTHW",                 # clip models only: NCTHW (default) or NTCHW
      "channel_order": "rgb",            # rgb (default) or bgr
      "mean": [0.485, 0.456, 0.406],     # per channel, applied to pixels scaled to [0, 1]
      "std": [0.229, 0.224, 0.225],
      "class_names": ["normal", "concealment"],   # one per output column; they become event types
      "ignore": ["normal"],              # classes that raise nothing
      "activation": "softmax"            # none (outputs are scores in [0, 1]), sigmoid or softmax
    }

The model takes a float batch (N, 3, H, W), or (N, 3, T, H, W) for clips, and returns (N, classes).
Everything is checked at start-up, including one trial run, so a wrong file fails before the
first camera connects instead of at the first frame.
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from detection.detectors.base import Detection, Detector, DetectorConfigError
from detection.detectors.registry import register
from detection.inference.events import CameraRules

if TYPE_CHECKING:
    from detection.capture.stream import SampledFrame

logger = logging.getLogger(__name__)

METADATA_NAME = "shoplift.json"
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ACTIVATIONS = ("none", "sigmoid", "softmax")
LAYOUTS = ("NCTHW", "NTCHW")


class ModelOutputError(ValueError):
    """The model returned something other than one row of class scores per input."""


@dataclass(frozen=True)
class ModelMetadata:
    input_size: tuple[int, int]
    frames: int
    layout: str
    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: tuple[str, ...]
    ignore: frozenset[str]
    activation: str

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(name for name in self.class_names if name not in self.ignore)

    def input_shape(self, batch: int) -> tuple[int, ...]:
        width, height = self.input_size
        if self.frames == 1:
            return (batch, 3, height, width)
        if self.layout == "NCTHW":
            return (batch, 3, self.frames, height, width)
        return (batch, self.frames, 3, height, width)

    @classmethod
    def parse(cls, raw: Any) -> ModelMetadata:
        """Validate the metadata; a ValueError says which key is wrong and what it expects."""
        if not isinstance(raw, dict):
            raise ValueError("the metadata is not a JSON object")
        size = raw.get("input_size")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 8 for v in size)):
            raise ValueError(f"input_size is {size!r}; expected [width, height] in pixels, each at least 8")
        frames = raw.get("frames", 1)
        if not (_is_int(frames) and 1 <= frames <= 256):
            raise ValueError(f"frames is {frames!r}; expected a whole number from 1 to 256")
        layout = raw.get("layout", "NCTHW")
        if layout not in LAYOUTS:
            raise ValueError(f"layout is {layout!r}; expected one of {', '.join(LAYOUTS)}")
        order = raw.get("channel_order", "rgb")
        if order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order is {order!r}; expected rgb or bgr")
        mean, std = raw.get("mean", [0.0, 0.0, 0.0]), raw.get("std", [1.0, 1.0, 1.0])
        for key, values in (("mean", mean), ("std", std)):
            if not (isinstance(values, list) and len(values) == 3 and all(_is_number(v) for v in values)):
                raise ValueError(f"{key} is {values!r}; expected three numbers, one per colour channel")
        if any(v <= 0 for v in std):
            raise ValueError(f"std is {std!r}; every value must be positive")
        names = raw.get("class_names")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ValueError(f"class_names is {names!r}; expected a non-empty list of names, one per output column")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names {names!r} repeats a name")
        ignore = raw.get("ignore", [])
        if not (isinstance(ignore, list) and all(n in names for n in ignore)):
            raise ValueError(f"ignore is {ignore!r}; expected a list of names taken from class_names")
        for name in names:
            if name not in ignore and not EVENT_TYPE_RE.match(name):
                raise ValueError(f"class name {name!r} is not an event type: use lower-case letters, digits and "
                                 "underscores, or list it under ignore")
        if len(ignore) == len(names):
            raise ValueError("every class is ignored: the model would never raise an event")
        activation = raw.get("activation", "none")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation is {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        return cls(input_size=(int(size[0]), int(size[1])), frames=int(frames), layout=layout, channel_order=order,
                   mean=_rgb(mean), std=_rgb(std),
                   class_names=tuple(names), ignore=frozenset(ignore), activation=activation)


def _rgb(values: list[Any]) -> tuple[float, float, float]:
    red, green, blue = values
    return float(red), float(green), float(blue)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_model(path: Path) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load and check a model file; every failure is a DetectorConfigError naming the path and the problem."""
    path = Path(path)
    where = f"TorchScript model {path}"
    if not path.exists():
        raise DetectorConfigError(f"{where}: the file does not exist. Check TORCHSCRIPT_MODEL_PATH.")
    if not path.is_file():
        raise DetectorConfigError(f"{where}: not a file. TORCHSCRIPT_MODEL_PATH must name the model file itself.")
    extra: dict[str, Any] = {METADATA_NAME: ""}
    try:
        model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)  # type: ignore[no-untyped-call]  # torch.jit.load has no annotations
    except (RuntimeError, ValueError, OSError) as exc:
        raise DetectorConfigError(
            f"{where}: cannot be loaded as TorchScript; the file is corrupt, truncated, or not saved with "
            f"torch.jit.save ({_first_sentence(exc)})."
        ) from None
    model.eval()
    metadata = _parse_metadata(path, extra[METADATA_NAME])
    _trial_run(model, metadata, where)
    return model, metadata


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0]


def _parse_metadata(path: Path, embedded: str | bytes) -> ModelMetadata:
    where = f"TorchScript model {path}"
    sidecar = path.with_name(path.name + ".json")
    if embedded:
        text, source = embedded.decode() if isinstance(embedded, bytes) else embedded, f"its embedded {METADATA_NAME}"
    elif sidecar.is_file():
        text, source = sidecar.read_text(encoding="utf-8"), str(sidecar)
    else:
        raise DetectorConfigError(
            f"{where}: no metadata. Save it with torch.jit.save(model, path, _extra_files={{'{METADATA_NAME}': "
            f"json.dumps(metadata)}}) or put the metadata in {sidecar}."
        )
    try:
        return ModelMetadata.parse(json.loads(text))
    except json.JSONDecodeError as exc:
        raise DetectorConfigError(f"{where}: the metadata in {source} is not valid JSON ({exc}).") from None
    except ValueError as exc:
        raise DetectorConfigError(f"{where}: the metadata in {source} is invalid: {exc}.") from None


def _trial_run(model: torch.jit.ScriptModule, metadata: ModelMetadata, where: str) -> None:
    shape = metadata.input_shape(2)
    try:
        with torch.inference_mode():
            output = model(torch.zeros(shape))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # torch.jit.Error is a RuntimeError
        # TorchScript puts the model's own message on the last line, after its traceback.
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else type(exc).__name__
        raise DetectorConfigError(
            f"{where}: does not match its metadata: it fails on an input of shape {tuple(shape)} ({reason})."
        ) from None
    expected = (shape[0], len(metadata.class_names))
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise DetectorConfigError(
            f"{where}: does not match its metadata: for an input of shape {tuple(shape)} it returns {got}, "
            f"expected {expected} (a score per class for {len(metadata.class_names)} class_names)."
        )


@register("torchscript")
class TorchScriptDetector(Detector):
    """Frame or clip classifier. Its scores are frame-level: the rules spread them over the zones."""

    def __init__(self, *, model_path: Path | str, threads: int = 1, max_gap_seconds: float = 5.0) -> None:
        if threads < 1:
            raise DetectorConfigError(f"torchscript detector: threads {threads} must be at least 1 (TORCH_THREADS).")
        torch.set_num_threads(int(threads))
        self.model_path = Path(model_path)
        self.model, self.metadata = load_model(self.model_path)
        self.event_types = self.metadata.event_types
        self.input_size = self.metadata.input_size
        self.frames_needed = self.metadata.frames
        # A clip must be consecutive samples: after a longer gap (reconnect) the history restarts.
        self.max_gap_seconds = float(max_gap_seconds)
        mean = torch.tensor(self.metadata.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.metadata.std, dtype=torch.float32).view(3, 1, 1)
        self._scale, self._shift = 1.0 / (255.0 * std), mean / std
        self._history: dict[int, deque[tuple[float, torch.Tensor]]] = {}
        logger.info("torchscript detector loaded path=%s input=%sx%s frames=%s classes=%s threads=%s",
                     self.model_path, *self.input_size, self.frames_needed, ",".join(self.metadata.class_names), threads)

    def forget(self, camera_id: int) -> None:
        self._history.pop(camera_id, None)

    def detect(self, frames: Sequence[SampledFrame], context: Mapping[int, CameraRules]) -> list[Detection]:
        ready: list[int] = []
        inputs: list[torch.Tensor] = []
        for frame in frames:
            clip = self._push(frame)
            if clip is not None:
                ready.append(frame.camera_id)
                inputs.append(clip)
        if not inputs:
            return []
        with torch.inference_mode():
            output = self.model(torch.stack(inputs))
        expected = (len(inputs), len(self.metadata.class_names))
        if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            # Raised, not skipped here: detect_batch then retries camera by camera and names the culprit.
            raise ModelOutputError(f"model {self.model_path} returned {got} for cameras {ready}, expected {expected}")
        scores = self._activate(output.float()).cpu().numpy()
        detections: list[Detection] = []
        for camera_id, row in zip(ready, scores, strict=True):
            if not np.isfinite(row).all():
                logger.warning("model output skipped path=%s camera=%s: scores %s are not finite",
                               self.model_path, camera_id, row.tolist())
                continue
            detections.extend(
                Detection(camera_id, name, float(score))
                for name, score in zip(self.metadata.class_names, row, strict=True)
                if name not in self.metadata.ignore
            )
        return detections

    def _activate(self, output: torch.Tensor) -> torch.Tensor:
        if self.metadata.activation == "sigmoid":
            return torch.sigmoid(output)
        if self.metadata.activation == "softmax":
            return torch.softmax(output, dim=1)
        return output

    def _push(self, frame: SampledFrame) -> torch.Tensor | None:
        """Add the frame to the camera's history; the model input once there are enough frames."""
        history = self._history.get(frame.camera_id)
        if history is None or (history and frame.captured_at - history[-1][0] > self.max_gap_seconds):
            history = self._history[frame.camera_id] = deque(maxlen=self.frames_needed)
        if history and frame.captured_at <= history[-1][0]:
            history.pop()  # the same sample again (a retry after a failed batch): replace, don't repeat
        history.append((frame.captured_at, self._tensor(frame.image)))
        if len(history) < self.frames_needed:
            return None
        if self.frames_needed == 1:
            return history[-1][1]
        clip = torch.stack([t for _, t in history])  # T, 3, H, W
        return clip.permute(1, 0, 2, 3) if self.metadata.layout == "NCTHW" else clip

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image H x W x 3, got shape {image.shape}")
        if (image.shape[1], image.shape[0]) != self.input_size:
            image = cv2.resize(image, self.input_size, interpolation=cv2.INTER_AREA)
        if self.metadata.channel_order == "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        return tensor * self._scale - self._shift
