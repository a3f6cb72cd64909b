"""The detection settings: bad values stop start-up with a message naming the variable."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRINT = "import shoplift.settings as s; print(s.DETECTION_THRESHOLDS, s.MOTION_INPUT_SIZE, s.DETECTION_SMOOTHING_K)"


def settings_with(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL"))}
    env.update({"SECRET_KEY": "k" * 50, "DEBUG": "false", **extra})
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_it_reads_detection_settings():
    result = settings_with(DETECTION_THRESHOLDS="loitering=0.6, zone_activity=0.45", MOTION_INPUT_SIZE="160x90",
                           DETECTION_SMOOTHING_K="2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'loitering': 0.6, 'zone_activity': 0.45} (160, 90) 2"


@pytest.mark.parametrize("extra, expected", [
    ({"DETECTION_THRESHOLDS": "loitering:0.6"}, "DETECTION_THRESHOLDS='loitering:0.6' is invalid: expected comma-separated"),
    ({"DETECTION_THRESHOLDS": "loitering=2"}, "DETECTION_THRESHOLDS='loitering=2' is invalid"),
    ({"DETECTION_SMOOTHING_K": "6"}, "DETECTION_SMOOTHING_K (6) must not exceed DETECTION_SMOOTHING_N (5)"),
    ({"MOTION_INPUT_SIZE": "320"}, "MOTION_INPUT_SIZE='320' is invalid: expected WIDTHxHEIGHT"),
    ({"CLIP_MAX_SECONDS": "4"}, "CLIP_MAX_SECONDS (4.0) must be at least"),
    ({"TORCH_THREADS": "0"}, "TORCH_THREADS='0' is invalid"),
])
def test_it_refuses_bad_detection_settings(extra, expected):
    result = settings_with(**extra)
    assert result.returncode != 0 and expected in result.stderr, result.stderr[-2000:]
