"""The alert's snapshot: the event's trigger frame as JPEG, with the detection's box and, where the
person detector saw one, the person's skeleton drawn on it. The spooler renders it before it
raises the alert (alerts.emitter.alert_raise stores it)."""
from __future__ import annotations

import logging

import cv2
import numpy as np

from detection.inference.events import Event
from detection.tracking.drawing import draw_person

logger = logging.getLogger(__name__)

THUMBNAIL_QUALITY = 85


def thumbnail_jpeg(event: Event) -> bytes:
    """The trigger frame as JPEG with the detection drawn on it; b"" without a frame."""
    image = event.trigger_image
    if image is None:
        return b""
    image = np.ascontiguousarray(image).copy()
    thickness = max(2, round(min(image.shape[:2]) / 120))
    point = min(event.track.points, key=lambda p: abs(p.at - event.trigger_at)) if event.track else None
    keypoints = point.keypoints if point is not None and abs(point.at - event.trigger_at) < 0.5 else None
    draw_person(image, event.trigger_box, keypoints, box_thickness=thickness, bone_thickness=max(1, thickness - 1))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:
        logger.warning("thumbnail not encoded camera=%s event_type=%s shape=%s", event.camera_id, event.event_type,
                       image.shape)
        return b""
    return bytes(encoded.tobytes())
