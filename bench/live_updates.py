"""Figure 8: a new alert on every open list page within 1 s, and what the polling costs the server.

    .venv/bin/python -m bench.live_updates [--quick]

Why polling: gunicorn's sync workers (2, as in the Procfile) serve one request at a time, so a
long-lived connection (server-sent events, a long poll) would hold a whole worker per open page:
two open pages would take the dashboard down. A short poll holds a worker for milliseconds. The
page asks /alerts/poll/ every DASHBOARD_POLL_SECONDS (0.5 s), and when nothing is new the answer
is one primary-key probe and no rendering.

Everything is real: a database of its own on the local PostgreSQL (`bench_live`, dropped
afterwards), gunicorn with 2 sync workers serving production settings, and N viewers, each with a
session of its own, polling over HTTP exactly as static/js/dashboard.js does (after=<latest id>,
pending=<rows whose clip is not final yet>). A writer in this process creates an alert every
ALERT_EVERY seconds (status "recording") and marks its clip ready 0.8 s later, as the detectors and
workers would; meanwhile each page also asks about its pending row, the poll's dearer path.

  visible   the first poll response that carries the new row, minus the moment the row was
            committed (both clocks are this process's)
  cost      CPU seconds of gunicorn (master and workers, from /proc) per second of the run and
            per poll, and the poll's response time; and the same with no new alert at all (the
            usual state of a store's dashboard: "nothing new", one query)

Baseline (same run): the same viewers polling every 5 s, the previous default.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from typing import Any

from bench._support import (
    HttpClient,
    apply_env,
    collectstatic,
    django_env,
    pg_database,
    print_result,
    process_cpu,
    run_child,
    sigterm_raises,
    start_gunicorn,
    stop,
    temp_dir,
)
from bench.common import percentile

DB_NAME = "bench_live"
GOAL_SECONDS = 1.0
FAST, SLOW = 0.5, 5.0
ALERT_EVERY = 3.0


class Viewer(threading.Thread):
    def __init__(self, port: int, session: str, after: int, interval: float, stop_at: float) -> None:
        super().__init__(daemon=True)
        self.client = HttpClient(port, session=session)
        self.after, self.interval, self.stop_at = after, interval, stop_at
        self.pending: set[int] = set()
        self.seen: dict[int, float] = {}
        self.response_ms: list[float] = []
        self.errors = 0

    def run(self) -> None:
        while time.time() < self.stop_at:
            started = time.time()
            try:
                status, body = self.client.get(
                    f"/alerts/poll/?after={self.after}&pending={','.join(map(str, sorted(self.pending)))}")
                now = time.time()
                self.response_ms.append(1000 * (now - started))
                if status != 200:
                    self.errors += 1
                else:
                    data = json.loads(body)
                    for alert_id in map(int, re.findall(r'data-id="(\d+)"', data["new_html"])):
                        self.seen.setdefault(alert_id, now)
                    for row in [data["new_html"], *data["updated"].values()]:
                        for alert_id, pending in re.findall(r'data-id="(\d+)"[^>]*?( data-pending)?>', row):
                            (self.pending.add if pending else self.pending.discard)(int(alert_id))
                    self.after = max(self.after, int(data["latest_id"]))
            except (OSError, ValueError):
                self.errors += 1
            time.sleep(max(0.0, started + self.interval - time.time()))
        self.client.close()


def gunicorn_cpu(master: int) -> float:
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return process_cpu(master) + sum(process_cpu(int(pid)) for pid in workers)


def run_case(port: int, master: int, sessions: list[str], interval: float, seconds: float,
             alerts: bool = True) -> dict[str, Any]:
    from alerts.models import Alert, ClipStatus
    from cameras.models import Camera
    from tests.support.factories import make_alert

    camera = Camera.objects.get()
    after = Alert.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    stop_at = time.time() + seconds
    viewers = [Viewer(port, session, after, interval, stop_at) for session in sessions]
    cpu_before, started = gunicorn_cpu(master), time.time()
    for viewer in viewers:
        viewer.start()
        time.sleep(interval / len(viewers))  # open pages are not in step
    created: dict[int, float] = {}
    while alerts and time.time() < stop_at - max(interval, 1.0) - 1.0:
        alert = make_alert(camera, clip_status=ClipStatus.RECORDING)
        created[alert.pk] = time.time()
        time.sleep(0.8)
        Alert.objects.filter(pk=alert.pk).update(clip_status=ClipStatus.READY)
        time.sleep(ALERT_EVERY - 0.8)
    for viewer in viewers:
        viewer.join(interval + 10)
    elapsed, cpu = time.time() - started, gunicorn_cpu(master) - cpu_before
    visible = [v.seen[pk] - at for v in viewers for pk, at in created.items() if pk in v.seen]
    missed = sum(1 for v in viewers for pk in created if pk not in v.seen)
    polls = sum(len(v.response_ms) for v in viewers)
    responses = [ms for v in viewers for ms in v.response_ms]
    return {
        "viewers": len(viewers), "interval_s": interval, "alerts": len(created), "missed": missed,
        "errors": sum(v.errors for v in viewers), "polls_per_s": round(polls / elapsed, 1),
        "visible_p50_ms": round(1000 * percentile(visible, 50), 1) if visible else math.nan,
        "visible_p95_ms": round(1000 * percentile(visible, 95), 1) if visible else math.nan,
        "visible_max_ms": round(1000 * max(visible), 1) if visible else math.nan,
        "response_p50_ms": round(percentile(responses, 50), 1), "response_p95_ms": round(percentile(responses, 95), 1),
        "server_cores": round(cpu / elapsed, 3), "server_cpu_ms_per_poll": round(1000 * cpu / max(polls, 1), 2),
    }


def measure(quick: bool) -> dict[str, Any]:
    sigterm_raises()
    seconds = 20.0 if quick else 45.0
    counts = [10, 30] if quick else [10, 30]
    tmp = temp_dir("bench-live-")
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        database_url = cleanup.enter_context(pg_database(DB_NAME))
        from tests.support.rtsp import free_port

        port = free_port()
        env = django_env(database_url=database_url, data_dir=tmp, process="manage")
        apply_env(env)
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0)
        cleanup.callback(connections.close_all)
        from django.test import Client

        from cameras.models import Role
        from tests.support.factories import make_alert, make_camera, make_site, make_user

        site = make_site("Bench St")
        camera = make_camera(site, "Aisle 1")
        for _ in range(200):  # a list with history
            make_alert(camera)
        sessions = []
        for n in range(max(counts)):
            client = Client()
            client.force_login(make_user(f"viewer{n}", site=site, role=Role.VIEWER))
            sessions.append(client.cookies["sessionid"].value)
        collectstatic(env)
        web = start_gunicorn(env, port=port, workers=2, log=tmp / "web.out")
        cleanup.callback(stop, web)
        results: dict[str, Any] = {"seconds": seconds}
        for count in counts:
            for interval in (FAST, SLOW):
                case = run_case(port, web.pid, sessions[:count], interval, seconds)
                for key, value in case.items():
                    results[f"n{count}_{'fast' if interval == FAST else 'slow'}_{key}"] = value
            idle = run_case(port, web.pid, sessions[:count], FAST, seconds / 2, alerts=False)
            results[f"n{count}_idle_server_cores"] = idle["server_cores"]
            results[f"n{count}_idle_server_cpu_ms_per_poll"] = idle["server_cpu_ms_per_poll"]
            results[f"n{count}_idle_response_p95_ms"] = idle["response_p95_ms"]
        return results


def run(quick: bool = False) -> dict[str, Any]:
    return run_child("live_updates", *(["--quick"] if quick else []), timeout=900)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    counts = sorted({int(k.split("_")[0][1:]) for k in results if re.match(r"n\d+_fast_viewers", k)})
    for n in counts:
        fast = {k.split("_", 2)[2]: v for k, v in results.items() if k.startswith(f"n{n}_fast_")}
        slow = {k.split("_", 2)[2]: v for k, v in results.items() if k.startswith(f"n{n}_slow_")}
        p95 = fast.get("visible_p95_ms", math.nan)
        out.append({
            "figure": "8",
            "name": f"New alert to visible on {n} open list pages (poll every {FAST:g} s, gunicorn 2 sync workers + "
                    f"PostgreSQL; an alert every {ALERT_EVERY:g} s, {fast.get('alerts')} in all, each shown on every page)",
            "measured": f"p50 {fast.get('visible_p50_ms', math.nan):.0f} ms, p95 {p95:.0f} ms, max "
                        f"{fast.get('visible_max_ms', math.nan):.0f} ms; server {fast.get('server_cores', math.nan):.3f} "
                        f"cores = {fast.get('server_cpu_ms_per_poll', math.nan):.2f} CPU-ms per poll at "
                        f"{fast.get('polls_per_s', 0)} polls/s (response p50 {fast.get('response_p50_ms', math.nan):.0f} "
                        f"ms, p95 {fast.get('response_p95_ms', math.nan):.0f} ms); missed {fast.get('missed')}, "
                        f"errors {fast.get('errors')}",
            "baseline": f"every {SLOW:g} s (the old default): p95 {slow.get('visible_p95_ms', math.nan):.0f} ms; server "
                        f"{slow.get('server_cores', math.nan):.3f} cores ({slow.get('polls_per_s', 0)} polls/s). With no "
                        f"new alert (every {FAST:g} s): {results.get(f'n{n}_idle_server_cores', math.nan):.3f} cores = "
                        f"{results.get(f'n{n}_idle_server_cpu_ms_per_poll', math.nan):.2f} CPU-ms per poll, response p95 "
                        f"{results.get(f'n{n}_idle_response_p95_ms', math.nan):.0f} ms",
            "ratio": "", "goal": "p95 <= 1 s",
            "met": math.isfinite(p95) and p95 <= 1000 * GOAL_SECONDS and not fast.get("missed") and not fast.get("errors"),
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as one line (for the runner)")
    args = parser.parse_args()
    figures = measure(args.quick)
    if args.json:
        print_result(figures)
    else:
        for row in rows(figures):
            print(f"{row['name']}\n  {row['measured']}\n  baseline: {row['baseline']}\n  met: {row['met']}")


if __name__ == "__main__":
    main()
