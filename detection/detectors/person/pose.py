"""BlazePose landmarks in ONNX Runtime, run per person box (top-down): 17 body keypoints per person.

Called by the person detector only for people at a shelf zone, where the concealment rule needs
their hands. A square crop around the person's box (with a margin, as BlazePose's own pipeline
crops) is scaled to the model's 256 x 256 RGB input; of its 33 landmarks the 17 COCO body points
are kept, mapped back to the frame. Visibility comes out as a logit and goes through a sigmoid.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from detection.tracking.tracks import Box, Keypoint

# BlazePose landmark index of each COCO keypoint (detection.tracking.tracks.KEYPOINT_NAMES order).
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
LANDMARK_VALUES = 5  # x, y, z, visibility, presence
CROP_MARGIN = 1.25


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-x))  # numpy's stubs type a ufunc's result as Any
    return result


class BlazePose:
    def __init__(self, session: Any, *, min_pose_score: float = 0.5) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[1])  # NHWC
        self.min_pose_score = min_pose_score
        self._landmarks, self._flag = self._output_roles(session)

    def keypoints(self, image: np.ndarray, boxes: Sequence[Box]) -> list[tuple[Keypoint, ...] | None]:
        """17 normalized keypoints per box, or None where the model sees no pose in the crop."""
        return [self._one(image, box) for box in boxes]

    def _one(self, image: np.ndarray, box: Box) -> tuple[Keypoint, ...] | None:
        height, width = image.shape[:2]
        cx, cy = (box[0] + box[2]) / 2 * width, (box[1] + box[3]) / 2 * height
        side = max((box[2] - box[0]) * width, (box[3] - box[1]) * height) * CROP_MARGIN
        if side < 8:
            return None
        scale = self.size / side
        # One affine warp crops, scales and pads (black outside the frame) in a single pass.
        matrix = np.array([[scale, 0.0, self.size / 2 - cx * scale], [0.0, scale, self.size / 2 - cy * scale]],
                          np.float32)
        crop = cv2.warpAffine(image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        tensor = (cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)[None]
        outputs = self.session.run(None, {self.input_name: tensor})
        flag = float(np.asarray(outputs[self._flag]).ravel()[0])
        if flag < 0.0 or flag > 1.0:
            flag = float(_sigmoid(np.array([flag], np.float32))[0])
        if flag < self.min_pose_score:
            return None
        values = np.asarray(outputs[self._landmarks]).reshape(-1, LANDMARK_VALUES)[list(BLAZEPOSE_TO_COCO)]
        xs = (values[:, 0] - self.size / 2) / scale + cx
        ys = (values[:, 1] - self.size / 2) / scale + cy
        confidence = _sigmoid(values[:, 3]) * _sigmoid(values[:, 4])
        return tuple((float(x / width), float(y / height), float(c))
                     for x, y, c in zip(xs, ys, confidence, strict=True))

    @staticmethod
    def _output_roles(session: Any) -> tuple[int, int]:
        """The landmark output (39 x 5 values) and the pose-present flag (one value), by shape."""
        landmarks = flag = None
        for i, out in enumerate(session.get_outputs()):
            size = int(np.prod([d for d in out.shape if isinstance(d, int)]))
            if size == 39 * LANDMARK_VALUES:
                landmarks = i
            elif size == 1:
                flag = i
        if landmarks is None or flag is None:
            raise ValueError(f"BlazePose outputs {[o.shape for o in session.get_outputs()]}: no 195-value landmark "
                             "output or one-value pose flag")
        return landmarks, flag
