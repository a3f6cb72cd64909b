"""python manage.py seed_demo: the demo site, camera, zone and login for a first run. Safe to re-run."""
from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandParser

from cameras.models import Camera, Role, Site, Zone
from cameras.services import staff_user_upsert

DEMO_SITE = "Demo Store"
DEMO_CAMERA = "Demo camera"
DEMO_ZONE = "High-value shelf"
# The right-hand third of the picture, where the demo scene's object walks in.
DEMO_POLYGON = [[0.62, 0.15], [0.97, 0.15], [0.97, 0.95], [0.62, 0.95]]


def demo_camera_url() -> str | None:
    """The demo camera's URL when bin/run should serve it: the camera exists, is enabled, and
    points at this machine. An installer who repoints or disables it gets no demo stream."""
    camera = Camera.objects.filter(site__name=DEMO_SITE, name=DEMO_CAMERA, enabled=True).first()
    if camera is None or urlsplit(camera.stream_url).hostname not in ("127.0.0.1", "localhost"):
        return None
    return camera.stream_url


class Command(BaseCommand):
    help = "Create the demo site, camera, zone and a manager login, and print the login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=os.environ.get("DEMO_CAMERA_URL", "rtsp://127.0.0.1:8554/demo"))
        parser.add_argument("--username", default="demo")
        parser.add_argument("--print-demo-url", action="store_true",
                            help="Only print the URL bin/run must serve the demo scene at (nothing when none).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["print_demo_url"]:
            self.stdout.write(demo_camera_url() or "")
            return
        site, _ = Site.objects.get_or_create(name=DEMO_SITE, defaults={"time_zone": "UTC"})
        if not Camera.objects.exists():  # a configured deployment gets no demo camera
            camera = Camera.objects.create(site=site, name=DEMO_CAMERA, channel=1, stream_url=options["url"])
            Zone.objects.create(camera=camera, name=DEMO_ZONE, polygon=DEMO_POLYGON)
            self.stdout.write(f"Created the demo camera at {options['url']} with zone '{DEMO_ZONE}'.")
        password = secrets.token_urlsafe(12)
        staff_user_upsert(username=options["username"], site=site, role=Role.MANAGER, password=password)
        self.stdout.write(self.style.SUCCESS(
            f"Demo login: user '{options['username']}', password '{password}' (manager of '{DEMO_SITE}'; "
            "a new password is made at every start)."
        ))
