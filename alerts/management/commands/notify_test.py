"""python manage.py notify_test --site NAME: a test message through every channel of a site, now."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts.models import DeliveryStatus
from alerts.notify import notify_test
from cameras.models import Site


class Command(BaseCommand):
    help = "Send a test message through every notification target and subscribed device of a site (and the environment's targets) and say how each went."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", required=True, help="Site name.")

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(name=options["site"]).first()
        if site is None:
            known = ", ".join(Site.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No site named '{options['site']}' (known sites: {known}).")
        results = notify_test(site)
        if not results:
            raise CommandError(f"Site '{site.name}' has no notification targets: add them in the admin (Alerts > "
                               "Notification targets), set NOTIFY_WEBHOOK_URL or NOTIFY_MQTT_URL, or subscribe a "
                               "device on the dashboard's Notifications page.")
        failed = 0
        for recipient, outcome in results:
            ok = outcome.status == DeliveryStatus.SENT
            failed += not ok
            line = f"{recipient}: {'sent' if ok else 'FAILED: ' + outcome.detail}"
            self.stdout.write(self.style.SUCCESS(line) if ok else self.style.ERROR(line))
        if failed:
            raise CommandError(f"{failed} of {len(results)} deliveries failed.")
