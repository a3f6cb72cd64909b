"""Figure 9: the live camera wall: what a live picture costs the detectors, and how fast the web serves it.

    .venv/bin/python -m bench --only live_wall          (or: .venv/bin/python -m bench.live_wall [--quick])

Everything real: a Redis server of its own (redis-server on a free port), a SQLite database of its
own (migrated; a site, 16 cameras, a viewer), the demo shop's photograph with a person in it.

Detector side, 16 cameras. The publisher as built (detection.live.LivePublisher, its own thread):
each camera's person-detector frame (960x540) offered at 5 fps, as the inference loop does; once a
second the newest is scaled to 640 px, the person's box drawn, JPEG quality 70, all cameras in one
Redis round trip. CPU is the publisher thread's own (schedstat), per picture and per camera-second.
Baselines in the same run, measured the same way:
  full res   the same publisher given the camera's own 1920x1080 frame at OpenCV's default quality
             (95), no scaling: what "just send the frame" costs
  database   the 640 px JPEG written to a database row per picture (SQLite, the first-run default:
             INSERT OR REPLACE and a commit), CPU and wall time per write, instead of Redis
Also the inference loop's own cost per frame (`offer`: a dict write under a lock).

Web side: gunicorn with 2 sync workers (as in the Procfile), production settings, a viewer's
session over HTTP keep-alive. GET /cameras/<id>/live.jpg alone, one request at a time (p50/p95),
for the 640 px picture and for a full-resolution one (the naive picture through the same view);
then 4 walls of 16 tiles, each tile once a second (64 requests/s, paced), p50/p95 and gunicorn's
CPU per request.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench._support import (
    HttpClient,
    apply_env,
    django_env,
    print_result,
    process_cpu,
    run_child,
    sigterm_raises,
    start_gunicorn,
    stop,
    temp_dir,
    thread_cpu,
)
from bench.common import percentile, ratio_text

CAMERAS = 16
OFFER_FPS = 5.0
WEB_WORKERS = 2
WALLS = 4  # control-room screens or staff with the Cameras page open, each showing every camera
FULL = (1920, 1080)
DETECT = (960, 540)
PERSON_T = 8.0  # seconds into the demo scene: the shopper stands at the shelf


def scene_frames() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """(full-resolution frame, person-detector frame, the person's box) from the demo shop."""
    from cameras.demo import scene
    from tests.support.video import demo_scene_frame

    return demo_scene_frame(PERSON_T, size=FULL), demo_scene_frame(PERSON_T, size=DETECT), scene.person_box(PERSON_T)


# --- Detector side --------------------------------------------------------------------------------

def publisher_cpu(redis_url: str, image: np.ndarray, box: tuple[float, float, float, float], *, width: int,
                  quality: int, seconds: float) -> dict[str, float]:
    """Run a LivePublisher thread for `seconds` with CAMERAS cameras offered at OFFER_FPS.
    Returns its CPU per picture (ms), per camera-second (core-s/s) and the bytes per picture."""
    from cameras.live import live_client, live_frame_get
    from detection.capture.stream import SampledFrame
    from detection.live import LivePerson, LivePublisher

    stop_event = threading.Event()
    publisher = LivePublisher(stop=stop_event, redis_url=redis_url, interval=1.0, width=width, quality=quality)
    people = (LivePerson(box),)
    height, source_width = image.shape[:2]
    offers: list[float] = []

    def feed() -> None:  # the inference loop's side: every camera's newest frame, at the detection rate
        while not stop_event.is_set():
            for camera_id in range(1, CAMERAS + 1):
                frame = SampledFrame(camera_id=camera_id, image=image, captured_at=time.time(),
                                     source_width=source_width, source_height=height)
                started = time.perf_counter_ns()
                publisher.offer(frame, people)
                offers.append(time.perf_counter_ns() - started)
            stop_event.wait(1.0 / OFFER_FPS)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    publisher.start()
    thread = publisher._thread
    assert thread is not None and thread.native_id is not None
    time.sleep(1.5)  # the first round (connection, first encodes) is not the steady state
    cpu0, published0 = thread_cpu(thread.native_id), publisher.stats.published
    time.sleep(seconds)
    cpu1, published1 = thread_cpu(thread.native_id), publisher.stats.published
    stop_event.set()
    feeder.join(5)
    if not publisher.join(5):
        raise RuntimeError("the publisher thread did not stop")
    pictures = published1 - published0
    if pictures <= 0 or publisher.stats.dropped:
        raise RuntimeError(f"publisher: {pictures} pictures published, {publisher.stats.dropped} dropped")
    sample = live_frame_get(live_client(redis_url), 1)
    assert sample is not None
    per_picture = (cpu1 - cpu0) / pictures
    return {"ms_per_picture": 1000 * per_picture, "core_per_camera": per_picture / publisher.interval,
            "bytes": len(sample.jpeg), "pictures": pictures, "offer_us": statistics.median(offers) / 1000}


def database_write(path: Path, jpeg: bytes, *, writes: int) -> dict[str, float]:
    """A picture per camera per second as a database row: INSERT OR REPLACE + commit, per picture."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS bench_live_picture "
                           "(camera_id INTEGER PRIMARY KEY, captured_at REAL, jpeg BLOB)")
        connection.commit()
        walls, cpus = [], []
        for n in range(writes):
            cpu, wall = time.thread_time(), time.perf_counter()
            connection.execute("INSERT OR REPLACE INTO bench_live_picture VALUES (?, ?, ?)",
                               (n % CAMERAS + 1, time.time(), jpeg))
            connection.commit()
            cpus.append(time.thread_time() - cpu)
            walls.append(time.perf_counter() - wall)
    finally:
        connection.close()
    return {"cpu_ms": 1000 * statistics.mean(cpus), "wall_p50_ms": 1000 * percentile(walls, 50),
            "wall_p95_ms": 1000 * percentile(walls, 95)}


# --- Web side -------------------------------------------------------------------------------------

def gunicorn_cpu(master: int) -> float:
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return process_cpu(master) + sum(process_cpu(int(pid)) for pid in workers)


def alone(port: int, session: str, path: str, requests: int) -> dict[str, float]:
    http = HttpClient(port, session=session)
    times, size = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        status, body = http.get(path)
        times.append(1000 * (time.perf_counter() - started))
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
        size = len(body)
    http.close()
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "bytes": size}


def walls(port: int, master: int, session: str, camera_ids: list[int], seconds: float) -> dict[str, float]:
    """WALLS pages, each asking for every camera's picture once a second (paced, not bunched)."""
    tiles = [(wall, camera_id) for wall in range(WALLS) for camera_id in camera_ids]
    times: list[float] = []
    failures = 0
    lock = threading.Lock()
    start = time.monotonic() + 0.5
    deadline = start + seconds

    def tile_loop(index: int, camera_id: int) -> None:
        nonlocal failures
        http = HttpClient(port, session=session)
        due = start + index / len(tiles)  # spread over the second, as independent tiles drift apart
        while due < deadline:
            time.sleep(max(0.0, due - time.monotonic()))
            started = time.perf_counter()
            status, _ = http.get(f"/cameras/{camera_id}/live.jpg")
            elapsed = 1000 * (time.perf_counter() - started)
            with lock:
                times.append(elapsed)
                failures += status != 200
            due += 1.0
        http.close()

    threads = [threading.Thread(target=tile_loop, args=(i, camera_id), daemon=True)
               for i, (_, camera_id) in enumerate(tiles)]
    cpu0 = gunicorn_cpu(master)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    cpu1 = gunicorn_cpu(master)
    return {"load_p50_ms": percentile(times, 50), "load_p95_ms": percentile(times, 95),
            "load_requests": len(times), "load_rps": len(times) / seconds, "load_failures": failures,
            "web_cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, len(times))}


# --- The run --------------------------------------------------------------------------------------

def measure(quick: bool) -> dict[str, Any]:
    from tests.support.processes import RedisServer
    from tests.support.rtsp import free_port

    sigterm_raises()
    seconds = 6.0 if quick else 20.0
    tmp = temp_dir("bench-live-wall-")
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        redis_server = RedisServer(free_port(), tmp)
        redis_server.start()
        cleanup.callback(redis_server.stop)
        redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
        env = django_env(database_url=f"sqlite:///{tmp / 'bench.sqlite3'}", data_dir=tmp, process="manage",
                         REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url)
        apply_env(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        full, detect, box = scene_frames()
        figures: dict[str, Any] = {"cameras": CAMERAS, "measured_s": seconds}

        built = publisher_cpu(redis_url, detect, box, width=640, quality=70, seconds=seconds)
        naive = publisher_cpu(redis_url, full, box, width=FULL[0], quality=95, seconds=seconds)
        from detection.live import LivePerson, live_jpeg

        jpeg = live_jpeg(detect, (LivePerson(box),), width=640)
        database = database_write(tmp / "frames.sqlite3", jpeg, writes=100 if quick else 300)
        figures.update({
            "publisher_ms_per_picture": round(built["ms_per_picture"], 2),
            "publisher_core_per_camera": round(built["core_per_camera"], 5),
            "publisher_bytes": built["bytes"], "publisher_pictures": built["pictures"],
            "offer_us": round(built["offer_us"], 2),
            "full_res_ms_per_picture": round(naive["ms_per_picture"], 2),
            "full_res_core_per_camera": round(naive["core_per_camera"], 5), "full_res_bytes": naive["bytes"],
            "database_cpu_ms": round(database["cpu_ms"], 2), "database_wall_p50_ms": round(database["wall_p50_ms"], 2),
            "database_wall_p95_ms": round(database["wall_p95_ms"], 2),
        })

        from django.contrib.auth import get_user_model
        from django.test import Client

        from cameras.live import LiveFrame, live_client, live_frames_store
        from cameras.models import Camera, Role, Site, SiteMembership

        site = Site.objects.create(name="Bench St")
        cameras = [Camera.objects.create(site=site, name=f"Camera {n}", channel=n, stream_url=f"rtsp://10.0.0.5/ch{n}")
                   for n in range(1, CAMERAS + 2)]
        user = get_user_model().objects.create_user(username="viewer", password="bench-password-1234")
        SiteMembership.objects.create(user=user, site=site, role=Role.VIEWER)
        ok, big = cv2.imencode(".jpg", full, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        pictures = [LiveFrame(camera_id=c.pk, jpeg=jpeg, captured_at=time.time()) for c in cameras[:CAMERAS]]
        pictures.append(LiveFrame(camera_id=cameras[-1].pk, jpeg=big.tobytes(), captured_at=time.time()))
        live_frames_store(live_client(redis_url), pictures, ttl_seconds=3600)
        client = Client()
        client.force_login(user)
        session = client.cookies["sessionid"].value

        port = free_port()
        web = start_gunicorn(env, port=port, workers=WEB_WORKERS, log=tmp / "web.out")
        cleanup.callback(stop, web)
        requests = 100 if quick else 300
        alone(port, session, f"/cameras/{cameras[0].pk}/live.jpg", 20)  # warm both workers' imports and pools
        small = alone(port, session, f"/cameras/{cameras[0].pk}/live.jpg", requests)
        large = alone(port, session, f"/cameras/{cameras[-1].pk}/live.jpg", requests)
        load = walls(port, web.pid, session, [c.pk for c in cameras[:CAMERAS]], seconds)
        figures.update({
            "view_p50_ms": round(small["p50_ms"], 2), "view_p95_ms": round(small["p95_ms"], 2),
            "view_bytes": small["bytes"],
            "view_full_res_p50_ms": round(large["p50_ms"], 2), "view_full_res_p95_ms": round(large["p95_ms"], 2),
            "view_full_res_bytes": large["bytes"],
            **{key: round(value, 2) if isinstance(value, float) else value for key, value in load.items()},
            "walls": WALLS, "web_workers": WEB_WORKERS,
        })
        return figures


def run(quick: bool = False) -> dict[str, Any]:
    return run_child("live_wall", *(["--quick"] if quick else []), timeout=600)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    nan = math.nan
    built, full = results.get("publisher_ms_per_picture", nan), results.get("full_res_ms_per_picture", nan)
    per_camera = results.get("publisher_core_per_camera", nan)
    cores = os.cpu_count() or 2
    return [
        {"figure": "9", "name": f"Live picture CPU in the detector process, per camera at 1 picture/s "
                                f"({results.get('cameras')} cameras; 960x540 detection frame to 640 px JPEG q70 "
                                f"with the person's box, one Redis round trip per second)",
         "measured": f"{built:.2f} ms per picture = {100 * per_camera:.2f} % of a core per camera "
                     f"({results.get('publisher_bytes', 0) / 1024:.0f} KiB); the inference loop's hand-off "
                     f"{results.get('offer_us', nan):.1f} µs per frame",
         "baseline": f"full resolution (1920x1080, q95): {full:.2f} ms per picture "
                     f"({results.get('full_res_bytes', 0) / 1024:.0f} KiB); a database row per picture (SQLite "
                     f"commit): +{results.get('database_cpu_ms', nan):.2f} ms CPU, "
                     f"{results.get('database_wall_p50_ms', nan):.1f} ms wall p50, "
                     f"{results.get('database_wall_p95_ms', nan):.1f} ms p95",
         "ratio": ratio_text(full / built, "less CPU than full resolution") if built else "n/a",
         "goal": "none", "met": None},
        {"figure": "9", "name": f"GET /cameras/<id>/live.jpg on gunicorn x{results.get('web_workers')}, one "
                                f"client alone (login, site check, Redis read)",
         "measured": f"p50 {results.get('view_p50_ms', nan):.1f} ms, p95 {results.get('view_p95_ms', nan):.1f} ms "
                     f"({results.get('view_bytes', 0) / 1024:.0f} KiB)",
         "baseline": f"a full-resolution picture through the same view: p50 "
                     f"{results.get('view_full_res_p50_ms', nan):.1f} ms, p95 "
                     f"{results.get('view_full_res_p95_ms', nan):.1f} ms "
                     f"({results.get('view_full_res_bytes', 0) / 1024:.0f} KiB)",
         "ratio": ratio_text(results.get("view_full_res_p50_ms", nan) / results.get("view_p50_ms", nan), "faster")
                  if results.get("view_p50_ms") else "n/a",
         "goal": "none", "met": None},
        {"figure": "9", "name": f"{results.get('walls')} walls of {results.get('cameras')} tiles, each tile once a "
                                f"second ({cores} cores shared with the clients)",
         "measured": f"p50 {results.get('load_p50_ms', nan):.1f} ms, p95 {results.get('load_p95_ms', nan):.1f} ms at "
                     f"{results.get('load_rps', nan):.0f} req/s; web CPU {results.get('web_cpu_ms_per_request', nan):.1f} "
                     f"ms per picture served; {results.get('load_failures', 0)} failed",
         "baseline": "", "ratio": "", "goal": "none", "met": None},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="measure in this process; print one JSON line")
    args = parser.parse_args()
    if args.json:
        print_result(measure(args.quick))
    else:
        print(json.dumps(run_child("live_wall", *(["--quick"] if args.quick else []), timeout=600), indent=2))


if __name__ == "__main__":
    sys.exit(main())
