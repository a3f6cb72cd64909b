"""python manage.py apply_retention [--dry-run]: the retention policy now (the beat task runs it
every CLIP_RETENTION_INTERVAL_SECONDS); see alerts.retention."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts.retention import retention_apply


class Command(BaseCommand):
    help = ("Delete clips past their site's retention days, then the oldest while the clips storage is below its "
            "free-space headroom (never a held alert's), and sweep orphan spool files, thumbnails and snapshots.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be deleted; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = retention_apply(dry_run=options["dry_run"])
        verb = "would delete" if report.dry_run else "deleted"
        for item in report.files:
            owner = f"alert #{item.alert_id}" if item.alert_id is not None else "no row"
            self.stdout.write(f"{verb} {item.name} ({item.size} bytes, {owner}, {item.step})")
        self.stdout.write(report.summary())
        if report.errors:
            raise CommandError(f"{report.errors} file(s) or folder(s) could not be handled (see the log); they are "
                               "tried again on the next run.")
