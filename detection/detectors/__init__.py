"""Detector backends behind one interface (base.Detector) and a registry (registry.create_detector)."""
from detection.detectors.base import Detection, Detector, DetectorConfigError, detect_batch
from detection.detectors.registry import create_configured_detector, create_detector, detector_names, register

__all__ = [
    "Detection", "Detector", "DetectorConfigError", "create_configured_detector", "create_detector", "detect_batch",
    "detector_names", "register",
]
