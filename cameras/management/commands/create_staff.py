"""python manage.py create_staff USERNAME --role viewer|reviewer|manager --site NAME [--password-env VAR]"""
from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cameras.models import Role, Site
from cameras.services import staff_user_upsert


class Command(BaseCommand):
    help = "Create a staff login, or change its role, at one site."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--site", required=True, help="Site name.")
        parser.add_argument("--password-env", metavar="VAR",
                            help="Read the password from this environment variable instead of prompting.")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(name=options["site"]).first()
        if site is None:
            known = ", ".join(Site.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No site named '{options['site']}' (known sites: {known}). Create it with add_cameras or the admin.")
        password = self._password(options)
        try:
            user, created = staff_user_upsert(
                username=options["username"], site=site, role=Role(options["role"]), password=password, email=options["email"],
            )
        except ValidationError as exc:
            hint = " Give one with --password-env VAR, or run the command in a terminal to be asked." if password is None else ""
            raise CommandError(" ".join(exc.messages) + hint) from None
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} '{user.username}': {options['role']} at {site.name}."))

    def _password(self, options: dict[str, Any]) -> str | None:
        var = options["password_env"]
        if var:
            value = os.environ.get(var)
            if not value:
                raise CommandError(f"--password-env {var}: the environment variable {var} is not set or empty.")
            return value
        if not sys.stdin.isatty():
            return None  # an existing user keeps their password; a new one is refused by the service
        first = getpass.getpass(f"Password for {options['username']} (empty keeps the current one): ")
        if not first:
            return None
        if getpass.getpass("Again: ") != first:
            raise CommandError("The two passwords differ; nothing was changed.")
        return first
