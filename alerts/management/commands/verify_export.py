"""python manage.py verify_export FILE.zip: check every hash and the signature of a police export."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts.export import evidence_verify


class Command(BaseCommand):
    help = ("Check a police export: every file against the SHA-256 in manifest.json, and manifest.sig against the "
            "public key. Exits non-zero naming each altered, missing or added file.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bundle", type=Path, help="the export ZIP")
        parser.add_argument("--allow-unsigned", action="store_true", help="accept a bundle without a signature")
        parser.add_argument("--public-key", type=Path, help="a PEM public key to check the signature with, instead "
                            "of the bundled public_key.pem (e.g. the one shown in the admin)")

    def handle(self, *args: Any, **options: Any) -> None:
        pinned = options["public_key"].read_text() if options["public_key"] else None
        problems = evidence_verify(options["bundle"], allow_unsigned=options["allow_unsigned"], public_key=pinned)
        if problems:
            raise CommandError(f"{options['bundle']} does not verify:\n" + "\n".join(f"  {p}" for p in problems))
        self.stdout.write(f"{options['bundle']}: every file matches manifest.json and the signature verifies.")
