"""NanoDet (COCO, person class) in ONNX Runtime: BGR frames in, person boxes out, in batches.

Called by the person detector with the frames of every camera whose motion gate opened, as one
batch. Each frame is letterboxed to the model's square input (aspect kept, padding at the mean
colour, which normalizes to zero), so one batch can mix cameras of any size.

The head is NanoDet's GFL head: for each of strides 8, 16 and 32, a class map (80 COCO scores per
cell, person first) and a box map (per cell, four distances left/top/right/bottom, each a
softmax over 11 bins whose expectation times the stride is pixels), cells in row-major order
with centres at (i + 0.5) * stride.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from detection.tracking.tracker import PersonBox

MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # BGR
STD = np.array([57.375, 57.12, 58.395], np.float32)
REG_BINS = 11
STRIDES = (8, 16, 32)
PERSON = 0


class NanoDet:
    def __init__(self, session: Any, *, score_threshold: float = 0.4, nms_iou: float = 0.5) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        self.channels_first = shape[1] == 3
        self.size = int(shape[2] if self.channels_first else shape[1])
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self._outputs = self._output_roles(session)
        self._centres = {stride: _centres(self.size, stride) for stride in STRIDES}

    def detect(self, images: Sequence[np.ndarray]) -> list[list[PersonBox]]:
        """People in each BGR image, as normalized boxes with scores, best first."""
        if not images:
            return []
        batch, scales = zip(*(self._letterbox(image) for image in images), strict=True)
        tensor = np.stack(batch)
        if self.channels_first:
            tensor = tensor.transpose(0, 3, 1, 2)
        outputs = self._run(np.ascontiguousarray(tensor))
        return [self._decode(outputs, i, scale, image.shape) for i, (scale, image) in enumerate(zip(scales, images,
                                                                                                       strict=True))]

    def _run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self.fixed_batch is None or self.fixed_batch == len(tensor):
            return list(self.session.run(None, {self.input_name: tensor}))
        # A graph with a fixed batch of one: run the frames one by one and stack the results.
        runs = [self.session.run(None, {self.input_name: tensor[i:i + 1]}) for i in range(len(tensor))]
        return [np.concatenate([run[k] for run in runs]) for k in range(len(runs[0]))]

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        scale = self.size / max(height, width)
        resized = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_LINEAR)
        canvas = np.empty((self.size, self.size, 3), np.float32)
        canvas[:] = MEAN
        canvas[:resized.shape[0], :resized.shape[1]] = resized
        return (canvas - MEAN) / STD, scale

    def _decode(self, outputs: list[np.ndarray], index: int, scale: float,
                shape: tuple[int, ...]) -> list[PersonBox]:
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for stride in STRIDES:
            cls_idx, box_idx = self._outputs[stride]
            cls = outputs[cls_idx][index].reshape(-1, outputs[cls_idx].shape[-1])[:, PERSON]
            if cls.min() < 0.0 or cls.max() > 1.0:
                cls = 1.0 / (1.0 + np.exp(-cls))
            keep = cls >= self.score_threshold
            if not keep.any():
                continue
            reg = outputs[box_idx][index].reshape(-1, 4, REG_BINS)[keep]
            reg = np.exp(reg - reg.max(axis=2, keepdims=True))
            reg /= reg.sum(axis=2, keepdims=True)
            dist = (reg * np.arange(REG_BINS, dtype=np.float32)).sum(axis=2) * stride
            centres = self._centres[stride][keep]
            boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
            scores.append(cls[keep])
        if not boxes:
            return []
        all_boxes, all_scores = np.concatenate(boxes), np.concatenate(scores)
        height, width = shape[:2]
        found = []
        for i in _nms(all_boxes, all_scores, self.nms_iou):
            x1, y1, x2, y2 = (all_boxes[i] / scale).tolist()
            box = (min(max(x1 / width, 0.0), 1.0), min(max(y1 / height, 0.0), 1.0),
                   min(max(x2 / width, 0.0), 1.0), min(max(y2 / height, 0.0), 1.0))
            if box[2] > box[0] and box[3] > box[1]:
                found.append(PersonBox(box, float(all_scores[i])))
        return found

    def _output_roles(self, session: Any) -> dict[int, tuple[int, int]]:
        """Which output is the class map and which the box map of each stride, told by their shapes."""
        roles: dict[int, dict[str, int]] = {}
        for i, out in enumerate(session.get_outputs()):
            dims = [d for d in out.shape if isinstance(d, int)]
            last, cells = dims[-1], int(np.prod(dims[1:-1])) if len(dims) > 2 else dims[0]
            stride = next((s for s in STRIDES if (self.size // s) ** 2 == cells), None)
            if stride is None:
                raise ValueError(f"NanoDet output {out.name} has shape {out.shape}: no stride has {cells} cells")
            roles.setdefault(stride, {})["box" if last == 4 * REG_BINS else "cls"] = i
        try:
            return {s: (roles[s]["cls"], roles[s]["box"]) for s in STRIDES}
        except KeyError:
            raise ValueError(f"NanoDet outputs {[o.shape for o in session.get_outputs()]} are not the GFL head's "
                             "six maps") from None


def _centres(size: int, stride: int) -> np.ndarray:
    cells = size // stride
    ys, xs = np.mgrid[0:cells, 0:cells]
    return (np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32) + 0.5) * stride


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = scores.argsort()[::-1]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return keep
