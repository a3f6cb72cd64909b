"""A real H.264 MP4 evidence clip for tests, and a clips storage in a temporary folder.

The clip is encoded once per test session with PyAV (libx264, faststart), like the clips the
builder writes, so a browser can play and seek it.
"""
from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from django.contrib.auth.models import AbstractUser
from django.core.files.base import ContentFile
from pytest_django.fixtures import Settings

from alerts.models import Alert, ClipStatus, clip_storage
from cameras.models import Camera, Role, Site, Zone
from tests.support.factories import make_alert, make_camera, make_site, make_user, make_zone
from tests.support.requirements import require

CLIP_SECONDS = 6
CLIP_FPS = 25
CLIP_SIZE = (320, 240)


@dataclass(frozen=True)
class SampleClip:
    path: Path
    data: bytes
    sha256: str
    duration: float
    thumbnail: bytes


def _frame(index: int) -> np.ndarray:
    width, height = CLIP_SIZE
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :] = (40, 44, 52)
    image[:, : width // 2] = (60, 70, 90)
    x = int((width - 60) * index / (CLIP_SECONDS * CLIP_FPS - 1))
    image[90:170, x : x + 60] = (220, 40, 40)  # a red "person" crossing the aisle
    cv2.putText(image, f"{index / CLIP_FPS:4.1f}s", (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return image


def encode_clip(path: Path) -> SampleClip:
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "25", "bf": "0", "preset": "veryfast"}
        stream.codec_context.time_base = Fraction(1, CLIP_FPS)
        for index in range(CLIP_SECONDS * CLIP_FPS):
            frame = av.VideoFrame.from_ndarray(_frame(index), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, CLIP_FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as probe:
        duration = float(probe.duration or 0) / av.time_base
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(_frame(60), cv2.COLOR_RGB2BGR))
    assert ok
    data = path.read_bytes()
    return SampleClip(path=path, data=data, sha256=hashlib.sha256(data).hexdigest(), duration=duration,
                    thumbnail=jpeg.tobytes())


@pytest.fixture(scope="session")
def test_clip(tmp_path_factory: pytest.TempPathFactory) -> SampleClip:
    return encode_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture
def clip_settings(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """Clips in a temporary folder; plain static files (the manifest storage needs collectstatic)."""
    location = tmp_path / "clips"
    settings.STORAGES = {
        **settings.STORAGES,
        "clips": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                  "OPTIONS": {"location": location, "base_url": None}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    yield location


def attach_clip(alert: Alert, clip: SampleClip, *, thumbnail: bool = True) -> Alert:
    """Store the clip as the builder would (through the clips storage) and mark the alert ready."""
    storage = clip_storage()
    alert.clip.name = storage.save(f"clips/alert-{alert.pk}.mp4", ContentFile(clip.data))
    if thumbnail:
        alert.thumbnail.name = storage.save(f"thumbs/alert-{alert.pk}.jpg", ContentFile(clip.thumbnail))
    alert.clip_sha256 = clip.sha256
    alert.clip_size = len(clip.data)
    alert.clip_duration = clip.duration
    alert.clip_status = ClipStatus.READY
    alert.save()
    return alert


@pytest.fixture
def fast_passwords(settings: Settings) -> None:
    """Hashing with the production hasher costs ~0.3 s per user here; the matrix creates hundreds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    """Two sites, an alert with a real clip at each, and one user per persona of the issue."""

    site_a: Site
    site_b: Site
    camera_a: Camera
    camera_b: Camera
    zone_a: Zone
    alert_a: Alert
    alert_b: Alert
    users: dict[str, AbstractUser | None]


@pytest.fixture
def world(db: None, clip_settings: Path, fast_passwords: None, test_clip: SampleClip) -> World:
    site_a = make_site("Riverside", time_zone="Europe/London")
    site_b = make_site("Hilltop", time_zone="America/New_York")
    camera_a = make_camera(site_a, "Aisle 3")
    camera_b = make_camera(site_b, "Entrance")
    zone_a = make_zone(camera_a, "Spirits shelf")
    at = datetime(2024, 6, 1, 13, 0, 5, tzinfo=UTC)
    alert_a = attach_clip(make_alert(camera_a, zone=zone_a, at=at, event_type="concealment", score=0.87), test_clip)
    alert_b = attach_clip(make_alert(camera_b, at=at + timedelta(minutes=1), event_type="loitering"), test_clip)
    users: dict[str, AbstractUser | None] = {
        "anonymous": None,
        "viewer": make_user("viewer", site=site_a, role=Role.VIEWER),
        "reviewer": make_user("reviewer", site=site_a, role=Role.REVIEWER),
        "manager": make_user("manager", site=site_a, role=Role.MANAGER),
        "other_site": make_user("other", site=site_b, role=Role.MANAGER),
        "superuser": make_user("root", superuser=True),
    }
    return World(site_a, site_b, camera_a, camera_b, zone_a, alert_a, alert_b, users)


@contextmanager
def small_clip_disk(where: Path, settings: Settings, *, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted at `where` and made the clips storage folder (of this process
    and of the workers it starts): a disk that really fills up, with a real ENOSPC. Needs root."""
    where.mkdir(exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0750", "tmpfs", str(where)],
                            capture_output=True, text=True)
    require(result.returncode == 0, f"mounting a tmpfs ({result.stderr.strip()})", "run the tests as root")
    settings.STORAGES = {**settings.STORAGES, "clips": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                        "OPTIONS": {"location": where, "base_url": None}}}
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)
