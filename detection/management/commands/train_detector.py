"""train_detector: learn a per-site model from the reviewed alerts, and deploy it if it beats the rules.

    python manage.py train_detector [--site NAME] [--min-examples 50] [--folds 4] [--user NAME]

Each site (or only the named one) is one run of detection.learning.train.train_site; its report is
printed in plain words. A refused run (too few examples, or a model that does not beat the rule
scores on held-out alerts) is recorded too, and says why; the command still exits 0, since refusing
is the gate doing its job. Bad arguments exit non-zero.
"""
from __future__ import annotations

from typing import Any

import torch
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cameras.models import Site
from detection.learning.evaluation import DEFAULT_FOLDS
from detection.learning.model import TrainConfig
from detection.learning.train import DEFAULT_MIN_EXAMPLES, train_site


class Command(BaseCommand):
    help = ("Train each site's model on its reviewed alerts (confirmed or dismissed, with a person track), "
            "evaluate it on alerts held out by time against the rule scores, and deploy it only if it beats them.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", help="only this site (default: every site)")
        parser.add_argument("--min-examples", type=int, default=DEFAULT_MIN_EXAMPLES,
                            help=f"refuse to train with fewer reviewed alerts (default {DEFAULT_MIN_EXAMPLES})")
        parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                            help=f"time-ordered cross-validation folds (default {DEFAULT_FOLDS})")
        parser.add_argument("--seed", type=int, default=0, help="random seed (the same data and seed give the same model)")
        parser.add_argument("--user", help="the login recorded as having trained it (and in the audit log)")

    def handle(self, *args: Any, site: str | None, min_examples: int, folds: int, seed: int, user: str | None,
               **options: Any) -> None:
        if min_examples < 1:
            raise CommandError("--min-examples must be at least 1")
        if folds < 2:
            raise CommandError("--folds must be at least 2")
        sites = Site.objects.order_by("name")
        if site is not None:
            sites = sites.filter(name=site)
            if not sites.exists():
                known = ", ".join(Site.objects.values_list("name", flat=True)[:20]) or "none yet"
                raise CommandError(f"No site named '{site}' (known sites: {known}).")
        trainer = None
        if user is not None:
            trainer = User.objects.filter(username=user).first()
            if trainer is None:
                raise CommandError(f"No login named '{user}'.")
        torch.set_num_threads(int(settings.TORCH_THREADS))
        for row in sites:
            outcome = train_site(site=row, min_examples=min_examples, folds=folds, config=TrainConfig(seed=seed),
                                 user=trainer)
            for line in outcome.text.splitlines():
                if line.startswith("Deployed"):
                    line = self.style.SUCCESS(line)
                elif line.startswith("Not deployed"):
                    line = self.style.WARNING(line)
                self.stdout.write(line)
            self.stdout.write("")
