"""Figure 5p: person events, from the frame that completes the evidence to the alert row.

    .venv/bin/python -m bench.person_latency [--quick]

Everything runs as bench.latency runs it (whose viewer, helpers and deployment this reuses): its
own PostgreSQL database (`bench_person_latency`, dropped afterwards), Redis, a Celery worker
building the clips, gunicorn serving the dashboard to a viewer who polls it, and a real
`run_detectors` process with production settings and the person detector (the default: 960x540
frames, NanoDet, tracker, BlazePose at the shelf, behaviour rules; 2 ONNX Runtime threads).

The cameras show the demo shop (cameras/demo: the store picture, a real photograph of a person,
the demo camera's zones with their kinds) as 720p25 H.264 files served by GStreamer's RTSP server.
Once every CYCLE seconds the shopper walks in, stands at the shelf, walks past the checkout to the
exit and leaves (scene.person_box, played faster for a 10 s cycle), which raises
exit_without_checkout; the cameras are out of phase. DEDUP_WINDOW_SECONDS=1 and
EVENT_QUIET_SECONDS=1 let every visit raise an alert, as in bench.latency.

The frame that completes the evidence is the sampled frame whose detection makes K of the last N
samples high (detection.inference.events: the event's `last_high` when it starts). The alert row does not
keep it, so the detector process is `run_detectors` run through call_command by this module with
one addition: RuleEngine.process is wrapped to print each started event's start, last_high and
the time the rules returned it. Each alert is matched to its event by camera, type and start.

  frame to alert row   detected_at (stamped by the emitter when it inserts the row) minus that
                       frame's captured_at (the receive time of the packet that carried it)
  split                frame to the rules' decision (decode, latest-frame slot, the batch through
                       the detector) and decision to row (recorder queue, writer, thumbnail, insert)
  baseline             event start (the first high sample) to alert row: adds the K-of-N wait
  visible              the first poll of the dashboard's live-update endpoint showing the alert
                       (every POLL_SECONDS), minus detected_at: what a viewer adds on top
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench._support import (
    PYTHON,
    apply_env,
    collectstatic,
    django_env,
    pg_database,
    print_result,
    run_child,
    sigterm_raises,
    spawn,
    start_gunicorn,
    stop,
    temp_dir,
    wait_for,
)
from bench.common import percentile
from bench.latency import POLL_SECONDS, Poller

GOAL_SECONDS = 1.0
CAMERAS = 4
CYCLE = 10.0  # seconds between the shopper's visits on one camera
FIRST_VISIT = 2.0  # camera 0's shopper walks in 2 s into the file; the others follow CYCLE / CAMERAS apart
SCENE_SECONDS = 80  # longer than the full run's detection time: the file plays once per client
SCENE_SIZE, SCENE_KBPS = (1280, 720), 2000
DB_NAME = "bench_person_latency"
EVENT_PREFIX = "BENCH-EVENT "


def scene_file(camera: int) -> Path:
    """The camera's demo-shop video (cached), its visits out of phase with the other cameras'."""
    from bench.person_capacity import scene_video
    from cameras.demo import scene

    offset = FIRST_VISIT + camera * CYCLE / CAMERAS

    def box_at(t: float) -> Any:
        return scene.person_box(t - offset, CYCLE) if t >= offset else None

    return scene_video(f"demo-c{CYCLE:g}-o{offset:.2f}", box_at, size=SCENE_SIZE, seconds=SCENE_SECONDS,
                       kbps=SCENE_KBPS)


def setup_world(urls: list[str]) -> str:
    """Site, person-detector cameras with the demo zones, a viewer with a session. Returns the session key."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from cameras.demo import scene
    from cameras.models import Camera, Role, Site, SiteMembership, Zone

    site = Site.objects.create(name="Bench St", time_zone="Europe/London")
    for n, url in enumerate(urls, start=1):
        camera = Camera.objects.create(site=site, name=f"Aisle {n}", channel=n, stream_url=url, detector="person")
        for name, kind, polygon in scene.ZONES:
            Zone.objects.create(camera=camera, name=name, kind=kind, polygon=polygon)
    viewer = get_user_model().objects.create_user(username="viewer", password="bench-password-123")
    SiteMembership.objects.create(user=viewer, site=site, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return str(client.cookies["sessionid"].value)


def run_detectors(duration: float) -> None:
    """`manage.py run_detectors --duration N`, with each started event printed (see the docstring)."""
    import django

    sigterm_raises()
    django.setup()
    from django.core.management import call_command

    from detection.inference.events import EventPhase, RuleEngine

    process = RuleEngine.process

    def reporting(self: RuleEngine, camera_id: int, at: float, detections: Any, image: Any = None) -> Any:
        events = process(self, camera_id, at, detections, image=image)
        for event in events:
            if event.phase is EventPhase.STARTED:
                print(EVENT_PREFIX + json.dumps({
                    "camera_id": event.camera_id, "event_type": event.event_type, "zone": event.zone_name,
                    "start": event.start, "last_high": event.last_high, "decided": time.time()}), flush=True)
        return events

    RuleEngine.process = reporting  # type: ignore[method-assign]
    call_command("run_detectors", "--duration", f"{duration:g}")


def measure(quick: bool, keep: bool = False) -> dict[str, Any]:
    """The whole run, in this (child) process: its settings point at the benchmark's own services."""
    from tests.support.processes import RedisServer
    from tests.support.rtsp import RtspServer, file_mount, free_port

    sigterm_raises()
    detect_seconds = 30.0 if quick else 60.0
    videos = [scene_file(n) for n in range(CAMERAS)]
    tmp = temp_dir("bench-person-latency-")
    if keep:
        print(f"working folder (kept): {tmp}", flush=True)
    with ExitStack() as cleanup:
        if not keep:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        database_url = cleanup.enter_context(pg_database(DB_NAME, keep=keep))
        redis_port, web_port = free_port(), free_port()
        broker = f"redis://127.0.0.1:{redis_port}/0"
        env = django_env(database_url=database_url, data_dir=tmp, process="manage", CELERY_BROKER_URL=broker,
                         REDIS_URL=broker, DEDUP_WINDOW_SECONDS="1", EVENT_QUIET_SECONDS="1", DETECTOR="person")
        apply_env(env)
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0)
        cleanup.callback(connections.close_all)  # before the database is dropped

        server = RtspServer([file_mount(f"/cam{n}", video) for n, video in enumerate(videos)]).start()
        cleanup.callback(server.stop)
        session = setup_world([server.url(f"/cam{n}") for n in range(CAMERAS)])

        redis = RedisServer(redis_port, tmp)
        redis.start()
        cleanup.callback(redis.stop)
        worker_log = tmp / "worker.out"
        worker = spawn([PYTHON, "-m", "celery", "-A", "shoplift", "worker", "--pool", "prefork", "--concurrency", "2",
                        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                       env={**env, "SHOPLIFT_PROCESS": "worker"}, log=worker_log)
        cleanup.callback(stop, worker, timeout=15)
        collectstatic(env)
        web = start_gunicorn(env, port=web_port, workers=2, log=tmp / "web.out")
        cleanup.callback(stop, web)
        wait_for(lambda: b"ready." in worker_log.read_bytes(), 60, "celery worker ready", interval=0.2)

        poller = Poller(web_port, session, 0).start()
        cleanup.callback(poller.stop)
        detectors_log = tmp / "detectors.out"
        detectors = spawn([PYTHON, "-m", "bench.person_latency", "--run-detectors", "--duration", f"{detect_seconds:g}"],
                          env={**env, "SHOPLIFT_PROCESS": "detectors"}, log=detectors_log)
        cleanup.callback(stop, detectors)
        detectors.wait(detect_seconds + 60)

        from alerts.models import Alert

        def all_seen() -> bool:
            return all(pk in poller.seen for pk in Alert.objects.values_list("pk", flat=True))

        try:
            wait_for(all_seen, 20, "every alert seen by the poller", interval=0.25)
        except TimeoutError as exc:
            print(f"warning: {exc}", flush=True)
        poller.stop()
        alerts = list(Alert.objects.order_by("pk"))
        detectors_text = detectors_log.read_text(errors="replace")
        worker_text = worker_log.read_text(errors="replace")
        return figures(alerts, poller, detectors_text, worker_text, quick=quick, seconds=detect_seconds)


def started_events(detectors_text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len(EVENT_PREFIX):]) for line in detectors_text.splitlines() if line.startswith(EVENT_PREFIX)]


def figures(alerts: list[Any], poller: Poller, detectors_text: str, worker_text: str, *, quick: bool,
            seconds: float) -> dict[str, Any]:
    events = started_events(detectors_text)
    frame_to_row, to_decision, decision_to_row, start_to_row, visible, frame_to_visible = [], [], [], [], [], []
    unmatched = 0
    for alert in alerts:
        start = alert.event_start.timestamp()
        event = next((e for e in events if e["camera_id"] == alert.camera_id and e["event_type"] == alert.event_type
                      and abs(e["start"] - start) < 0.002), None)
        row = alert.detected_at.timestamp()
        start_to_row.append(row - start)
        if alert.pk in poller.seen:
            visible.append(poller.seen[alert.pk] - row)
        if event is None:
            unmatched += 1
            continue
        frame_to_row.append(row - event["last_high"])
        to_decision.append(event["decided"] - event["last_high"])
        decision_to_row.append(row - event["decided"])
        if alert.pk in poller.seen:
            frame_to_visible.append(poller.seen[alert.pk] - event["last_high"])
    errors = re.findall(r"(?m)^.*\b(ERROR|Traceback)\b.*$", detectors_text + worker_text)

    def ms(values: list[float], q: float) -> float:
        return round(1000 * percentile(values, q), 1) if values else math.nan

    return {
        "cameras": CAMERAS,
        "cycle_s": CYCLE,
        "detect_seconds": seconds,
        "events_started": len(events),
        "alerts": len(alerts),
        "alerts_matched": len(frame_to_row),
        "alerts_unmatched": unmatched,
        "suppressed": len(re.findall(r"alert suppressed", detectors_text)),
        "event_types": " ".join(f"{k}={v}" for k, v in sorted(Counter(a.event_type for a in alerts).items())),
        "frame_to_row_p50_ms": ms(frame_to_row, 50),
        "frame_to_row_p95_ms": ms(frame_to_row, 95),
        "frame_to_row_max_ms": ms(frame_to_row, 100),
        "frame_to_decision_p50_ms": ms(to_decision, 50),
        "frame_to_decision_p95_ms": ms(to_decision, 95),
        "decision_to_row_p50_ms": ms(decision_to_row, 50),
        "decision_to_row_p95_ms": ms(decision_to_row, 95),
        "start_to_row_p50_ms": ms(start_to_row, 50),
        "start_to_row_p95_ms": ms(start_to_row, 95),
        "visible_after_row_p50_ms": ms(visible, 50),
        "visible_after_row_p95_ms": ms(visible, 95),
        "frame_to_visible_p50_ms": ms(frame_to_visible, 50),
        "frame_to_visible_p95_ms": ms(frame_to_visible, 95),
        "poll_interval_ms": round(1000 * POLL_SECONDS),
        "poll_errors": len(poller.errors),
        "error_lines": len(errors),
        "quick": int(quick),
    }


def run(quick: bool = False) -> dict[str, float | int | str]:
    return run_child("person_latency", *(["--quick"] if quick else []), timeout=400)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    def get(key: str) -> float:
        value = results.get(key, math.nan)
        return value if isinstance(value, (int, float)) else math.nan

    n = results.get("alerts_matched", 0)
    p95 = get("frame_to_row_p95_ms")
    return [
        {"figure": "5p",
         "name": f"Person event: frame completing the evidence (K-of-N) to alert row ({n} alerts of "
                 f"{results.get('cameras', CAMERAS)} 720p cameras, run_detectors with the person detector: "
                 f"{results.get('event_types', '')})",
         "measured": f"p50 {get('frame_to_row_p50_ms'):.0f} ms, p95 {p95:.0f} ms (max {get('frame_to_row_max_ms'):.0f}); "
                     f"frame to the rules' decision p50 {get('frame_to_decision_p50_ms'):.0f} / p95 "
                     f"{get('frame_to_decision_p95_ms'):.0f} ms, decision to row p50 "
                     f"{get('decision_to_row_p50_ms'):.0f} / p95 {get('decision_to_row_p95_ms'):.0f} ms",
         "baseline": f"event start (first high sample) to row: p50 {get('start_to_row_p50_ms'):.0f} ms, p95 "
                     f"{get('start_to_row_p95_ms'):.0f} ms (adds the K-of-N wait); row to visible on the dashboard "
                     f"(polled every {results.get('poll_interval_ms', 0):.0f} ms): p50 "
                     f"{get('visible_after_row_p50_ms'):.0f} ms, p95 {get('visible_after_row_p95_ms'):.0f} ms",
         "ratio": "", "goal": "p95 < 1 s",
         "met": math.isfinite(p95) and p95 < 1000 * GOAL_SECONDS and n >= 5},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="measure in this process; print one JSON line")
    parser.add_argument("--keep", action="store_true", help="with --json: keep the database and the log folder")
    parser.add_argument("--run-detectors", action="store_true", help=argparse.SUPPRESS)  # the detector process
    parser.add_argument("--duration", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_detectors:
        run_detectors(args.duration)
    elif args.json:
        print_result(measure(args.quick, keep=args.keep))
    else:
        print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
