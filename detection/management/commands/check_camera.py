"""check_camera: measure a camera's stream before it goes live, for installers.

    python manage.py check_camera "Aisle 3" [--seconds 10]
    python manage.py check_camera "Store 1 / Aisle 3"
    python manage.py check_camera rtsp://user:password@10.0.0.5:554/ch1
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cameras.selectors import CameraNotFound, camera_by_label
from detection.capture.probe import StreamError, format_report, probe_stream
from shoplift.masking import mask_url


class Command(BaseCommand):
    help = ("Open a camera's RTSP stream and report codec, resolution, fps, keyframe interval, bitrate and "
            "ring memory, with warnings; exits non-zero with the reason when the stream cannot be read.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("camera", help="camera name, 'Site / Camera', or an rtsp:// URL")
        parser.add_argument("--seconds", type=float, default=10.0,
                            help="seconds of video to measure (default 10; longer than the keyframe interval)")
        parser.add_argument("--timeout", type=float, default=None,
                            help="seconds to wait for the DVR to answer (default CAPTURE_OPEN_TIMEOUT_SECONDS)")

    def handle(self, *args: Any, camera: str, seconds: float, timeout: float | None, **options: Any) -> None:
        if seconds <= 0:
            raise CommandError("--seconds must be positive")
        open_timeout = timeout or settings.CAPTURE_OPEN_TIMEOUT_SECONDS
        streams: list[tuple[str, str]]
        if camera.lower().startswith(("rtsp://", "rtsps://")):
            label = mask_url(camera)
            streams = [("stream", camera)]
            pre, ring = settings.CLIP_PRE_SECONDS, settings.RING_SECONDS
        else:
            try:
                row = camera_by_label(camera)
            except CameraNotFound as exc:
                raise CommandError(f"{exc}, or an rtsp:// URL") from None
            label = f"camera '{row.name}' ({row.site.name})"
            streams = [("evidence stream", row.stream_url)]
            if row.detect_url:
                streams.append(("detection stream", row.detect_url))
            timing = row.timing()
            pre, ring = timing.pre, timing.ring
        for role, url in streams:
            try:
                report = probe_stream(url, seconds=seconds, open_timeout=open_timeout, pre_roll=pre,
                                      ring_seconds=ring, ring_max_bytes=settings.RING_MAX_BYTES,
                                      evidence=role != "detection stream")
            except StreamError as exc:
                raise CommandError(f"{label}, {role}: {exc}") from None
            self.stdout.write(format_report(report, label=role))
        self.stdout.write(self.style.SUCCESS(f"{label}: OK"))

