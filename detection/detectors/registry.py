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
    if name == "motion":
        return {
            "input_size": settings.MOTION_INPUT_SIZE,
            "pixel_threshold": settings.MOTION_PIXEL_THRESHOLD,
            "full_activity": settings.MOTION_FULL_ACTIVITY,
            "background_seconds": settings.MOTION_BACKGROUND_SECONDS,
            "presence_score": settings.MOTION_PRESENCE_SCORE,
            "dwell_seconds": settings.LOITERING_DWELL_SECONDS,
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
