"""The `person` detector: people, their tracks and poses, and retail behaviour rules over zone kinds.

Per batch of sampled frames (one per camera), in the inference loop's thread:
1. the motion gate (gate.py) picks the cameras where something moved, plus those with people
   whose last model run is older than `stationary_seconds`;
2. NanoDet (nanodet.py) finds people in those frames, in one batch across cameras;
3. each camera's tracker (detection.tracking.tracker) gives them stable ids; on a gated frame
   the tracked people are carried where they were, since nothing moved;
4. BlazePose (pose.py) adds 17 body keypoints for each person at a shelf zone;
5. the behaviour rules (detection.behaviour.rules) turn tracks, keypoints and zone kinds into
   scored detections, each carrying the person's track as evidence.

A camera without zones gets tracked people but no events: the events are about shelves,
checkouts, exits and restricted areas, which only its zones define.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detection.behaviour.rules import (
    CONCEALMENT,
    EVENT_TYPES,
    BehaviourConfig,
    BehaviourRules,
    PersonView,
    shelf_zones_at,
)
from detection.detectors.base import Detection, Detector, DetectorConfigError
from detection.detectors.person.gate import MotionGate
from detection.detectors.person.modelfiles import model_file, onnx_session
from detection.detectors.person.nanodet import NanoDet
from detection.detectors.person.pose import BlazePose
from detection.detectors.registry import register
from detection.inference.events import CameraRules
from detection.tracking.tracker import Track, Tracker

if TYPE_CHECKING:
    from detection.capture.stream import SampledFrame

logger = logging.getLogger(__name__)

PERSON_MODEL = "nanodet.onnx"
POSE_MODELS = {"full": "pose_landmark_full.onnx", "lite": "pose_landmark_lite.onnx"}
TRACK_CONTINUE_FRACTION = 0.75


@dataclass
class PersonStats:
    frames: int = 0
    model_frames: int = 0  # frames the person model ran on (the rest were gated)
    pose_runs: int = 0


@dataclass
class _Camera:
    tracker: Tracker
    behaviour: BehaviourRules
    last_model_at: float = float("-inf")
    people: list[Track] = field(default_factory=list)  # tracked people in the latest frame


@register("person")
class PersonDetector(Detector):
    event_types = EVENT_TYPES
    needs_zones = True

    def __init__(self, *, input_size: tuple[int, int] = (960, 540), models_dir: Path | None = None,
                 threads: int = 2, min_score: float = 0.4, motion_gate: bool = True,
                 stationary_seconds: float = 1.0, track_max_age: float = 2.0, pose_model: str = "full",
                 behaviour: BehaviourConfig | None = None) -> None:
        if not 0.0 < min_score <= 1.0:
            raise DetectorConfigError(f"person detector: min_score {min_score} must be in (0, 1].")
        if pose_model not in POSE_MODELS:
            raise DetectorConfigError(f"person detector: pose model '{pose_model}' is not one of {', '.join(POSE_MODELS)}.")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        people_file = model_file(PERSON_MODEL, models_dir)
        pose_file = model_file(POSE_MODELS[pose_model], models_dir)
        try:
            # Boxes somewhat below min_score may continue a track (a person half hidden) but never
            # start one: the tracker's new_track_score is min_score (ByteTrack's two thresholds).
            self.people_model = NanoDet(onnx_session(people_file, threads=threads),
                                        score_threshold=min_score * TRACK_CONTINUE_FRACTION)
            self.pose_model = BlazePose(onnx_session(pose_file, threads=threads))
        except ValueError as exc:  # the graph loaded but is not the model this code decodes
            raise DetectorConfigError(f"person detector: {exc}") from None
        self.min_score = min_score
        self.gate = MotionGate() if motion_gate else None
        self.stationary_seconds = stationary_seconds
        self.track_max_age = track_max_age
        self.behaviour_config = behaviour or BehaviourConfig()
        self.models = {people_file.name: people_file.sha256, pose_file.name: pose_file.sha256}
        self.stats = PersonStats()
        self._cameras: dict[int, _Camera] = {}

    def detect(self, frames: Sequence[SampledFrame], context: Mapping[int, CameraRules]) -> list[Detection]:
        frames = [f for f in frames if f.camera_id in context]
        states = {f.camera_id: self._camera(f.camera_id) for f in frames}
        run = [f for f in frames if self._needs_model(f, states[f.camera_id])]
        found = dict(zip((f.camera_id for f in run), self.people_model.detect([f.image for f in run]), strict=True))
        detections: list[Detection] = []
        for frame in frames:
            state, rules = states[frame.camera_id], context[frame.camera_id]
            self.stats.frames += 1
            if frame.camera_id in found:
                self.stats.model_frames += 1
                state.last_model_at = frame.captured_at
                state.people = state.tracker.update(frame.captured_at, found[frame.camera_id])
                self._add_poses(frame.image, rules, state.people)
            # else nothing moved: the people of the last model run are still where they were.
            views = [PersonView(t.id, t.box, t.keypoints, t.evidence()) for t in state.people]
            detections.extend(state.behaviour.step(rules, frame.captured_at, views))
        return detections

    def people(self, camera_id: int) -> list[Track]:
        """The people tracked in this camera's latest frame (for analyze_video and the benchmarks)."""
        state = self._cameras.get(camera_id)
        return list(state.people) if state is not None else []

    def forget(self, camera_id: int) -> None:
        self._cameras.pop(camera_id, None)
        if self.gate is not None:
            self.gate.forget(camera_id)

    def _camera(self, camera_id: int) -> _Camera:
        state = self._cameras.get(camera_id)
        if state is None:
            state = self._cameras[camera_id] = _Camera(
                tracker=Tracker(max_age=self.track_max_age, new_track_score=self.min_score),
                behaviour=BehaviourRules(self.behaviour_config))
        return state

    def _needs_model(self, frame: SampledFrame, state: _Camera) -> bool:
        if self.gate is None:
            return True
        moved = self.gate.moved(frame.camera_id, frame.image)  # always called: it keeps the previous sample
        tracks = state.tracker.tracks
        stale = bool(tracks) and frame.captured_at - state.last_model_at >= self.stationary_seconds
        tentative = any(t.hits < state.tracker.min_hits for t in tracks)  # confirm a newcomer at once
        return moved or stale or tentative or frame.captured_at < state.last_model_at

    def _add_poses(self, image: np.ndarray, rules: CameraRules, people: list[Track]) -> None:
        """Keypoints for the people at a shelf zone that watches concealment; the rest get none."""
        zones = [z for z in rules.zones if z.watches(CONCEALMENT)]
        at_shelf = [t for t in people if shelf_zones_at(t.box, zones, self.behaviour_config.shelf_overlap)]
        if not at_shelf:
            return
        for track, keypoints in zip(at_shelf, self.pose_model.keypoints(image, [t.box for t in at_shelf]),
                                    strict=True):
            track.set_keypoints(keypoints)
        self.stats.pose_runs += len(at_shelf)
