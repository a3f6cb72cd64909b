"""python manage.py generate_vapid_keys: a new VAPID key pair for Web Push, as settings lines."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from alerts.push import vapid_keys_generate


class Command(BaseCommand):
    help = ("Print a new VAPID key pair for Web Push as VAPID_PUBLIC_KEY=... and VAPID_PRIVATE_KEY=... lines, "
            "ready for .env. Replacing the keys ends every browser's subscription: users enable them again.")

    def handle(self, *args: Any, **options: Any) -> None:
        public, private = vapid_keys_generate()
        self.stdout.write(f"VAPID_PUBLIC_KEY={public}\nVAPID_PRIVATE_KEY={private}")
        # Advice on stderr, so that `generate_vapid_keys >> .env` writes only the settings.
        self.stderr.write("Add both lines to .env (keep VAPID_PRIVATE_KEY secret), with VAPID_SUBJECT=mailto:<an address "
                          "the push services can reach>, and restart the web and worker processes.")
