"""Figure 6: dashboard response times and queries per page with 100,000 alerts on PostgreSQL.

    .venv/bin/python -m bench.dashboard [--quick] [--keep]

A database of its own on the local PostgreSQL (`bench_dashboard`, dropped afterwards unless
--keep) is migrated and loaded with 100,000 alerts (quick: 10,000) over 90 days, across three
sites, four cameras each, two zones per camera; every alert's thumbnail names one small JPEG in a
temporary clip storage. Production settings (DEBUG off, collectstatic's manifest).

Response times: gunicorn with 2 sync workers (as in the Procfile), 8 client threads, first in a
closed loop (no think time: the server's saturation), then paced like staff at work (a random
pause of about 1 s between requests), each with the session cookie of a manager (two sites) or a viewer (one
site), over HTTP. Each picks at random: the list's first page, a filtered first page (camera,
event type, review status or minimum score), a deep page (a keyset cursor at 70-95 % of the
user's alerts, filtered or not), or an alert's detail page. Times are from request to the whole
body, so they include the wait for a free worker: with 8 clients on 2 workers, most of it.

Queries per page: Django's test client in this process, counting with CaptureQueriesContext: the
list's first page, its second page and a deep page, unfiltered and with each filter, the detail
page and the live-update poll. Baselines from the same data: the deep page fetched with OFFSET
(what keyset pagination avoids), timed in the database, and the queries the list would make
without select_related (one per row and relation).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bench._support import (
    HttpClient,
    apply_env,
    collectstatic,
    django_env,
    pg_database,
    print_result,
    run_child,
    sigterm_raises,
    start_gunicorn,
    stop,
    temp_dir,
)
from bench.common import percentile

DB_NAME = "bench_dashboard"
GOAL_LIST_P95_MS = 100.0
CLIENTS = 8
STAFF_THINK_S = 1.0  # the paced load: each client opens a page about once a second
WEB_WORKERS = 2
SITES = (("Riverside", "Europe/London"), ("Hilltop", "America/New_York"), ("Harbour", "Asia/Tokyo"))
CAMERAS_PER_SITE = 4
EVENT_TYPES = (("zone_activity", 0.6), ("loitering", 0.25), ("concealment", 0.15))
REVIEW = (("unreviewed", 0.8), ("dismissed", 0.12), ("confirmed", 0.08))
CLIP = (("ready", 0.92), ("failed", 0.05), ("recording", 0.03))
JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00" + bytes(range(1, 65))
        + b"\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00\xff\xc4\x00\x14\x00\x01" + bytes(16)
        + b"\xff\xda\x00\x08\x01\x01\x00\x00?\x00\xd2\xcf \xff\xd9")


def pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([value for value, _ in weighted], weights=[w for _, w in weighted])[0]


# --- The data ---------------------------------------------------------------------------------------

def seed(count: int) -> dict[str, Any]:
    """Sites, cameras, zones, the two personas and `count` alerts. Returns what the clients need."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.db import connection
    from django.utils import timezone

    from alerts.models import Alert, clip_storage
    from cameras.models import Camera, Role, Site, SiteMembership, Zone

    rng = random.Random(6)
    thumbnail = clip_storage().save("thumbnails/bench.jpg", ContentFile(JPEG))
    sites, cameras, zones = [], [], []
    for s, (name, tz) in enumerate(SITES):
        site = Site.objects.create(name=name, time_zone=tz)
        sites.append(site)
        for c in range(CAMERAS_PER_SITE):
            camera = Camera.objects.create(site=site, name=f"Camera {c + 1}", channel=c + 1,
                                           stream_url=f"rtsp://admin:secret@10.0.{s}.{c + 10}:554/ch{c + 1}")
            cameras.append(camera)
            for z, polygon in enumerate(([[0.1, 0.1], [0.5, 0.1], [0.5, 0.9], [0.1, 0.9]],
                                         [[0.5, 0.1], [0.9, 0.1], [0.9, 0.9], [0.5, 0.9]])):
                zones.append(Zone.objects.create(camera=camera, name=f"Shelf {z + 1}", polygon=polygon))
    zones_of = defaultdict(list)
    for zone in zones:
        zones_of[zone.camera_id].append(zone)
    now = timezone.now()
    span = timedelta(days=90).total_seconds()
    batch: list[Alert] = []
    for i in range(count):
        camera = rng.choice(cameras)
        zone = rng.choice(zones_of[camera.pk] + [None])
        at = now - timedelta(seconds=span * (i + rng.random()) / count)
        clip = pick(rng, CLIP)
        review = pick(rng, REVIEW)
        batch.append(Alert(
            camera=camera, zone=zone, zone_name=zone.name if zone else "", event_type=pick(rng, EVENT_TYPES),
            score=round(rng.uniform(0.5, 1.0), 3), event_start=at - timedelta(seconds=0.4),
            event_end=at + timedelta(seconds=rng.uniform(1, 20)), detected_at=at,
            clip_start=at - timedelta(seconds=2.4), clip_end=at + timedelta(seconds=3.6),
            clip=f"clips/bench/{i}.mp4" if clip == "ready" else "", thumbnail=thumbnail,
            clip_sha256="ab" * 32 if clip == "ready" else "", clip_size=1_800_000 if clip == "ready" else None,
            clip_duration=6.0 if clip == "ready" else None, clip_status=clip,
            clip_error="No clip: the camera stopped sending." if clip == "failed" else "",
            clip_status_changed_at=at + timedelta(seconds=5), review_status=review,
            reviewed_at=at + timedelta(hours=1) if review != "unreviewed" else None,
            suppressed_count=rng.choice((0, 0, 0, 1, 3)),
        ))
        if len(batch) == 5000:
            Alert.objects.bulk_create(batch)
            batch = []
    if batch:
        Alert.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does soon after a bulk load; the planner needs the statistics
    User = get_user_model()
    manager = User.objects.create_user(username="manager", password="bench-password-123", is_staff=True)
    viewer = User.objects.create_user(username="viewer", password="bench-password-123")
    SiteMembership.objects.create(user=manager, site=sites[0], role=Role.MANAGER)
    SiteMembership.objects.create(user=manager, site=sites[1], role=Role.MANAGER)
    SiteMembership.objects.create(user=viewer, site=sites[0], role=Role.VIEWER)
    return {"users": {"manager": manager, "viewer": viewer}, "sites": sites, "cameras": cameras}


def filters_for(world: dict[str, Any], persona: str, rng: random.Random) -> dict[str, str]:
    """A filter a user of this persona might set: camera, event type, review status or min. score."""
    site_count = 2 if persona == "manager" else 1
    cameras = [c for c in world["cameras"] if c.site_id in {s.pk for s in world["sites"][:site_count]}]
    kind = rng.choice(("camera", "event_type", "review_status", "min_score"))
    if kind == "camera":
        return {"camera": str(rng.choice(cameras).pk)}
    if kind == "event_type":
        return {"event_type": rng.choice(("loitering", "concealment"))}
    if kind == "review_status":
        return {"review_status": rng.choice(("confirmed", "dismissed"))}
    return {"min_score": "0.9"}


def deep_cursor(user: Any, params: dict[str, str], fraction: float) -> str:
    """The keyset cursor of the row at `fraction` of this user's filtered list (found with OFFSET, once)."""
    from alerts.forms import AlertFilterForm
    from alerts.selectors import Cursor, alert_event_types_for, alert_list_for

    form = AlertFilterForm(params, user=user, event_types=alert_event_types_for(user=user))
    form.is_valid()
    alerts = alert_list_for(user=user, filters=form.filters())
    total = alerts.count()
    detected_at, pk = alerts.values_list("detected_at", "id")[max(0, int(total * fraction) - 1)]
    return Cursor(detected_at=detected_at, id=pk).encode()


def visible_ids(user: Any, limit: int = 2000) -> list[int]:
    from alerts.selectors import alert_list_for

    return list(alert_list_for(user=user).order_by("?").values_list("id", flat=True)[:limit])


# --- Queries per page (in process) -------------------------------------------------------------------

def next_cursor(html: str) -> str:
    """The `before` of the page's "Older" link ('' on the last page)."""
    match = re.search(r'href="([^"]*)" rel="next"', html)
    if match is None:
        return ""
    return parse_qs(urlsplit(unescape(match.group(1))).query).get("before", [""])[0]


def page_cost(world: dict[str, Any], requests: int) -> dict[str, Any]:
    """Where a list page's time goes, in this process (no HTTP, no other client): SQL vs Python
    (view, forms, ORM rows, templates)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(world["users"]["manager"])
    client.get("/")
    totals, sql = [], []
    by_query: dict[str, list[float]] = defaultdict(list)
    for _ in range(requests):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            client.get("/")
            totals.append(1000 * (time.perf_counter() - started))
        sql.append(1000 * sum(float(q["time"]) for q in ctx.captured_queries))
        for q in ctx.captured_queries:
            head = re.sub(r'^DECLARE "[^"]+" NO SCROLL CURSOR WITH HOLD FOR ', "", q["sql"])
            by_query[re.sub(r"\s+", " ", head)[:70]].append(1000 * float(q["time"]))
    total, in_sql = statistics.median(totals), statistics.median(sql)
    slowest = max(by_query.items(), key=lambda kv: statistics.median(kv[1]))
    return {"list_inprocess_ms": round(total, 1), "list_sql_ms": round(in_sql, 1),
            "list_python_ms": round(total - in_sql, 1), "list_slowest_query_ms": round(statistics.median(slowest[1]), 1),
            "list_slowest_query": slowest[0]}

def query_counts(world: dict[str, Any]) -> dict[str, Any]:
    from django.db import connection
    from django.template.loader import render_to_string
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from alerts.models import Alert
    from alerts.selectors import PAGE_SIZE, alert_list_for

    out: dict[str, Any] = {}
    variants = {"unfiltered": {}, "camera": {"camera": str(world["cameras"][1].pk)},
                "event_type": {"event_type": "loitering"}, "review_status": {"review_status": "confirmed"},
                "min_score": {"min_score": "0.9"}}
    for persona, user in world["users"].items():
        client = Client()
        client.force_login(user)
        client.get("/")  # warm: the first request of a process loads content types and the like

        def count(path: str, params: dict[str, str]) -> int:
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(path, params)
            assert response.status_code == 200, (path, params, response.status_code)
            return len(ctx.captured_queries)

        counts: dict[str, list[int]] = {}
        for name, params in variants.items():
            page2 = next_cursor(client.get("/", params).content.decode())
            counts[name] = [count("/", params),
                            count("/", {**params, "before": page2}) if page2 else -1,
                            count("/", {**params, "before": deep_cursor(user, params, 0.9)})]
        out[f"{persona}_list_queries"] = " ".join(f"{k}={'/'.join(map(str, v))}" for k, v in counts.items())
        later = {c for v in counts.values() for c in v[1:] if c >= 0}
        firsts = {v[0] for v in counts.values()}
        out[f"{persona}_list_first_page_queries_max"] = max(firsts)
        out[f"{persona}_list_later_page_queries_max"] = max(later)
        out[f"{persona}_list_queries_spread"] = max(firsts | later) - min(firsts | later)
        out[f"{persona}_depth_independent"] = int(all(v[1] == v[2] for v in counts.values()))
        alert_id = visible_ids(user, 1)[0]
        out[f"{persona}_detail_queries"] = count(f"/alerts/{alert_id}/", {})
        out[f"{persona}_poll_queries"] = count("/alerts/poll/", {"after": "0", "pending": str(alert_id)})
    # Baseline: the rows of one page rendered without select_related (what the ORM does by default).
    manager = world["users"]["manager"]
    plain = list(Alert.objects.filter(pk__in=alert_list_for(user=manager).values("pk")[:PAGE_SIZE])
                 .order_by("-detected_at", "-id"))
    with CaptureQueriesContext(connection) as ctx:
        render_to_string("alerts/_rows.html", {"alerts": plain})
    out["rows_without_select_related_queries"] = len(ctx.captured_queries) + 1
    return out


def offset_baseline(world: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Database time of the deep page by keyset (as the list does) and by OFFSET, same rows."""
    from alerts.selectors import PAGE_SIZE, Cursor, alert_list_for, alert_page

    manager = world["users"]["manager"]
    alerts = alert_list_for(user=manager)
    total = alerts.count()
    offset = int(total * 0.9)
    cursor = Cursor.decode(deep_cursor(manager, {}, 0.9))
    keyset, by_offset = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        page = alert_page(alerts=alert_list_for(user=manager), before=cursor)
        keyset.append(time.perf_counter() - started)
        started = time.perf_counter()
        rows = list(alert_list_for(user=manager)[offset:offset + PAGE_SIZE + 1])
        by_offset.append(time.perf_counter() - started)
    assert page.alerts and rows
    return {"deep_page_rows_before": offset, "deep_keyset_ms": round(1000 * statistics.median(keyset), 2),
            "deep_offset_ms": round(1000 * statistics.median(by_offset), 2)}


# --- Load over HTTP ----------------------------------------------------------------------------------

def load(port: int, world: dict[str, Any], seconds: float, *, think_s: float = 0.0, prefix: str = "") -> dict[str, Any]:
    """CLIENTS threads; with think_s each waits a random pause (mean think_s) between requests,
    like staff working the dashboard, else none (closed loop: the server's saturation)."""
    from django.test import Client

    plans: dict[str, dict[str, Any]] = {}
    rng = random.Random(7)
    for persona, user in world["users"].items():
        client = Client()
        client.force_login(user)
        deep = []
        for _ in range(12):
            params = filters_for(world, persona, rng) if rng.random() < 0.5 else {}
            deep.append({**params, "before": deep_cursor(user, params, rng.uniform(0.7, 0.95))})
        plans[persona] = {"session": client.cookies["sessionid"].value, "deep": deep, "ids": visible_ids(user)}

    times: dict[str, list[float]] = defaultdict(list)
    statuses: dict[int, int] = defaultdict(int)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(index: int) -> None:
        persona = "manager" if index % 2 == 0 else "viewer"
        plan = plans[persona]
        rng = random.Random(100 + index)
        http = HttpClient(port, session=plan["session"])
        while time.monotonic() < deadline:
            kind = rng.choices(("list_first", "list_filtered", "list_deep", "detail"), weights=(3, 3, 2, 2))[0]
            if kind == "list_first":
                path = "/"
            elif kind == "list_filtered":
                path = "/?" + urlencode(filters_for(world, persona, rng))
            elif kind == "list_deep":
                path = "/?" + urlencode(rng.choice(plan["deep"]))
            else:
                path = f"/alerts/{rng.choice(plan['ids'])}/"
            started = time.perf_counter()
            status, _ = http.get(path)
            elapsed = 1000 * (time.perf_counter() - started)
            with lock:
                statuses[status] += 1
                if status == 200:
                    times[kind].append(elapsed)
            if think_s:
                time.sleep(min(rng.expovariate(1 / think_s), max(0.0, deadline - time.monotonic())))
        http.close()

    threads = [threading.Thread(target=client_loop, args=(i,), name=f"client-{i}") for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    wall = time.monotonic() - started
    lists = times["list_first"] + times["list_filtered"] + times["list_deep"]

    def p(values: list[float], q: float) -> float:
        return round(percentile(values, q), 1) if values else math.nan

    out: dict[str, Any] = {
        "list_p50_ms": p(lists, 50), "list_p95_ms": p(lists, 95),
        "detail_p50_ms": p(times["detail"], 50), "detail_p95_ms": p(times["detail"], 95),
        "requests": sum(statuses.values()), "requests_per_s": round(sum(statuses.values()) / wall, 1),
        "non_200": sum(n for status, n in statuses.items() if status != 200),
    }
    for kind in ("list_first", "list_filtered", "list_deep"):
        out[f"{kind}_p50_ms"] = p(times[kind], 50)
        out[f"{kind}_p95_ms"] = p(times[kind], 95)
    return {prefix + key: value for key, value in out.items()}


def single_client(port: int, world: dict[str, Any], requests: int) -> dict[str, Any]:
    """One client alone: the service time without queueing behind other clients."""
    from django.test import Client

    client = Client()
    client.force_login(world["users"]["manager"])
    http = HttpClient(port, session=client.cookies["sessionid"].value)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        status, _ = http.get("/")
        times.append(1000 * (time.perf_counter() - started))
        assert status == 200, status
    return {"list_alone_p50_ms": round(percentile(times, 50), 1), "list_alone_p95_ms": round(percentile(times, 95), 1)}


# --- The run -----------------------------------------------------------------------------------------

def measure(quick: bool, keep: bool = False) -> dict[str, Any]:
    from tests.support.rtsp import free_port

    sigterm_raises()
    count = 10_000 if quick else 100_000
    seconds = 10.0 if quick else 30.0
    tmp = temp_dir("bench-dashboard-")
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        database_url = cleanup.enter_context(pg_database(DB_NAME, keep=keep))
        env = django_env(database_url=database_url, data_dir=tmp, process="manage")
        apply_env(env)
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0)
        cleanup.callback(connections.close_all)  # before the database is dropped
        started = time.monotonic()
        world = seed(count)
        figures: dict[str, Any] = {"alerts": count, "seed_s": round(time.monotonic() - started, 1)}
        collectstatic(env)
        figures.update(query_counts(world))
        figures.update(page_cost(world, 10 if quick else 30))
        figures.update(offset_baseline(world, repeats=5 if quick else 15))
        port = free_port()
        web = start_gunicorn(env, port=port, workers=WEB_WORKERS, log=tmp / "web.out")
        cleanup.callback(stop, web)
        figures.update(single_client(port, world, 20 if quick else 50))
        figures.update(load(port, world, seconds))
        figures.update(load(port, world, seconds, think_s=STAFF_THINK_S, prefix="staff_"))
        figures.update({"clients": CLIENTS, "staff_think_s": STAFF_THINK_S, "web_workers": WEB_WORKERS, "load_seconds": seconds,
                        "database": f"PostgreSQL {DB_NAME}{' (kept)' if keep else ''}"})
        figures["limiting_factor"] = limiting_factor(figures)
        return figures


def limiting_factor(f: dict[str, Any]) -> str:
    cores = os.cpu_count() or 2
    return (f"one list page is {f['list_inprocess_ms']:.0f} ms of work in one request ({f['list_sql_ms']:.0f} ms SQL, of "
            f"which the slowest query, {f['list_slowest_query']}..., takes {f['list_slowest_query_ms']:.0f} ms; "
            f"{f['list_python_ms']:.0f} ms Python: view, filter form, 50 rows of templates); {WEB_WORKERS} sync "
            f"workers, PostgreSQL and the {CLIENTS} clients share {cores} cores, so the server manages "
            f"{f['requests_per_s']:.0f} req/s and each request mostly waits its turn: list p50 "
            f"{f['list_p50_ms']:.0f} ms under load vs {f['list_alone_p50_ms']:.0f} ms alone")


def run(quick: bool = False) -> dict[str, float | int | str]:
    return run_child("dashboard", *(["--quick"] if quick else []), timeout=600)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    n = results.get("alerts", 0)
    list_p95 = results.get("list_p95_ms", math.nan)
    staff_p95 = results.get("staff_list_p95_ms", math.nan)
    keyset, offset = results.get("deep_keyset_ms", math.nan), results.get("deep_offset_ms", math.nan)
    constant = all(results.get(f"{p}_depth_independent") == 1 for p in ("manager", "viewer"))
    spread = max(results.get("manager_list_queries_spread", 99), results.get("viewer_list_queries_spread", 99))
    return [
        {"figure": "6", "name": f"Alert list with {n:,} alerts, {results.get('clients')} clients without pause on "
                                f"gunicorn x{results.get('web_workers')} (first, filtered and deep keyset pages)",
         "measured": f"p50 {results.get('list_p50_ms', math.nan):.0f} ms, p95 {list_p95:.0f} ms "
                     f"({results.get('requests_per_s', 0):.0f} req/s; one client alone p50 "
                     f"{results.get('list_alone_p50_ms', math.nan):.0f} ms)",
         "baseline": f"deep page in the database: keyset {keyset:.1f} ms vs OFFSET {offset:.1f} ms "
                     f"({results.get('deep_page_rows_before', 0):,} rows in)",
         "ratio": f"{offset / keyset:.0f}x faster" if keyset and math.isfinite(offset / keyset) else "n/a",
         "goal": "none (the server's saturation)", "met": None},
        {"figure": "6", "name": f"Alert list with {n:,} alerts, {results.get('clients')} staff each opening a page "
                                f"about every {results.get('staff_think_s', STAFF_THINK_S):g} s (same pages)",
         "measured": f"p50 {results.get('staff_list_p50_ms', math.nan):.0f} ms, p95 {staff_p95:.0f} ms "
                     f"({results.get('staff_requests_per_s', 0):.0f} req/s); detail p50 "
                     f"{results.get('staff_detail_p50_ms', math.nan):.0f} ms, p95 {results.get('staff_detail_p95_ms', math.nan):.0f} ms",
         "baseline": "", "ratio": "",
         "goal": f"p95 <= {GOAL_LIST_P95_MS:.0f} ms",
         "met": isinstance(staff_p95, (int, float)) and staff_p95 <= GOAL_LIST_P95_MS
                and not results.get("non_200") and not results.get("staff_non_200")},
        {"figure": "6", "name": "What limits the list", "measured": str(results.get("limiting_factor", "")),
         "baseline": "", "ratio": "", "goal": "", "met": None},
        {"figure": "6", "name": "Alert detail under the same load",
         "measured": f"p50 {results.get('detail_p50_ms', math.nan):.0f} ms, p95 {results.get('detail_p95_ms', math.nan):.0f} ms",
         "baseline": "", "ratio": "", "goal": "", "met": None},
        {"figure": "6", "name": "Queries per list page (first/second/deep page, per filter), detail, poll",
         "measured": f"manager {results.get('manager_list_queries', '')}; viewer {results.get('viewer_list_queries', '')}; "
                     f"detail {results.get('manager_detail_queries')}/{results.get('viewer_detail_queries')}, "
                     f"poll {results.get('manager_poll_queries')}/{results.get('viewer_poll_queries')} (manager/viewer)",
         "baseline": f"{results.get('rows_without_select_related_queries')} queries for one page's rows without select_related",
         "ratio": "", "goal": "constant per page (independent of depth and rows)",
         "met": constant and spread <= 2},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="measure in this process; print one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the bench_dashboard database")
    args = parser.parse_args()
    if args.json:
        print_result(measure(args.quick, keep=args.keep))
    else:
        extra = ["--quick"] if args.quick else []
        if args.keep:
            extra.append("--keep")
        print(json.dumps(run_child("dashboard", *extra, timeout=600), indent=2))


if __name__ == "__main__":
    sys.exit(main())
