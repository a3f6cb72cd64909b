"""python manage.py verify_audit: walk the audit log's hash chain and name the first broken link."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.audit import audit_verify


class Command(BaseCommand):
    help = ("Check the audit log: every entry's hash, its link to the one before, no gaps, the head, and that the "
            "clip access log agrees with it. Exits non-zero naming the first broken link. Note the head hash it "
            "prints somewhere else (a ticket, an e-mail): it pins the log up to now.")

    def handle(self, *args: Any, **options: Any) -> None:
        check = audit_verify()
        self.stdout.write(f"{check.entries} audit entries; head #{check.head_seq} {check.head_hash or '(none yet)'}")
        if check.accesses_before_chain:
            self.stdout.write(f"{check.accesses_before_chain} clip access row(s) predate the audit log and have no "
                              "entry in it (not a failure; this number should never grow).")
        if check.problem:
            raise CommandError(f"audit log broken at {check.problem}")
        self.stdout.write("audit log intact")
