"""analyze_video: replay a recorded video through the detection pipeline, for installers.

    python manage.py analyze_video clip.mp4 [--camera "Store 1 / Aisle 3"] [--json] [--out annotated.mp4]

With --camera, that camera's zones, thresholds and detector are used; without it, no zones (people
are still tracked, but events need zones). Nothing is written to the database.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cameras.selectors import CameraNotFound, camera_by_label
from detection.detectors.base import DetectorConfigError
from detection.detectors.registry import create_configured_detector
from detection.inference.events import CameraRules, RuleConfig
from detection.replay import ReplayError, replay_video
from detection.selectors import camera_rules_from


class Command(BaseCommand):
    help = ("Replay a video file through the detector, tracker and rules offline; print people and events per "
            "sampled frame, and optionally write an annotated copy.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a video file PyAV can open (MP4, MKV, TS, AVI...)")
        parser.add_argument("--camera", help="use this camera's zones and thresholds: its name or 'Site / Camera'")
        parser.add_argument("--detector", help="detector name (default: the camera's, else DETECTOR)")
        parser.add_argument("--fps", type=float, default=None, help="samples per second (default: the camera's, "
                            "else DETECTION_FPS)")
        parser.add_argument("--json", action="store_true", help="print one JSON object per sampled frame")
        parser.add_argument("--out", type=Path, help="write an annotated MP4: zones, boxes, track ids, skeletons")

    def handle(self, *args: Any, path: Path, camera: str | None, detector: str | None, fps: float | None,
               json: bool, out: Path | None, **options: Any) -> None:
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if camera:
            try:
                row = camera_by_label(camera)
            except CameraNotFound as exc:
                raise CommandError(str(exc)) from None
            rules = camera_rules_from(row)
            fps = fps or row.detection_fps
        else:
            rules = CameraRules(camera_id=0, name=path.name, detector=settings.DETECTOR)
        name = detector or rules.detector
        if not fps or fps <= 0:
            fps = float(settings.DETECTION_FPS)
        try:
            engine_detector = create_configured_detector(name)
        except DetectorConfigError as exc:
            raise CommandError(str(exc)) from None
        counts: dict[str, int] = {}
        samples = people_max = 0
        try:
            for result in replay_video(path, rules=rules, detector=engine_detector, config=RuleConfig.from_settings(),
                                       fps=fps, annotate_to=out):
                samples += 1
                people_max = max(people_max, len(result.people))
                if json:
                    self.stdout.write(_dumps(result.to_json()))
                for event in result.events:
                    if event["phase"] == "started":
                        counts[event["type"]] = counts.get(event["type"], 0) + 1
                        if not json:
                            self.stdout.write(f"{result.t:8.2f} s  {event['type']} in {event['zone'] or 'frame'} "
                                              f"score {event['score']:.2f}")
        except ReplayError as exc:
            raise CommandError(str(exc)) from None
        finally:
            engine_detector.close()
        summary = (f"{path}: {samples} samples at {fps:g} fps with detector '{name}'"
                   f"{' and the zones of ' + rules.name if camera else ', no zones'}; at most {people_max} people "
                   f"in a frame; events: {', '.join(f'{k} x{v}' for k, v in sorted(counts.items())) or 'none'}"
                   f"{'; annotated video: ' + str(out) if out else ''}")
        (self.stderr if json else self.stdout).write(summary)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
