"""PostgreSQL restarted under a running run_detectors: the process keeps running, reconnects, and
loses no alert. The restart is timed to fall on the spooling of one alert and the raising of the next.

Only with DATABASE_URL on a local PostgreSQL cluster (CI): it stops and starts that cluster.
"""
from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from alerts.models import Alert, ClipStatus
from tests.faults.conftest import (
    VISIT_EVERY,
    all_ready,
    assert_exact_accounting,
    clip_ready_lines,
    local_files,
    max_attempts,
    shelf_camera,
    statuses,
)
from tests.support.processes import start_worker
from tests.support.rtsp import file_mount, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.rtsp]

# Seconds after the first alert's event start: its spool is written at about +4 s (post-roll) and
# the next visit is raised at about +5.5 s; the database is down over both.
DOWN_FROM, DOWN_UNTIL = 3.5, 6.5


def local_cluster() -> tuple[str, str]:
    """(version, name) of the local cluster that serves the test database, or skip."""
    if connection.vendor != "postgresql":
        pytest.skip("restarts PostgreSQL under run_detectors: needs DATABASE_URL=postgres://... (the run uses SQLite)")
    port = str(connection.settings_dict.get("PORT") or 5432)
    host = connection.settings_dict.get("HOST") or "127.0.0.1"
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port and host in ("127.0.0.1", "localhost", "::1"):
            return version, name
    pytest.skip(f"no local PostgreSQL cluster on port {port} to restart (pg_lsclusters: {listed.stdout.strip()!r})")


def pg_ctl(cluster: tuple[str, str], action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action, *(["-m", "fast"] if action == "stop" else [])],
                   check=True, capture_output=True, timeout=60)


@pytest.fixture
def cluster() -> Iterator[tuple[str, str]]:
    found = local_cluster()
    yield found
    # Whatever happened in the test, leave the database up for the next one.
    status = subprocess.run(["pg_ctlcluster", *found, "status"], capture_output=True)
    if status.returncode != 0:
        pg_ctl(found, "start")
    connection.close()


def test_a_postgres_restart_under_run_detectors_loses_no_alert(
    cluster, visits_scene, rtsp_servers, clip_settings: Path, broker, detectors, tmp_path: Path
):
    server = rtsp_servers([file_mount("/scene", visits_scene)])
    shelf_camera(server.url("/scene"))
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(clip_settings), CLIP_RETRY_BACKOFF_SECONDS="1")
    try:
        run = detectors(CLIP_STORAGE_DIR=str(clip_settings))
        first = wait_until(lambda: Alert.objects.order_by("pk").first(), 40,
                           message=f"a first alert\n{run.log()[-4000:]}")
        t0 = first.event_start.timestamp()
        connection.close()  # nothing of this process may hold a connection across the restart

        time.sleep(max(0.0, t0 + DOWN_FROM - time.time()))
        pg_ctl(cluster, "stop")
        time.sleep(max(0.0, t0 + DOWN_UNTIL - time.time()))
        assert run.alive, run.log()[-4000:]
        pg_ctl(cluster, "start")
        up_at = time.time()

        # Alerts raised after the restart appear, and the process goes on raising them.
        wait_until(lambda: Alert.objects.filter(event_start__gt=first.event_start + timedelta(seconds=DOWN_UNTIL + 1)).count() >= 2,
                   40, message=f"two alerts after the restart\n{statuses()}\n{run.log()[-5000:]}")
        assert run.alive, run.log()[-4000:]
        stopping_at = time.time()
        code = run.stop()
        # Every recorded clip is built (an alert left recording is checked below: it would stay so
        # until the abandon sweep, minutes later).
        wait_until(lambda: not Alert.objects.exclude(clip_status__in=[ClipStatus.READY, ClipStatus.RECORDING]).exists(),
                   40, message=f"every recorded clip built\n{statuses()}\n{run.log()[-5000:]}")
    finally:
        worker.stop()

    log, worker_log = run.log(), worker.log()
    assert code == 0, log[-4000:]
    alerts = list(Alert.objects.order_by("pk"))
    # One alert per visit of the scene, from the first until the stop, none lost to the restart (a
    # visit in the last second before SIGTERM may or may not have become an alert).
    starts = [a.event_start.timestamp() - t0 for a in alerts]
    visits = [k * VISIT_EVERY for k in range(int((stopping_at - t0) // VISIT_EVERY) + 2)]
    expected = [v for v in visits if t0 + v + 1.0 < stopping_at]
    maybe = [v for v in visits if v not in expected and t0 + v < stopping_at + 0.5]
    matched = [[round(s, 1) for s in starts if abs(s - v) < 1.0] for v in expected]
    unmatched = [round(s, 1) for s in starts if all(abs(s - v) >= 1.0 for v in expected + maybe)]
    assert all(len(m) == 1 for m in matched) and unmatched == [] and len(alerts) <= len(expected) + len(maybe), \
        f"visits at +{expected} s (and maybe +{maybe} s); alerts at +{[round(s, 1) for s in starts]} s " \
        f"(database down from +{DOWN_FROM} s, up again at +{up_at - t0:.1f} s)\n{statuses()}\n{log[-6000:]}"
    [(raised, spooled)] = re.findall(r"supervisor stopped cameras=1 alerts=(\d+) suppressed=0 spooled=(\d+)", log)
    assert int(raised) == int(spooled) == len(alerts), (raised, spooled, len(alerts))
    assert {a.pk: a.clip_status for a in alerts} == {a.pk: ClipStatus.READY for a in alerts}, \
        {a.pk: (a.clip_status, a.clip_error) for a in alerts}
    assert all_ready() and [clip_ready_lines(worker_log, a.pk) for a in alerts] == [1] * len(alerts)
    assert_exact_accounting(alerts, local_files(clip_settings), lambda name: (clip_settings / name).read_bytes(),
                            max_attempts=max_attempts())
