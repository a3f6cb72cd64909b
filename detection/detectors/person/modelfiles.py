"""The person detector's model files: found, checked against their recorded SHA-256, loaded.

The files ship in `models/` beside this module, converted once by tools/convert_models.py from
the npm packages named in models/PROVENANCE.json (which also records each file's SHA-256 and
licence). Nothing is downloaded at run time. A missing or altered file stops start-up with a
`DetectorConfigError` naming the file and what to do.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detection.detectors.base import DetectorConfigError

MODELS_DIR = Path(__file__).resolve().parent / "models"
PROVENANCE_FILE = "PROVENANCE.json"


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    sha256: str
    data: bytes  # the verified bytes: loaded from memory, so the file cannot change after the check
    provenance: dict[str, Any]


def model_file(name: str, models_dir: Path | None = None) -> ModelFile:
    """Read model `name` from the models folder and verify it against PROVENANCE.json."""
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    record = _provenance(folder).get(name)
    if record is None:
        raise DetectorConfigError(
            f"person detector: {folder / PROVENANCE_FILE} has no entry for the model file '{name}'. "
            "Restore the models folder from the repository (git checkout -- detection/detectors/person/models)."
        )
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DetectorConfigError(
            f"person detector: the model file {path} is missing. It ships with the project: restore it with "
            "`git checkout -- detection/detectors/person/models`, or set DETECTOR=motion to run without it."
        ) from None
    except OSError as exc:
        raise DetectorConfigError(f"person detector: the model file {path} cannot be read ({exc}).") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.get("sha256"):
        raise DetectorConfigError(
            f"person detector: the model file {path} has SHA-256 {actual}, but {PROVENANCE_FILE} records "
            f"{record.get('sha256')}: the file is altered or damaged. Restore it with "
            "`git checkout -- detection/detectors/person/models` (or rebuild it with tools/convert_models.py and "
            "update the record), or set DETECTOR=motion to run without it."
        )
    return ModelFile(name=name, path=path, sha256=actual, data=data, provenance=record)


def onnx_session(model: ModelFile, *, threads: int) -> Any:
    """An ONNX Runtime session on the CPU for a verified model file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise to an operator
    # Idle threads sleep instead of spinning: the process also decodes video, and spinning cost
    # 1.7x the CPU per frame at batch 1 (bench/person_models.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model.data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for a bad graph
        raise DetectorConfigError(f"person detector: ONNX Runtime cannot load {model.path} ({exc}).") from None


def _provenance(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / PROVENANCE_FILE
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        raise DetectorConfigError(
            f"person detector: {path} is missing; it records the SHA-256 of each model file. Restore it with "
            "`git checkout -- detection/detectors/person/models`."
        ) from None
    except (OSError, ValueError) as exc:
        raise DetectorConfigError(f"person detector: {path} cannot be read as JSON ({exc}).") from None
    entries = records.get("models", records) if isinstance(records, dict) else records
    if isinstance(entries, dict):
        entries = list(entries.values())
    return {entry["file"]: entry for entry in entries if isinstance(entry, dict) and "file" in entry}
