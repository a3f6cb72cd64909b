"""python manage.py add_cameras --site NAME --url TEMPLATE --channels 1-16 [--detect-url TEMPLATE]"""
from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cameras.models import Site
from cameras.services import cameras_upsert_from_template
from cameras.validators import validate_time_zone
from shoplift.masking import mask_url

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_CHANNELS = 256


def parse_channels(spec: str) -> list[int]:
    """'1-16' or '1,3,5-8' -> sorted channel numbers."""
    channels: set[int] = set()
    for part in spec.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise CommandError(f"--channels '{spec}': '{part}' is not a channel or range. Use e.g. 1-16 or 1,3,5-8.")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if first < 1 or last < first:
            raise CommandError(f"--channels '{spec}': '{part}' is not an increasing range of channels from 1.")
        channels.update(range(first, last + 1))
    if len(channels) > MAX_CHANNELS:
        raise CommandError(f"--channels '{spec}' names {len(channels)} channels; at most {MAX_CHANNELS} at once.")
    return sorted(channels)


class Command(BaseCommand):
    help = "Create or update one camera per DVR channel from an RTSP URL template. Safe to re-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", required=True, help="Site (store) name; created if it does not exist.")
        parser.add_argument("--url", required=True, help="Main stream URL; {channel} becomes the channel number.")
        parser.add_argument("--channels", required=True, help="Channels, e.g. 1-16 or 1,3,5-8.")
        parser.add_argument("--detect-url", default="", help="Optional substream URL template for detection.")
        parser.add_argument("--name", default="Channel {channel}", help="Name template for new cameras.")
        parser.add_argument("--time-zone", default="", help="Time zone of a new site, e.g. Europe/London.")

    def handle(self, *args: Any, **options: Any) -> None:
        channels = parse_channels(options["channels"])
        site = Site.objects.filter(name=options["site"]).first()
        if site is None:
            time_zone = options["time_zone"] or "UTC"
            try:
                validate_time_zone(time_zone)
            except ValidationError as exc:
                raise CommandError(f"--time-zone: {' '.join(exc.messages)}") from None
            site = Site.objects.create(name=options["site"], time_zone=time_zone)
            self.stdout.write(f"Created site '{site.name}' ({site.time_zone}).")
        try:
            results = cameras_upsert_from_template(
                site=site, url_template=options["url"], channels=channels,
                detect_url_template=options["detect_url"], name_template=options["name"],
            )
        except ValidationError as exc:
            raise CommandError(f"Nothing was saved. {' '.join(exc.messages)}") from None
        for result in results:
            cam = result.camera
            verb = "created" if result.created else "updated"
            detect = f" detect={mask_url(cam.detect_url)}" if cam.detect_url else ""
            self.stdout.write(f"  channel {cam.channel:>3} {verb}: '{cam.name}' {mask_url(cam.stream_url)}{detect}")
        created = sum(r.created for r in results)
        self.stdout.write(self.style.SUCCESS(
            f"{site.name}: {created} camera(s) created, {len(results) - created} updated."
        ))
