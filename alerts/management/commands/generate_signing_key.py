"""python manage.py generate_signing_key: a new Ed25519 key for signing police exports, as a settings line."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from alerts.export import public_key_fingerprint, public_key_pem, signing_key_generate


class Command(BaseCommand):
    help = "Print a new EVIDENCE_SIGNING_KEY=... line (Ed25519, base64 of 32 bytes) for .env."

    def handle(self, *args: Any, **options: Any) -> None:
        import base64

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = signing_key_generate()
        pem = public_key_pem(Ed25519PrivateKey.from_private_bytes(base64.b64decode(private)))
        self.stdout.write(f"EVIDENCE_SIGNING_KEY={private}")
        # Advice on stderr, so that `generate_signing_key >> .env` writes only the setting.
        self.stderr.write(f"Add the line to .env, keep it secret, and restart the web process. Its public key "
                          f"(SHA-256 fingerprint {public_key_fingerprint(pem)}):\n{pem}")
