"""From detections to events: zones, thresholds, smoothing, event lifecycle and clip windows.

Pure logic, no ORM and no wall clock: the camera's rules arrive as frozen dataclasses built by
detection.selectors, and time is the frames' `captured_at`. That keeps the per-frame path free
of database calls and makes every test deterministic.

Per (camera, zone, event type), an event starts when the score is at or above the threshold in
K of the last N samples, so a one-frame spike never fires. It starts at the first qualifying
sample of that window, records the window's peak, extends while samples stay high, and ends
after a quiet period without a high sample.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.conf import settings

from detection.tracking.tracks import box_foot

if TYPE_CHECKING:
    import numpy as np

    from detection.detectors.base import Box, Detection
    from detection.tracking.tracks import TrackEvidence

logger = logging.getLogger(__name__)

Point = tuple[float, float]
# The dedup and smoothing key: None as the zone means the whole frame.
EventKey = tuple[int, int | None, str]


def point_in_polygon(x: float, y: float, polygon: Sequence[Point]) -> bool:
    """Even-odd ray casting; a point exactly on an edge may fall either side, which is harmless here."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


# Zone kinds (cameras.models.ZoneKind's values; the frame loop does not import models).
SHELF, CHECKOUT, EXIT, RESTRICTED, IGNORE = "shelf", "checkout", "exit", "restricted", "ignore"


@dataclass(frozen=True)
class ZoneRule:
    id: int
    name: str
    polygon: tuple[Point, ...]
    enabled: bool = True
    threshold: float | None = None
    event_types: frozenset[str] = frozenset()  # empty: every event type
    kind: str = SHELF

    def watches(self, event_type: str) -> bool:
        """An ignore zone watches nothing: it is a mask."""
        return self.enabled and self.kind != IGNORE and (not self.event_types or event_type in self.event_types)

    def contains(self, x: float, y: float) -> bool:
        return point_in_polygon(x, y, self.polygon)


@dataclass(frozen=True)
class CameraRules:
    """What the frame loop needs to know about one camera, read once from the database."""

    camera_id: int
    name: str = ""
    zones: tuple[ZoneRule, ...] = ()
    threshold: float | None = None
    detector: str = ""
    pre_seconds: float = 2.0
    during_seconds: float = 2.0
    post_seconds: float = 2.0

    def zone(self, zone_id: int | None) -> ZoneRule | None:
        return next((z for z in self.zones if z.id == zone_id), None)

    def ignored(self, x: float, y: float) -> bool:
        """The point lies in an enabled ignore zone (a mask)."""
        return any(z.kind == IGNORE and z.enabled and z.contains(x, y) for z in self.zones)


@dataclass(frozen=True)
class RuleConfig:
    """Deployment-wide rule settings; `from_settings` reads them once, at start-up."""

    default_threshold: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=dict)  # per event type, below zone and camera
    disabled_event_types: frozenset[str] = frozenset()
    smoothing_k: int = 3
    smoothing_n: int = 5
    quiet_seconds: float = 5.0
    clip_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.smoothing_k <= self.smoothing_n:
            raise ValueError(f"smoothing needs 1 <= K <= N; got K={self.smoothing_k}, N={self.smoothing_n}")

    @classmethod
    def from_settings(cls) -> RuleConfig:
        return cls(
            default_threshold=float(settings.DETECTION_THRESHOLD),
            thresholds=dict(settings.DETECTION_THRESHOLDS),
            disabled_event_types=frozenset(settings.DETECTION_DISABLED_EVENT_TYPES),
            smoothing_k=settings.DETECTION_SMOOTHING_K,
            smoothing_n=settings.DETECTION_SMOOTHING_N,
            quiet_seconds=float(settings.EVENT_QUIET_SECONDS),
            clip_max_seconds=float(settings.CLIP_MAX_SECONDS),
        )


def threshold_for(camera: CameraRules, zone: ZoneRule | None, event_type: str, config: RuleConfig) -> float:
    """Zone threshold, else camera threshold, else the deployment's per-event-type one, else the default."""
    if zone is not None and zone.threshold is not None:
        return zone.threshold
    if camera.threshold is not None:
        return camera.threshold
    return float(config.thresholds.get(event_type, config.default_threshold))


def zones_for(detection: Detection, camera: CameraRules, config: RuleConfig) -> list[ZoneRule | None]:
    """The zones a detection counts in; [None] means the whole frame, [] means nowhere.

    A camera with zones counts only inside its enabled zones that watch the event type, so
    disabling a camera's only zone silences it rather than widening it to the whole frame.
    A boxed detection belongs to the zones containing its box's bottom-centre (where a person
    stands); a frame-level score counts in every watching zone. A boxed detection standing in an
    ignore zone counts nowhere.
    """
    if detection.event_type in config.disabled_event_types:
        return []
    if not camera.zones:
        return [None] if detection.zone_id is None else []
    if detection.box is not None and camera.ignored(*box_foot(detection.box)):
        return []
    watching = [z for z in camera.zones if z.watches(detection.event_type)]
    if detection.zone_id is not None:
        return [z for z in watching if z.id == detection.zone_id]
    if detection.box is not None:
        foot = box_foot(detection.box)
        return [z for z in watching if z.contains(*foot)]
    return list(watching)


class EventPhase(StrEnum):
    STARTED = "started"  # raise the alert now; the clip window may still grow
    CAPPED = "capped"  # still going, but the clip window reached its maximum: it is final
    ENDED = "ended"  # quiet for the quiet period (or the camera went away); window final


@dataclass(frozen=True)
class Event:
    """One event of one (camera, zone, event type), reported at each phase. Times are epoch seconds."""

    phase: EventPhase
    camera_id: int
    camera_name: str
    zone_id: int | None
    zone_name: str
    event_type: str
    score: float  # the peak so far
    threshold: float
    start: float  # the first qualifying sample
    last_high: float  # the latest sample at or above the threshold
    end: float | None  # set when ENDED: the last high sample
    clip_start: float
    clip_end: float
    clip_final: bool  # the clip window will not change any more
    trigger_at: float  # the peak sample: its frame is the alert's snapshot
    trigger_box: Box | None = None
    trigger_image: np.ndarray | None = field(default=None, compare=False, repr=False)
    # The person whose behaviour raised it, as of the latest high sample (person detector only).
    track: TrackEvidence | None = field(default=None, compare=False, repr=False)
    # The end of the first clip (pre-roll, `during` and post-roll from the start): fixed when the
    # event starts, so that clip can be built as soon as its post-roll is recorded. None: clip_end.
    first_clip_end: float | None = None

    @property
    def key(self) -> EventKey:
        return (self.camera_id, self.zone_id, self.event_type)

    @property
    def track_json(self) -> dict[str, Any] | None:
        """The person's track over the clip window, as the alert stores it (None: no person)."""
        return self.track.between(self.clip_start, self.clip_end).to_json() if self.track is not None else None


@dataclass
class _Sample:
    at: float
    score: float
    high: bool
    box: Box | None = None
    image: Any = None  # kept only for high samples: a candidate snapshot
    track: TrackEvidence | None = None  # kept only for high samples


@dataclass
class _Open:
    start: float
    last_high: float
    peak: _Sample
    threshold: float
    capped: bool = False
    track: TrackEvidence | None = None  # the latest high sample's


@dataclass
class _Track:
    window: deque[_Sample]
    last_at: float | None = None
    open: _Open | None = None


class RuleEngine:
    """Turns each camera's detections into events. One per detector process, fed from one thread."""

    def __init__(self, config: RuleConfig, rules: Mapping[int, CameraRules]) -> None:
        self.config = config
        self._rules: dict[int, CameraRules] = dict(rules)
        self._tracks: dict[EventKey, _Track] = {}

    @property
    def rules(self) -> Mapping[int, CameraRules]:
        return self._rules

    def update_rules(self, rules: Mapping[int, CameraRules], *, at: float | None = None) -> list[Event]:
        """Swap in freshly loaded rules; events of cameras, zones or types no longer watched end now."""
        self._rules = dict(rules)
        events = []
        for key, track in list(self._tracks.items()):
            camera_id, zone_id, event_type = key
            camera = self._rules.get(camera_id)
            zone = camera.zone(zone_id) if camera is not None and zone_id is not None else None
            still_watched = camera is not None and (
                (zone_id is None and not camera.zones) or (zone is not None and zone.watches(event_type))
            ) and event_type not in self.config.disabled_event_types
            if not still_watched:
                if track.open is not None:
                    events.append(self._close(key, track))
                del self._tracks[key]
        return events

    def process(self, camera_id: int, at: float, detections: Iterable[Detection], image: Any = None) -> list[Event]:
        """Feed one sampled frame's detections (possibly none) for one camera; returns new event phases."""
        camera = self._rules.get(camera_id)
        if camera is None:
            return []
        best: dict[EventKey, Detection] = {}
        for detection in detections:
            if detection.camera_id != camera_id:
                continue
            for zone in zones_for(detection, camera, self.config):
                key = (camera_id, None if zone is None else zone.id, detection.event_type)
                if key not in best or detection.score > best[key].score:
                    best[key] = detection
        keys = set(best) | {k for k in self._tracks if k[0] == camera_id}
        events: list[Event] = []
        for key in sorted(keys, key=lambda k: (k[1] is None, k[1] or 0, k[2])):
            found = best.get(key)
            event = self._step(camera, key, at, found, image)
            if event is not None:
                events.append(event)
        return events

    def expire(self, now: float) -> list[Event]:
        """End events that have been quiet for the quiet period even though no frame arrived
        (a camera that went offline). Call it now and then from the inference loop."""
        events = []
        for key, track in list(self._tracks.items()):
            if track.open is not None and now - track.open.last_high > self.config.quiet_seconds:
                events.append(self._close(key, track))
                del self._tracks[key]
        return events

    def close_all(self) -> list[Event]:
        """End every open event, e.g. at shutdown."""
        events = [self._close(key, track) for key, track in self._tracks.items() if track.open is not None]
        self._tracks.clear()
        return events

    def _step(self, camera: CameraRules, key: EventKey, at: float, detection: Detection | None,
              image: Any) -> Event | None:
        cfg = self.config
        score = detection.score if detection is not None else 0.0
        zone = camera.zone(key[1])
        threshold = threshold_for(camera, zone, key[2], cfg)
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(window=deque(maxlen=cfg.smoothing_n))
        if track.last_at is not None:
            if at <= track.last_at:
                return None  # a repeated or late frame: time must move forward
            if at - track.last_at > cfg.quiet_seconds:
                track.window.clear()  # a gap in the feed: old samples say nothing about now
        track.last_at = at
        high = score >= threshold
        sample = _Sample(at=at, score=score, high=high, image=image if high else None)
        if high and detection is not None:
            sample.box, sample.track = detection.box, detection.evidence
        track.window.append(sample)
        opened = track.open

        if opened is not None:
            if high:
                opened.last_high = at
                opened.track = sample.track or opened.track
                if score > opened.peak.score:
                    opened.peak = sample
            elif at - opened.last_high > cfg.quiet_seconds:
                event = self._close(key, track)
                del self._tracks[key]
                return event
            if not opened.capped and self._uncapped_length(camera, opened) >= cfg.clip_max_seconds:
                opened.capped = True
                return self._event(EventPhase.CAPPED, camera, key, opened)
            return None

        highs = [s for s in track.window if s.high]
        if len(highs) >= cfg.smoothing_k:
            peak = max(highs, key=lambda s: s.score)
            opened = track.open = _Open(start=highs[0].at, last_high=highs[-1].at, peak=peak, threshold=threshold,
                                        track=next((s.track for s in reversed(highs) if s.track), None))
            opened.capped = self._uncapped_length(camera, opened) >= cfg.clip_max_seconds
            return self._event(EventPhase.STARTED, camera, key, opened)
        if not highs:
            del self._tracks[key]  # nothing pending: an empty window behaves the same and costs nothing
        return None

    def _uncapped_length(self, camera: CameraRules, opened: _Open) -> float:
        return max(opened.start + camera.during_seconds, opened.last_high) + camera.post_seconds - (
            opened.start - camera.pre_seconds
        )

    def _close(self, key: EventKey, track: _Track) -> Event:
        assert track.open is not None
        camera = self._rules.get(key[0]) or CameraRules(camera_id=key[0])
        return self._event(EventPhase.ENDED, camera, key, track.open)

    def _event(self, phase: EventPhase, camera: CameraRules, key: EventKey, opened: _Open) -> Event:
        clip_start, clip_end = clip_window(
            start=opened.start, last_high=opened.last_high, pre=camera.pre_seconds, during=camera.during_seconds,
            post=camera.post_seconds, max_seconds=self.config.clip_max_seconds,
        )
        first_end = min(opened.start + camera.during_seconds + camera.post_seconds, clip_end)
        zone = camera.zone(key[1])
        return Event(
            phase=phase, camera_id=key[0], camera_name=camera.name, zone_id=key[1],
            zone_name=zone.name if zone is not None else "", event_type=key[2], score=opened.peak.score,
            threshold=opened.threshold, start=opened.start, last_high=opened.last_high,
            end=opened.last_high if phase is EventPhase.ENDED else None, clip_start=clip_start, clip_end=clip_end,
            clip_final=phase is not EventPhase.STARTED or opened.capped, trigger_at=opened.peak.at,
            trigger_box=opened.peak.box, trigger_image=opened.peak.image, track=opened.track,
            first_clip_end=first_end,
        )


def clip_window(*, start: float, last_high: float, pre: float, during: float, post: float,
                max_seconds: float) -> tuple[float, float]:
    """[start - pre, max(start + during, last high) + post], cut to at most `max_seconds` long."""
    clip_start = start - pre
    clip_end = max(start + during, last_high) + post
    return clip_start, min(clip_end, clip_start + max_seconds)
