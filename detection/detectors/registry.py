"""Detector registry and factory.

Built-in backends are named here and imported on first use, so that a process that only runs
the motion baseline (or the web app) never imports torch. A third-party backend registers itself
with `@register("name")` from a module the deployment imports.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from detection.detectors.base import Detector, DetectorConfigError

D = TypeVar("D", bound=type[Detector])

_BUILTIN: dict[str, str] = {
    "motion": "detection.detectors.motion",
    "person": "detection.detectors.person.detector",
    "torchscript": "detection.detectors.torchscript",
}
_REGISTRY: dict[str, type[Detector]] = {}


def register(name: str) -> Callable[[D], D]:
    """Class decorator: make a Detector subclass available to `create_detector(name)`."""

    def decorate(cls: D) -> D:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise DetectorConfigError(f"Detector name '{name}' is already taken by {existing.__module__}.{existing.__qualname__}.")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def detector_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def detector_class(name: str) -> type[Detector]:
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DetectorConfigError(
            f"Unknown detector '{name}'. Known detectors: {', '.join(detector_names())}. "
            "Set DETECTOR (or the camera's detector field) to one of them."
        ) from None


def create_detector(name: str, **options: Any) -> Detector:
    """A detector instance; bad options or model files raise DetectorConfigError naming the problem."""
    cls = detector_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise DetectorConfigError(f"Detector '{name}' does not accept these options ({exc}).") from None


def detector_options(name: str) -> dict[str, Any]:
    """The options a built-in detector takes from the deployment's settings (read when called)."""
    from detection.behaviour.rules import BehaviourConfig

    if name == "motion":
        return {
            "input_size": settings.MOTION_INPUT_SIZE,
            "pixel_threshold": settings.MOTION_PIXEL_THRESHOLD,
            "full_activity": settings.MOTION_FULL_ACTIVITY,
            "background_seconds": settings.MOTION_BACKGROUND_SECONDS,
            "presence_score": settings.MOTION_PRESENCE_SCORE,
            "dwell_seconds": settings.LOITERING_DWELL_SECONDS,
        }
    if name == "person":
        return {
            "input_size": settings.PERSON_INPUT_SIZE,
            "models_dir": settings.PERSON_MODELS_DIR,
            "threads": settings.INFERENCE_THREADS,
            "min_score": settings.PERSON_MIN_SCORE,
            "motion_gate": settings.PERSON_MOTION_GATE,
            "stationary_seconds": settings.PERSON_STATIONARY_SECONDS,
            "track_max_age": settings.PERSON_TRACK_MAX_AGE_SECONDS,
            "pose_model": settings.PERSON_POSE_MODEL,
            "behaviour": BehaviourConfig(
                dwell_seconds=settings.PERSON_DWELL_SECONDS,
                shelf_visit_seconds=settings.SHELF_VISIT_SECONDS,
                concealment_window_seconds=settings.CONCEALMENT_WINDOW_SECONDS,
                concealment_hold_seconds=settings.CONCEALMENT_HOLD_SECONDS,
                restricted_seconds=settings.RESTRICTED_SECONDS,
            ),
        }
    if name == "torchscript":
        if settings.TORCHSCRIPT_MODEL_PATH is None:
            raise DetectorConfigError(
                "The torchscript detector needs a model: set TORCHSCRIPT_MODEL_PATH to a TorchScript file (.pt)."
            )
        return {"model_path": settings.TORCHSCRIPT_MODEL_PATH, "threads": settings.TORCH_THREADS}
    return {}


def create_configured_detector(name: str) -> Detector:
    """The detector a deployment runs under `name`, configured from settings. Call at start-up."""
    detector_class(name)  # an unknown name fails here with the list of known ones
    return create_detector(name, **detector_options(name))
