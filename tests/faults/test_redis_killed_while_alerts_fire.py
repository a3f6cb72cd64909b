"""Redis (the Celery broker) SIGKILLed while run_detectors keeps raising alerts, then restarted empty:
every alert still gets its clip, and no clip is built twice."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from alerts.models import Alert, ClipStatus
from tests.faults.conftest import (
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

ALERT_LATENCY_SECONDS = 2.0

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.rtsp]


def stuck_in_queue(since: datetime) -> set[int]:
    """Alerts queued since `since` that no worker has taken for a second: their job never reached it."""
    taken_by_now = timezone.now() - timedelta(seconds=1)
    return set(Alert.objects.filter(clip_status=ClipStatus.QUEUED, clip_status_changed_at__gt=since,
                                    clip_status_changed_at__lt=taken_by_now).values_list("pk", flat=True))


def test_every_alert_raised_while_redis_is_down_gets_exactly_one_clip_after_it_returns(
    visits_scene, rtsp_servers, clip_settings: Path, broker, detectors, tmp_path: Path
):
    server = rtsp_servers([file_mount("/scene", visits_scene)])
    shelf_camera(server.url("/scene"))
    worker = start_worker(tmp_path, CLIP_STORAGE_DIR=str(clip_settings), CLIP_RETRY_BACKOFF_SECONDS="1")
    try:
        # The detector process is also the sweeper here (shard 0), as when beat is not deployed.
        run = detectors(CLIP_STORAGE_DIR=str(clip_settings), CLIP_SWEEP_INTERVAL_SECONDS="2",
                        CLIP_QUEUE_STALE_SECONDS="4")
        wait_until(lambda: Alert.objects.filter(clip_status=ClipStatus.READY).exists(), 45,
                   message=f"a first clip through the healthy path\n{run.log()[-4000:]}\n{worker.log()[-3000:]}")

        broker.kill()
        killed_at = timezone.now()
        # Three more visits are raised while the broker is gone, and the first two of them are recorded
        # and spooled: their jobs cannot be sent.
        wait_until(lambda: Alert.objects.filter(event_start__gt=killed_at).count() >= 3
                   and len(stuck_in_queue(killed_at)) >= 2, 45,
                   message=f"three alerts raised, two queued while Redis is down\n{statuses()}\n{run.log()[-4000:]}")
        assert run.alive, run.log()[-4000:]
        down = stuck_in_queue(killed_at)

        broker.start()  # empty: the jobs sent before the kill are gone too
        wait_until(lambda: all_ready(down), 40, message=f"clips of the alerts raised while Redis was down\n{statuses()}\n"
                                                      f"{run.log()[-4000:]}\n{worker.log()[-3000:]}")
        assert run.alive, run.log()[-4000:]
        code = run.stop()
        wait_until(all_ready, 40, message=f"every clip settled\n{statuses()}\n{worker.log()[-3000:]}")
    finally:
        worker.stop()

    log, worker_log = run.log(), worker.log()
    assert code == 0, log[-4000:]
    # Exactly the alerts the detector process raised and spooled, all of them ready.
    [(raised, suppressed, spooled)] = re.findall(r"supervisor stopped cameras=1 alerts=(\d+) suppressed=(\d+) spooled=(\d+)", log)
    alerts = list(Alert.objects.order_by("pk"))
    assert len(alerts) == int(raised) == int(spooled) >= 3 and suppressed == "0", (raised, spooled, statuses())
    assert {a.pk: a.clip_status for a in alerts} == {a.pk: ClipStatus.READY for a in alerts}, \
        {a.pk: (a.clip_status, a.clip_error) for a in alerts}
    assert len(down) >= 2  # the outage was real: these sat in the queue while a worker was idle
    # Built once each: one claim, one "clip ready" in the worker's log.
    assert [(a.pk, a.clip_attempts) for a in alerts] == [(a.pk, 1) for a in alerts]
    assert [clip_ready_lines(worker_log, a.pk) for a in alerts] == [1] * len(alerts), worker_log[-4000:]
    assert_exact_accounting(alerts, local_files(clip_settings), lambda name: (clip_settings / name).read_bytes(),
                            max_attempts=max_attempts())
    # Alert first, clip second (DESIGN.md): a broker that is down must not hold up the next alerts.
    late = {a.pk: round((a.detected_at - a.event_start).total_seconds(), 1) for a in alerts
            if (a.detected_at - a.event_start).total_seconds() > ALERT_LATENCY_SECONDS}
    assert late == {}, f"alerts registered more than {ALERT_LATENCY_SECONDS} s after their event started " \
                       f"(alert: seconds late) while Redis was down:\n{log[-5000:]}"
