"""python manage.py run_detectors [--site NAME] [--camera NAME ...] [--processes N] [--shard I/N] [--duration S]"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from detection.detectors.base import DetectorConfigError
from detection.metrics import serve_metrics
from detection.supervisor import Selection, Supervisor

_SHARD = re.compile(r"^(\d+)/(\d+)$")


class Command(BaseCommand):
    help = "Capture, detect and record clips for the enabled cameras until stopped (SIGTERM or Ctrl-C)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", help="Only the cameras of this site.")
        parser.add_argument("--camera", action="append", default=[], help="Only this camera (repeatable).")
        parser.add_argument("--processes", type=int, default=1, help="Spread the cameras over N processes.")
        parser.add_argument("--shard", default="0/1",
                            help="I/N: own the cameras whose id modulo N is I (split cameras between machines).")
        parser.add_argument("--duration", type=float, help="Stop after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        match = _SHARD.match(options["shard"])
        if not match or not int(match.group(1)) < int(match.group(2)):
            raise CommandError(f"--shard '{options['shard']}': expected I/N with 0 <= I < N, e.g. 0/2.")
        shard, shards = int(match.group(1)), int(match.group(2))
        if options["processes"] < 1:
            raise CommandError("--processes must be 1 or more.")
        if options["processes"] > 1:
            return self._spawn(options, shard, shards)

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        selection = Selection(site=options["site"], cameras=tuple(options["camera"]), shard=shard, shards=shards)
        supervisor = Supervisor(selection, stop=stop, sweep=shard == 0)
        port = settings.DETECTOR_METRICS_PORT
        if port:
            serve_metrics(supervisor, port=port + shard)  # one port per shard, so --processes N don't collide
        try:
            supervisor.run(duration=options["duration"])
        except DetectorConfigError as exc:
            raise CommandError(str(exc)) from None

    def _spawn(self, options: dict[str, Any], shard: int, shards: int) -> None:
        """N child processes, each a shard of this one's cameras; signals are passed on."""
        count = options["processes"]
        base = [sys.executable, sys.argv[0], "run_detectors"]
        for flag in ("site", "duration"):
            if options[flag] is not None:
                base += [f"--{flag}", str(options[flag])]
        for camera in options["camera"]:
            base += ["--camera", camera]
        children = [
            subprocess.Popen(base + ["--shard", f"{shard + i * shards}/{shards * count}"]) for i in range(count)
        ]

        def forward(signum: int, _frame: Any) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
        codes = [child.wait() for child in children]
        if any(codes):
            raise CommandError(f"detector processes exited with {codes}")
