"""tune_thresholds: suggest thresholds from the scores of confirmed and dismissed alerts.

    python manage.py tune_thresholds [--site NAME] [--recall 0.95] [--min-confirmed 5]

Prints, per site, camera, zone and event type, the threshold in force, the suggestion at the chosen
recall of confirmed alerts (detection.learning.thresholds) and what it would have changed on the
past alerts. It changes nothing: a manager applies a suggestion in the admin (Learned models >
Threshold suggestions), which is audited.
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cameras.models import Site
from detection.learning.thresholds import DEFAULT_RECALL, MIN_CONFIRMED
from detection.learning.tuning import suggestion_text, threshold_suggestions


class Command(BaseCommand):
    help = ("Suggest per-zone thresholds from the score distributions of confirmed and dismissed alerts, at a "
            "chosen recall of confirmed alerts, with what each would have changed. Changes nothing.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", help="only this site (default: every site)")
        parser.add_argument("--recall", type=float, default=DEFAULT_RECALL,
                            help=f"share of confirmed alerts a suggestion must keep, above 0 up to 1 (default "
                                 f"{DEFAULT_RECALL})")
        parser.add_argument("--min-confirmed", type=int, default=MIN_CONFIRMED,
                            help=f"confirmed alerts a group needs for a suggestion (default {MIN_CONFIRMED})")

    def handle(self, *args: Any, site: str | None, recall: float, min_confirmed: int, **options: Any) -> None:
        if not 0.0 < recall <= 1.0:
            raise CommandError(f"--recall must be above 0 and at most 1, not {recall}")
        if min_confirmed < 1:
            raise CommandError("--min-confirmed must be at least 1")
        sites = Site.objects.order_by("name")
        if site is not None:
            sites = sites.filter(name=site)
            if not sites.exists():
                known = ", ".join(Site.objects.values_list("name", flat=True)[:20]) or "none yet"
                raise CommandError(f"No site named '{site}' (known sites: {known}).")
        for row in sites:
            groups = threshold_suggestions(site=row, recall=recall, min_confirmed=min_confirmed)
            self.stdout.write(self.style.MIGRATE_HEADING(f"{row.name}: keeping {recall:.0%} of confirmed alerts"))
            if not groups:
                self.stdout.write("  no reviewed alerts yet")
            for group in groups:
                text = "  " + suggestion_text(group)
                self.stdout.write(self.style.SUCCESS(text) if group.suggestion.suggested is not None else text)
        self.stdout.write("Apply a suggestion in the admin: Learned models > Threshold suggestions (audited).")
