"""The loss-prevention statistics page with 50,000 alerts in SQLite: the database counting
(alerts.stats) against the naive way, every alert loaded and counted in Python.

    .venv/bin/python -m bench.stats_page [--quick] [--postgres]

A SQLite database of its own in a temporary folder is migrated and loaded with 50,000 alerts
(quick: 10,000) over 90 days at three sites in three time zones (London, New York, Tokyo), four
cameras each with two zones, about 40 % reviewed, and 600 cases. Production settings (DEBUG
off), static files served unhashed (no collectstatic). With --postgres, the same on a throw-away
database `bench_stats_page` on the local PostgreSQL instead.

Measured in this process, each repeated and reported as median and p95: the whole page for a
manager of the three sites, the last 90 days (Django's test client: view, form, every query, the
SVG charts and the template); the figures alone (alerts.stats.loss_prevention_stats) and the
queries they make; and the baseline, the same figures from one pass in Python over every alert and
case of the period (select_related, so one query, not one per row). The two must agree, figure for
figure, or the run fails.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bench._support import apply_env, django_env, pg_database, print_result, run_child, sigterm_raises, temp_dir
from bench.common import percentile

SITES = (("Riverside", "Europe/London"), ("Hilltop", "America/New_York"), ("Harbour", "Asia/Tokyo"))
CAMERAS_PER_SITE = 4
DAYS = 90
EVENT_TYPES = ("zone_activity", "loitering", "concealment")
CASES = 600


def seed(count: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from alerts.models import Alert, Case, CaseOutcome, ReviewStatus
    from cameras.models import Camera, Role, Site, SiteMembership, Zone

    rng = random.Random(16)
    sites, cameras, zones_of = [], [], defaultdict(list)
    for s, (name, tz) in enumerate(SITES):
        site = Site.objects.create(name=name, time_zone=tz)
        sites.append(site)
        for c in range(CAMERAS_PER_SITE):
            camera = Camera.objects.create(site=site, name=f"Camera {c + 1}", channel=c + 1,
                                           stream_url=f"rtsp://10.0.{s}.{c + 10}:554/ch{c + 1}")
            cameras.append(camera)
            for z in range(2):
                zones_of[camera.pk].append(Zone.objects.create(
                    camera=camera, name=f"Shelf {z + 1}", polygon=[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]))
    now = timezone.now()
    span = timedelta(days=DAYS + 5).total_seconds()
    batch = []
    for _ in range(count):
        camera = rng.choice(cameras)
        zone = rng.choice(zones_of[camera.pk] + [None])
        at = now - timedelta(seconds=span * rng.random())
        review = rng.choices([ReviewStatus.UNREVIEWED, ReviewStatus.DISMISSED, ReviewStatus.CONFIRMED], [6, 3, 1])[0]
        reviewed_at = None if review == ReviewStatus.UNREVIEWED else at + timedelta(seconds=rng.expovariate(1 / 3600))
        batch.append(Alert(camera=camera, zone=zone, zone_name=zone.name if zone else "",
                           event_type=rng.choice(EVENT_TYPES), score=round(rng.uniform(0.5, 1.0), 3),
                           event_start=at, detected_at=at, review_status=review, reviewed_at=reviewed_at))
        if len(batch) == 5000:
            Alert.objects.bulk_create(batch)
            batch = []
    Alert.objects.bulk_create(batch)
    Case.objects.bulk_create([
        Case(site=rng.choice(sites), title=f"Case {i}", outcome=rng.choice(CaseOutcome.values),
             estimated_value=None if i % 9 == 0 else Decimal(rng.randrange(500, 90000)) / 100,
             created_at=now - timedelta(seconds=span * rng.random()))
        for i in range(CASES)])
    manager = get_user_model().objects.create_user("bench-manager", password="bench-password-1234")
    for site in sites:
        SiteMembership.objects.create(user=manager, site=site, role=Role.MANAGER)
    return {"sites": sites, "manager": manager}


def naive(sites: list[Any], first: date, last: date) -> dict[str, Any]:
    """The figures from one Python pass over every alert and case of the sites (the baseline)."""
    from alerts.models import Alert, Case, CaseOutcome, ReviewStatus

    per_day: Counter[date] = Counter()
    groups: dict[str, dict[Any, list[int]]] = {"camera": defaultdict(lambda: [0, 0, 0]),
                                               "zone": defaultdict(lambda: [0, 0, 0]),
                                               "event_type": defaultdict(lambda: [0, 0, 0])}
    waits: list[float] = []
    for alert in Alert.objects.filter(camera__site__in=sites).select_related("camera__site", "zone"):
        day = alert.detected_at.astimezone(ZoneInfo(alert.camera.site.time_zone)).date()
        if not first <= day <= last:
            continue
        per_day[day] += 1
        zone_key = (alert.camera_id, alert.zone_id, alert.zone.name if alert.zone else alert.zone_name)
        for table, key in (("camera", alert.camera_id), ("zone", zone_key), ("event_type", alert.event_type)):
            row = groups[table][key]
            row[0] += 1
            row[1] += alert.review_status == ReviewStatus.CONFIRMED
            row[2] += alert.review_status == ReviewStatus.DISMISSED
        if alert.review_status != ReviewStatus.UNREVIEWED and alert.reviewed_at is not None:
            waits.append((alert.reviewed_at - alert.detected_at).total_seconds())
    prevented = Decimal(0)
    for case in Case.objects.filter(site__in=sites).select_related("site"):
        day = case.created_at.astimezone(ZoneInfo(case.site.time_zone)).date()
        if first <= day <= last and case.outcome == CaseOutcome.THEFT_PREVENTED:
            prevented += case.estimated_value or 0
    return {
        "alerts": sum(per_day.values()),
        "per_day": sorted(per_day.items()),
        "tables": {table: sorted(tuple(v) for v in rows.values()) for table, rows in groups.items()},
        "reviewed": len(waits),
        "median_s": statistics.median(waits) if waits else None,
        "p90_s": statistics.quantiles(waits, n=10, method="inclusive")[8] if len(waits) > 1 else None,
        "prevented_value": prevented,
    }


def summary(stats: Any) -> dict[str, Any]:
    """The database's figures, in the shape naive() returns."""
    def rows(table: list[Any]) -> list[tuple[int, ...]]:
        return sorted((r.counts.alerts, r.counts.confirmed, r.counts.dismissed) for r in table)

    times = stats.review_times
    return {
        "alerts": stats.totals.alerts,
        "per_day": [(day, n) for day, n in stats.per_day if n],
        "tables": {"camera": rows(stats.by_camera), "zone": rows(stats.by_zone), "event_type": rows(stats.by_event_type)},
        "reviewed": times.count,
        "median_s": times.median.total_seconds() if times.median is not None else None,
        "p90_s": times.p90.total_seconds() if times.p90 is not None else None,
        "prevented_value": stats.cases.prevented_value,
    }


def timed(function: Any, repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def measure(quick: bool, postgres: bool = False) -> dict[str, Any]:
    sigterm_raises()
    count = 10_000 if quick else 50_000
    repeats = 5 if quick else 15
    tmp = temp_dir("bench-stats-")
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        database_url = (cleanup.enter_context(pg_database("bench_stats_page")) if postgres
                        else f"sqlite:///{tmp / 'db.sqlite3'}")
        apply_env(django_env(database_url=database_url, data_dir=tmp, process="manage"))
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection, connections
        from django.test import Client
        from django.test.utils import CaptureQueriesContext, override_settings

        from alerts.stats import loss_prevention_stats, period_ending_today

        cleanup.callback(connections.close_all)
        call_command("migrate", verbosity=0)
        started = time.monotonic()
        world = seed(count)
        figures: dict[str, Any] = {"alerts": count, "cases": CASES, "days": DAYS, "seed_s": round(time.monotonic() - started, 1),
                                   "database": "PostgreSQL" if postgres else "SQLite (file)"}
        sites = world["sites"]
        period = period_ending_today(days=DAYS, sites=sites)
        cleanup.enter_context(override_settings(STORAGES={
            **settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}))

        client = Client()
        client.force_login(world["manager"])

        def page() -> int:
            response = client.get("/stats/", {"period": str(DAYS)})
            assert response.status_code == 200, response.status_code
            return len(response.content)

        page()  # warm: templates compiled, connection open
        with CaptureQueriesContext(connection) as queries:
            page()
        figures["page_queries"] = len(queries)
        page_ms, size = timed(page, repeats)
        figures.update({"page_p50_ms": round(percentile(page_ms, 50), 1), "page_p95_ms": round(percentile(page_ms, 95), 1),
                        "page_kib": round(size / 1024, 1)})

        with CaptureQueriesContext(connection) as queries:
            stats = loss_prevention_stats(sites=sites, period=period)
        figures["stats_queries"] = len(queries)
        stats_ms, stats = timed(lambda: loss_prevention_stats(sites=sites, period=period), repeats)
        figures.update({"stats_p50_ms": round(percentile(stats_ms, 50), 1), "stats_p95_ms": round(percentile(stats_ms, 95), 1),
                        "alerts_in_period": stats.totals.alerts})

        with CaptureQueriesContext(connection) as queries:
            naive(sites, period.first, period.last)
        figures["naive_queries"] = len(queries)
        naive_ms, expected = timed(lambda: naive(sites, period.first, period.last), max(3, repeats // 3))
        figures.update({"naive_p50_ms": round(percentile(naive_ms, 50), 1), "naive_p95_ms": round(percentile(naive_ms, 95), 1)})

        got = summary(stats)
        for key, value in expected.items():
            same = (math.isclose(got[key], value, abs_tol=1e-3) if isinstance(value, float) else got[key] == value)
            if not same:
                raise AssertionError(f"the page's {key} differs from the naive count: {got[key]!r} != {value!r}")
        figures["figures_agree"] = 1
        return figures


def run(quick: bool = False) -> dict[str, Any]:
    return run_child("stats_page", *(["--quick"] if quick else []), timeout=600)


def _child_args(args: argparse.Namespace) -> list[str]:
    return (["--quick"] if args.quick else []) + (["--postgres"] if args.postgres else [])


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    stats, naive_ms = results.get("stats_p50_ms", math.nan), results.get("naive_p50_ms", math.nan)
    return [{
        "figure": "10", "name": f"Statistics page, {results.get('alerts', 0):,} alerts over {results.get('days')} days "
                                f"at 3 sites, {results.get('database')} (last {results.get('days')} days, all sites)",
        "measured": f"page p50 {results.get('page_p50_ms', math.nan):.0f} ms, p95 {results.get('page_p95_ms', math.nan):.0f} ms "
                    f"({results.get('page_queries')} queries); figures alone p50 {stats:.0f} ms "
                    f"({results.get('stats_queries')} queries)",
        "baseline": f"every alert counted in Python: p50 {naive_ms:.0f} ms",
        "ratio": f"{naive_ms / stats:.1f}x faster" if stats and math.isfinite(naive_ms / stats) else "n/a",
        "goal": "same figures as the naive count; queries independent of the number of alerts",
        "met": results.get("figures_agree") == 1,
    }]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="the local PostgreSQL instead of SQLite")
    parser.add_argument("--json", action="store_true", help="measure in this process; print one JSON line")
    args = parser.parse_args()
    if args.json:
        print_result(measure(args.quick, postgres=args.postgres))
    else:
        print(json.dumps(run_child("stats_page", *_child_args(args), timeout=600), indent=2))


if __name__ == "__main__":
    sys.exit(main())
