"""python manage.py export_evidence (--alerts 1,2 | --case ID) --out FILE.zip --user NAME: the police export,
from a shell."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts.export import ExportError, evidence_export
from alerts.models import Case


def _ids(raw: str) -> list[int]:
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--alerts {raw!r}: expected alert ids separated by commas, such as 12,15") from None
    if not ids:
        raise CommandError("--alerts: give at least one alert id")
    return ids


class Command(BaseCommand):
    help = ("Write one evidence ZIP for these alerts, or for a case's (master clips, working copies, snapshots, "
            "access history, report, signed manifest), recorded in the clip access log as exported by --user.")

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--alerts", help="alert ids, comma-separated: 12,15")
        which.add_argument("--case", type=int, help="a case id: its alerts, with the case in the manifest and report")
        parser.add_argument("--out", required=True, type=Path, help="the ZIP file to write")
        parser.add_argument("--user", required=True, help="the user name the export is recorded under")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = _ids(options["alerts"]) if options["alerts"] is not None else []
        case = None
        if options["case"] is not None:
            case = Case.objects.select_related("site", "created_by", "closed_by").filter(pk=options["case"]).first()
            if case is None:
                raise CommandError(f"--case {options['case']}: no such case")
        user = User.objects.filter(username=options["user"]).first()
        if user is None or not user.is_active:
            raise CommandError(f"--user {options['user']!r}: no active user of that name")
        out: Path = options["out"]
        if not out.parent.is_dir():
            raise CommandError(f"--out {out}: the folder {out.parent} does not exist")
        try:
            result = evidence_export(alert_ids=ids, case=case, user=user, out=out,
                                     user_agent="manage.py export_evidence")
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{result.path}: {len(result.files)} files, manifest SHA-256 {result.manifest_sha256}, "
                          + ("signed" if result.signed else "UNSIGNED (EVIDENCE_SIGNING_KEY is not set)"))
