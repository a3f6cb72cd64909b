"""One gate for tests that need a system component (GStreamer, ffmpeg, Chromium, a tmpfs mount).

On a developer's machine a missing component skips the test, with the Debian package to install.
In CI (the environment variable CI is set, as CI systems and .ci/run do) it fails the test instead:
a CI machine without GStreamer would otherwise pass while skipping a third of the suite.
"""
from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(condition: bool, what: str, how_to_install: str) -> None:
    """Go on if `condition` holds; otherwise skip the test, or fail it in CI.

    `what` names the missing component, `how_to_install` says how to get it (the Debian package).
    """
    if condition:
        return
    message = f"{what} is missing: {how_to_install}"
    if in_ci():
        pytest.fail(f"{message} (CI is set, so a missing component fails the run instead of skipping)",
                    pytrace=False)
    pytest.skip(message)
