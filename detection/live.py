"""The live camera wall's picture source: each camera's latest detection frame, with the people the
detector tracks drawn on it, as JPEG in Redis about once a second (cameras.live holds the format).

The supervisor owns one `LivePublisher` (started after inference, stopped right after it). The
inference loop hands it every frame it has just processed, with that camera's tracked people
(`offer`: a dict write under a lock, nothing else), so capture and inference never wait on it.
Its own thread wakes every LIVE_FRAME_SECONDS, takes the newest frame of each camera, scales it
to at most LIVE_FRAME_WIDTH wide, draws the people's boxes and skeletons (detection.tracking.
drawing, as on alert thumbnails), encodes JPEG and writes every camera in one Redis round trip,
each key with an expiry of a few seconds. Zones are not drawn here: the page draws them from the
zone polygons, so they stay sharp at any tile size and cost no CPU per frame.

When Redis is down the round's frames are dropped and counted, the outage is logged once (and
its end, with the count), and the next round tries again; nothing queues up meanwhile.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import redis

from cameras.live import LiveFrame, live_client, live_frames_store
from detection.capture.stream import SampledFrame
from detection.threads import BackgroundThread
from detection.tracking.drawing import draw_person
from detection.tracking.tracks import Box, Keypoint
from shoplift.masking import mask_text, mask_url

logger = logging.getLogger(__name__)

JPEG_QUALITY = 70
TTL_FRAMES = 5  # a key outlives this many missed rounds, then the tile says "no live picture"
MIN_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class LivePerson:
    """A tracked person as drawn on the live picture, copied out of the tracker by the inference thread."""

    box: Box
    keypoints: tuple[Keypoint, ...] | None = None


def live_people(detector: Any, camera_id: int) -> tuple[LivePerson, ...]:
    """The people a detector tracks on this camera's latest frame; () for detectors that track none."""
    people = getattr(detector, "people", None)  # only detectors that track people have them (person)
    if not callable(people):
        return ()
    return tuple(LivePerson(tuple(track.box), track.keypoints) for track in people(camera_id))


def live_jpeg(image: np.ndarray, people: Sequence[LivePerson], *, width: int, quality: int = JPEG_QUALITY) -> bytes:
    """The frame at most `width` pixels wide (never enlarged), people drawn, as JPEG."""
    height, source_width = image.shape[:2]
    if source_width > width:
        out_height = max(1, round(height * width / source_width))
        picture = cv2.resize(image, (width, out_height), interpolation=cv2.INTER_AREA)
    else:
        picture = np.ascontiguousarray(image).copy()  # the frame is shared: the rules may keep it for a thumbnail
    thickness = max(2, round(picture.shape[0] / 180))
    for person in people:
        draw_person(picture, person.box, person.keypoints, box_thickness=thickness, bone_thickness=max(1, thickness - 1))
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of shape {picture.shape}")
    return bytes(encoded.tobytes())


@dataclass
class LiveStats:
    published: int = 0  # frames written to Redis
    dropped: int = 0  # frames lost because Redis did not answer
    failed: int = 0  # frames that could not be encoded
    outages: int = 0


class LivePublisher(BackgroundThread):
    thread_name = "live-frames"

    def __init__(self, *, stop: threading.Event, redis_url: str, interval: float = 1.0, width: int = 640,
                 quality: int = JPEG_QUALITY, client: redis.Redis | None = None) -> None:
        if interval <= 0:
            raise ValueError("LivePublisher needs an interval above 0 (LIVE_FRAME_SECONDS=0 means: make none)")
        self.stop = stop
        self.interval = interval
        self.width = width
        self.quality = quality
        self.ttl_seconds = max(MIN_TTL_SECONDS, TTL_FRAMES * interval)
        self.stats = LiveStats()
        self._url = redis_url
        self._client = client
        self._lock = threading.Lock()
        self._latest: dict[int, tuple[SampledFrame, tuple[LivePerson, ...]]] = {}
        self._down_since: float | None = None
        self._dropped_at_outage = 0

    # --- called by the inference thread -----------------------------------------------------------

    def offer(self, frame: SampledFrame, people: tuple[LivePerson, ...] = ()) -> None:
        """Keep this as the camera's newest frame; an older one not yet published is replaced."""
        with self._lock:
            self._latest[frame.camera_id] = (frame, people)

    # --- the publisher thread ---------------------------------------------------------------------

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval
            if next_at < time.monotonic():  # a round took longer than the interval: don't catch up
                next_at = time.monotonic() + self.interval
            try:
                self.publish_once()
            except Exception:  # loop top: log with context, the next round goes on
                logger.exception("live frames: round failed")

    def publish_once(self) -> int:
        """Encode and write the newest frame of each camera that sent one since the last round.
        Returns how many were written."""
        with self._lock:
            batch, self._latest = self._latest, {}
        frames = []
        for camera_id, (frame, people) in batch.items():
            try:
                jpeg = live_jpeg(frame.image, people, width=self.width, quality=self.quality)
            except (ValueError, cv2.error) as exc:
                self.stats.failed += 1
                logger.warning("live frames: frame not encoded camera_id=%s error=%s", camera_id, exc)
                continue
            frames.append(LiveFrame(camera_id=camera_id, jpeg=jpeg, captured_at=frame.captured_at))
        if not frames:
            return 0
        try:
            written = live_frames_store(self._redis(), frames, ttl_seconds=self.ttl_seconds)
        except redis.RedisError as exc:
            self._outage(exc)
            self.stats.dropped += len(frames)
            return 0
        self._recovered()
        self.stats.published += written
        return written

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = live_client(self._url)
        return self._client

    def _outage(self, exc: redis.RedisError) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._dropped_at_outage = self.stats.dropped
        self.stats.outages += 1
        logger.warning("live frames: Redis at %s does not answer (%s); the Cameras page shows no live pictures "
                       "until it does; retrying every %.1f s, detection goes on", mask_url(self._url),
                       mask_text(str(exc)), self.interval)

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        logger.info("live frames: Redis at %s answers again after %.0f s; frames dropped=%s", mask_url(self._url),
                    time.monotonic() - self._down_since, self.stats.dropped - self._dropped_at_outage)
        self._down_since = None
