"""The S3 endpoint (CLIP_STORAGE=s3) goes down while run_detectors raises alerts and comes back on
the same port: every spool and clip is uploaded once it is back, and no clip has a hole.

The bucket is moto's S3 server in its own process (MinIO is not installable here, see
tests/test_clip_storage_s3.py). The outage is a TCP forwarder in front of it, closed (connections
reset, port refused) and reopened on the same port: restarting moto itself would lose every object
it holds, which no real S3 or MinIO outage does.
"""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import boto3
import pytest
from django.utils import timezone

from alerts.models import Alert, ClipStatus
from tests.faults.conftest import (
    TcpProxy,
    all_ready,
    assert_exact_accounting,
    clip_ready_lines,
    max_attempts,
    shelf_camera,
    statuses,
)
from tests.support.processes import CeleryWorker, subprocess_env
from tests.support.rtsp import file_mount, free_port, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.rtsp]

PREFIX = "shoplift"
KEY_ID, SECRET = "faults-key", "faults-secret"
FPS = 25  # the visits scene


@pytest.fixture
def s3_server() -> Iterator[int]:
    """moto's S3 server as a process of its own; yields its port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

        def answers() -> bool:
            try:
                client.list_buckets()
            except Exception:  # not up yet
                return False
            return True

        wait_until(answers, 30, interval=0.2, message="moto S3 server")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def bucket_names(client: Any, bucket: str) -> set[str]:
    names = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/"):
        names.update(item["Key"].removeprefix(f"{PREFIX}/") for item in page.get("Contents", []))
    return names


def frame_times(data: bytes, tmp: Path) -> list[float]:
    path = tmp / "clip.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.pts * (frame.time_base or Fraction(stream.time_base))) for frame in container.decode(stream)]


def test_spools_and_clips_are_uploaded_without_holes_once_the_s3_endpoint_is_back(
    visits_scene, rtsp_servers, s3_server: int, broker, detectors, tmp_path: Path
):
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server}", region_name="us-east-1",
                          aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    client.create_bucket(Bucket=bucket)
    endpoint = TcpProxy(target_port=s3_server, port=free_port()).start()
    s3_env = {"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": bucket, "CLIP_S3_ENDPOINT_URL": f"http://127.0.0.1:{endpoint.port}",
              "CLIP_S3_REGION": "us-east-1", "CLIP_S3_ACCESS_KEY_ID": KEY_ID, "CLIP_S3_SECRET_ACCESS_KEY": SECRET,
              "CLIP_S3_PREFIX": PREFIX}
    server = rtsp_servers([file_mount("/scene", visits_scene)])
    shelf_camera(server.url("/scene"))
    worker_env = subprocess_env(CLIP_RETRY_BACKOFF_SECONDS="2", **s3_env)
    workers = [CeleryWorker(worker_env, tmp_path / "worker-1.log")]
    workers[0].start()
    try:
        run = detectors(**s3_env)
        wait_until(lambda: Alert.objects.filter(clip_status=ClipStatus.READY).exists(), 45,
                   message=f"a first clip in the bucket\n{run.log()[-4000:]}\n{workers[0].log()[-3000:]}")
        # The next spool is stored while the endpoint is up, but its job waits for a worker...
        workers[0].stop()
        wait_until(lambda: Alert.objects.filter(clip_status=ClipStatus.QUEUED).exists(), 30,
                   message=f"a spool stored, its job waiting\n{statuses()}\n{run.log()[-4000:]}")
        [waiting] = Alert.objects.filter(clip_status=ClipStatus.QUEUED).values_list("pk", flat=True)

        # ...which comes while the endpoint is down: it cannot read the spool, nor can the
        # detector process store the next spools, which wait in memory and are retried.
        endpoint.stop()
        workers.append(CeleryWorker(worker_env, tmp_path / "worker-2.log"))
        workers[1].start()
        wait_until(lambda: len(unspooled()) >= 2 and Alert.objects.filter(pk=waiting).exclude(clip_error="").exists(), 45,
                   message=f"two spools and a build refused by the endpoint\n{statuses()}\n{run.log()[-4000:]}\n"
                           f"{workers[1].log()[-3000:]}")
        assert run.alive, run.log()[-4000:]
        down = unspooled() | {waiting}
        endpoint.start()

        wait_until(lambda: all_ready(down), 60, message=f"the refused spools and clips uploaded\n{statuses()}\n"
                                                      f"{run.log()[-4000:]}\n{workers[1].log()[-3000:]}")
        assert run.alive, run.log()[-4000:]
        code = run.stop()
        wait_until(all_ready, 40, message=f"every clip settled\n{statuses()}\n{workers[1].log()[-3000:]}")
    finally:
        for worker in workers:
            worker.stop()
        endpoint.stop()

    log, worker_log = run.log(), workers[0].log() + workers[1].log()
    assert code == 0, log[-4000:]
    [(raised, spooled)] = re.findall(r"supervisor stopped cameras=1 alerts=(\d+) suppressed=0 spooled=(\d+)", log)
    alerts = list(Alert.objects.order_by("pk"))
    assert len(alerts) == int(raised) == int(spooled) >= 3, (raised, spooled, statuses())
    assert {a.pk: a.clip_status for a in alerts} == {a.pk: ClipStatus.READY for a in alerts}, \
        {a.pk: (a.clip_status, a.clip_error) for a in alerts}
    assert [clip_ready_lines(worker_log, a.pk) for a in alerts] == [1] * len(alerts), worker_log[-4000:]
    built = Alert.objects.get(pk=waiting)
    assert built.clip_attempts >= 2, "the build that met the outage was retried"

    def read(name: str) -> bytes:
        return bytes(client.get_object(Bucket=bucket, Key=f"{PREFIX}/{name}")["Body"].read())

    assert_exact_accounting(alerts, bucket_names(client, bucket), read, max_attempts=max_attempts())
    # No hole: each clip lasts its recorded window, with every frame of it.
    for alert in alerts:
        window = (alert.clip_end - alert.clip_start).total_seconds()
        assert abs(alert.clip_duration - window) <= 1.0, (alert.pk, alert.clip_duration, window)
        times = frame_times(read(alert.clip.name), tmp_path)
        gaps = [round(b - a, 2) for a, b in zip(times, times[1:]) if b - a > 2.5 / FPS]
        assert gaps == [] and times[-1] - times[0] >= window - 1.0, (alert.pk, gaps, times[-1] - times[0], window)


def unspooled() -> set[int]:
    """The alerts whose spool is overdue: their window ended seconds ago and they are still recording."""
    overdue = timezone.now() - timedelta(seconds=3)
    return set(Alert.objects.filter(clip_status=ClipStatus.RECORDING, clip_end__lt=overdue).values_list("pk", flat=True))
