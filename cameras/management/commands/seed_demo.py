"""python manage.py seed_demo: the demo site, camera, zones and login for a first run. Safe to re-run."""
from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from cameras.demo.scene import ZONES as DEMO_ZONES
from cameras.models import Camera, Role, Site, Zone, ZoneKind
from cameras.services import staff_user_upsert

DEMO_SITE = "Demo Store"
DEMO_CAMERA = "Demo camera"
# The one zone older versions seeded (over a red rectangle's walk); a demo camera that still has it
# gets the zones of the current demo scene instead.
OLD_DEMO_ZONE = "High-value shelf"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def demo_camera_url() -> str | None:
    """The demo camera's URL when bin/run should serve it: the camera exists, is enabled, and
    points at this machine. An installer who repoints or disables it gets no demo stream."""
    camera = Camera.objects.filter(site__name=DEMO_SITE, name=DEMO_CAMERA, enabled=True).first()
    if camera is None or urlsplit(camera.stream_url).hostname not in LOCAL_HOSTS:
        return None
    return camera.stream_url


def demo_zones_create(*, camera: Camera) -> list[Zone]:
    """The demo scene's zones (cameras/demo/scene.py), one of each kind, on the demo camera.

    Zones the camera already has by those names are left as they are (an installer may have edited them).
    """
    zones = []
    for name, kind, polygon in DEMO_ZONES:
        zone, _ = Zone.objects.get_or_create(camera=camera, name=name, defaults={"kind": kind, "polygon": polygon})
        zones.append(zone)
    return zones


@transaction.atomic
def demo_zones_upgrade(*, camera: Camera) -> bool:
    """Give a demo camera seeded by an older version the current demo zones; True when it did.

    Only a camera still streaming from this machine (the demo scene) and still carrying the old zone
    is changed: the old zone becomes the shelf zone (its alerts keep their zone), and the others are
    added. A repointed camera, or one already upgraded, is left alone.
    """
    if urlsplit(camera.stream_url).hostname not in LOCAL_HOSTS:
        return False
    old = Zone.objects.select_for_update().filter(camera=camera, name=OLD_DEMO_ZONE).first()
    if old is None:
        return False
    shelf_name, shelf_kind, shelf_polygon = next(zone for zone in DEMO_ZONES if zone[1] == ZoneKind.SHELF)
    if Zone.objects.filter(camera=camera, name=shelf_name).exists():
        old.delete()
    else:
        old.name, old.kind, old.polygon, old.enabled = shelf_name, shelf_kind, shelf_polygon, True
        old.save(update_fields=["name", "kind", "polygon", "enabled"])
    demo_zones_create(camera=camera)
    return True


class Command(BaseCommand):
    help = "Create the demo site, camera, zones and a manager login, and print the login."

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
        names = ", ".join(f"'{name}' ({kind})" for name, kind, _ in DEMO_ZONES)
        if not Camera.objects.exists():  # a configured deployment gets no demo camera
            with transaction.atomic():
                camera = Camera.objects.create(site=site, name=DEMO_CAMERA, channel=1, stream_url=options["url"])
                demo_zones_create(camera=camera)
            self.stdout.write(f"Created the demo camera at {options['url']} with zones {names}.")
        else:
            demo = Camera.objects.filter(site=site, name=DEMO_CAMERA).first()
            if demo is not None and demo_zones_upgrade(camera=demo):
                self.stdout.write(f"Replaced the demo camera's zone '{OLD_DEMO_ZONE}' with zones {names}.")
        password = secrets.token_urlsafe(12)
        staff_user_upsert(username=options["username"], site=site, role=Role.MANAGER, password=password)
        self.stdout.write(self.style.SUCCESS(
            f"Demo login: user '{options['username']}', password '{password}' (manager of '{DEMO_SITE}'; "
            "a new password is made at every start)."
        ))
