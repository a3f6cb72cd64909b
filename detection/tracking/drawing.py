"""Drawing a tracked person on a BGR frame: their box and skeleton. Used by the alert thumbnail
(detection.recording.thumbnail) and the annotated copy of analyze_video (detection.replay), so both show a
person the same way."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detection.tracking.tracks import KEYPOINT_MIN_SCORE, SKELETON, Box, Keypoint

BOX_COLOUR = (0, 255, 255)  # BGR yellow
BONE_COLOUR = (255, 0, 255)  # BGR magenta


def draw_person(image: np.ndarray, box: Box | None, keypoints: Sequence[Keypoint] | None, *, box_thickness: int,
                bone_thickness: int) -> None:
    """Draw in place; bones touching a keypoint less certain than KEYPOINT_MIN_SCORE are left out."""
    height, width = image.shape[:2]

    def px(x: float, y: float) -> tuple[int, int]:
        return round(x * width), round(y * height)

    if box is not None:
        cv2.rectangle(image, px(box[0], box[1]), px(box[2], box[3]), BOX_COLOUR, box_thickness)
    if keypoints is not None:
        for a, b in SKELETON:
            if min(keypoints[a][2], keypoints[b][2]) >= KEYPOINT_MIN_SCORE:
                cv2.line(image, px(*keypoints[a][:2]), px(*keypoints[b][:2]), BONE_COLOUR, bone_thickness)
