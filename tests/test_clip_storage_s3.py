"""Evidence clips in an S3-compatible bucket (CLIP_STORAGE=s3): build, stream, download, stay private.

The one stand-in: MinIO cannot be installed on these machines (no registry here ships its server),
so the bucket is moto's ThreadedMotoServer, a real S3-compatible HTTP server running in this
process. django-storages and boto3 talk to it over HTTP exactly as they would to MinIO or AWS
(path-style addressing, Range reads, HEAD for sizes), so everything above the HTTP line is real.
moto does not verify request signatures, but it does enforce object ACLs for unsigned requests
(a public-read object is served, a private one refused), which the privacy test checks first.
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import boto3
import numpy as np
import pytest
from botocore.config import Config
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from moto.server import ThreadedMotoServer
from pytest_django.fixtures import Settings
from storages.backends.s3 import S3File

from alerts.clip_jobs import clip_job_run, clip_storage_name
from alerts.emitter import alert_raise
from alerts.models import AccessAction, Alert, ClipAccess, ClipStatus, clip_storage
from cameras.models import Camera, Role
from detection.capture.ring import CodecParams, PacketRing, RingPacket
from detection.inference.events import Event, EventPhase
from detection.recording import spooler as spooler_module
from detection.recording.thumbnail import thumbnail_jpeg
from shoplift.settings import clips_s3_storage
from tests.support.clips import SampleClip, attach_clip, fast_passwords, test_clip  # noqa: F401
from tests.support.factories import make_alert, make_camera, make_site, make_user
from tests.support.recording import RecordingStages, start_recording_stages
from tests.support.rtsp import free_port, make_video

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "shoplift"
KEY_ID, SECRET = "clips-test-key", "clips-test-secret-do-not-print"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    requests_log = logging.getLogger("werkzeug")  # one INFO line per S3 request otherwise
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        requests_log.setLevel(level)


@dataclass(frozen=True)
class Bucket:
    endpoint: str
    name: str
    client: Any  # boto3's S3 client, signed with the test credentials

    def key(self, name: str) -> str:
        return f"{PREFIX}/{name}"

    def read(self, name: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=self.key(name))["Body"].read())

    def has(self, name: str) -> bool:
        listed = self.client.list_objects_v2(Bucket=self.name, Prefix=self.key(name)).get("Contents", [])
        return any(item["Key"] == self.key(name) for item in listed)


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET)


@pytest.fixture
def bucket(settings: Settings, s3_endpoint: str) -> Bucket:
    """A fresh bucket as the clips storage, configured as settings.py does for CLIP_STORAGE=s3.

    Assigning STORAGES makes Django drop its cached storages, so clip_storage() sees this one.
    """
    name = f"clips-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "clips": clips_s3_storage(bucket=name, endpoint_url=s3_endpoint, region="us-east-1", access_key=KEY_ID,
                                  secret_key=SECRET, prefix=PREFIX),
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return Bucket(endpoint=s3_endpoint, name=name, client=client)


def queued_alert_with_spool(spool: bytes) -> Alert:
    at = timezone.now() - timedelta(seconds=10)
    camera = make_camera(make_site("Main St", time_zone="Europe/London"), "Aisle 3")
    alert = make_alert(camera, at=at, clip_status=ClipStatus.QUEUED, clip_start=at - timedelta(seconds=2),
                       clip_end=at + timedelta(seconds=4))
    alert.spool_name = clip_storage().save(f"spool/{alert.pk}.ts", ContentFile(spool))
    alert.save(update_fields=["spool_name"])
    return alert


# --- The worker --------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_builds_a_clip_from_a_spool_in_the_bucket_and_stores_it_at_the_expected_key(
    bucket: Bucket, django_capture_on_commit_callbacks: Any
) -> None:
    alert = queued_alert_with_spool(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    assert alert.spool_name == f"spool/{alert.pk}.ts" and bucket.has(alert.spool_name)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = clip_job_run(alert_id=alert.pk, task_id="t1")

    assert outcome.status == "ready", outcome
    alert.refresh_from_db()
    assert alert.clip.name == clip_storage_name(alert)  # the exact name, no suffix added by the storage
    assert alert.clip.name.startswith(f"clips/main-st/aisle-3/{timezone.localtime(alert.event_start):%Y/}")
    stored = bucket.read(alert.clip.name)  # at <prefix>/clips/<site>/<camera>/<yyyy>/<mm>/<dd>/<id>.mp4
    assert hashlib.sha256(stored).hexdigest() == alert.clip_sha256
    assert len(stored) == alert.clip_size
    head = bucket.client.head_object(Bucket=bucket.name, Key=bucket.key(alert.clip.name))
    assert head["ContentType"] == "video/mp4"
    assert not bucket.has(alert.spool_name)  # the spool goes once the clip is safe


@pytest.mark.django_db
def test_it_never_overwrites_or_deletes_an_object_another_attempt_wrote_at_the_clip_key(bucket: Bucket) -> None:
    alert = queued_alert_with_spool(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    name = clip_storage_name(Alert.objects.select_related("camera__site").get(pk=alert.pk))
    # Another attempt's object (it may be a winner whose claim this task took over): not ours to delete.
    bucket.client.put_object(Bucket=bucket.name, Key=bucket.key(name), Body=b"written by another attempt")

    assert clip_job_run(alert_id=alert.pk, task_id="t1").status == "ready"

    alert.refresh_from_db()
    assert alert.clip.name != name and alert.clip.name.startswith(name.removesuffix(".mp4"))
    assert hashlib.sha256(bucket.read(alert.clip.name)).hexdigest() == alert.clip_sha256
    assert bucket.read(name) == b"written by another attempt"


@pytest.mark.django_db
def test_it_turns_an_unreachable_bucket_into_a_scheduled_retry(bucket: Bucket, settings: Settings) -> None:
    alert = queued_alert_with_spool(make_video(width=320, height=240, seconds=8, gop=50, container="ts").read_bytes())
    clips = settings.STORAGES["clips"]
    settings.STORAGES = {**settings.STORAGES, "clips": {**clips, "OPTIONS": {
        **clips["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "client_config": Config(retries={"max_attempts": 1}, connect_timeout=2)}}}

    outcome = clip_job_run(alert_id=alert.pk, task_id="t1")

    assert outcome.status == "retry" and outcome.retry_in is not None
    alert.refresh_from_db()
    assert alert.clip_status == ClipStatus.FAILED and alert.clip_error.startswith("Cannot read the spool")


@pytest.mark.django_db
def test_it_stores_the_alert_thumbnail_in_the_bucket(bucket: Bucket) -> None:
    camera = make_camera(make_site())
    event = Event(phase=EventPhase.STARTED, camera_id=camera.pk, camera_name=str(camera), zone_id=None, zone_name="",
                  event_type="zone_activity", score=0.8, threshold=0.5, start=1.7e9, last_high=1.7e9 + 0.4, end=None,
                  clip_start=1.7e9 - 2, clip_end=1.7e9 + 4, clip_final=False, trigger_at=1.7e9 + 0.2,
                  trigger_box=(0.25, 0.5, 0.5, 0.9), trigger_image=np.full((180, 320, 3), 90, np.uint8))

    alert = Alert.objects.get(pk=alert_raise(event, thumbnail=thumbnail_jpeg(event)).alert_id)

    assert alert.thumbnail.name.startswith(f"thumbnails/{camera.pk}/")
    assert bucket.read(alert.thumbnail.name).startswith(b"\xff\xd8")  # a JPEG


# --- The recorder (detector process) ------------------------------------------------------------------

def ring_from(video: Path, *, received_at: float) -> PacketRing:
    """The ring a camera's capture would have filled with this video's packets, received from `received_at`."""
    ring = PacketRing(window_seconds=60, max_bytes=64 * 1024 * 1024)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        ring.set_codec(CodecParams.from_stream(stream))
        first: int | None = None
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            first = packet.pts if first is None else first
            ring.push(RingPacket(data=bytes(packet), pts=packet.pts, dts=packet.dts, duration=packet.duration or 0,
                                 time_base=stream.time_base, is_keyframe=packet.is_keyframe,
                                 recv_time=received_at + float((packet.pts - first) * stream.time_base)))
    return ring


def start_recording(camera: Camera, ring: PacketRing, at: float) -> RecordingStages:
    """The real recorder and spooler threads, given one finished event."""
    stages = start_recording_stages(lambda camera_id: ring)
    stages.recorder.on_event(Event(
        phase=EventPhase.STARTED, camera_id=camera.pk, camera_name=camera.name, zone_id=None, zone_name="",
        event_type="zone_activity", score=0.8, threshold=0.5, start=at + 3, last_high=at + 4, end=at + 4,
        clip_start=at + 1, clip_end=at + 6, clip_final=True, trigger_at=at + 3))
    return stages


def recorded(camera: Camera, seconds: float = 20) -> Alert:
    """The camera's alert once it leaves `recording`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alert = Alert.objects.filter(camera=camera).first()
        if alert is not None and alert.clip_status != ClipStatus.RECORDING:
            return alert
        time.sleep(0.1)
    pytest.fail(f"the recorder did not finish the recording in {seconds:g} s")


def unreachable_bucket(settings: Settings) -> dict[str, Any]:
    """Point the clips storage at a port nothing listens on; returns the working configuration."""
    clips = settings.STORAGES["clips"]
    settings.STORAGES = {**settings.STORAGES, "clips": {**clips, "OPTIONS": {
        **clips["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "client_config": Config(retries={"max_attempts": 1}, connect_timeout=2)}}}
    return clips


@pytest.mark.django_db(transaction=True)  # the recorder thread has its own database connection
def test_it_spools_a_recording_into_the_bucket_and_the_worker_builds_from_it(bucket: Bucket) -> None:
    camera = make_camera(make_site("Main St"), "Aisle 3")
    at = time.time() - 30
    ring = ring_from(make_video(width=320, height=240, seconds=8, gop=50, container="ts"), received_at=at)

    stages = start_recording(camera, ring, at)
    try:
        alert = recorded(camera)
    finally:
        stages.stop()

    assert alert.clip_status == ClipStatus.QUEUED, alert.clip_error
    assert alert.spool_name == f"spool/{alert.pk}.ts" and bucket.has(alert.spool_name)
    assert clip_job_run(alert_id=alert.pk, task_id="t1").status == "ready"
    alert.refresh_from_db()
    assert hashlib.sha256(bucket.read(alert.clip.name)).hexdigest() == alert.clip_sha256
    assert not bucket.has(alert.spool_name)


@pytest.mark.django_db(transaction=True)
def test_a_spool_the_bucket_refuses_is_retried_and_stored_once_the_bucket_is_back(bucket: Bucket, settings: Settings) -> None:
    camera = make_camera(make_site("Main St"), "Aisle 3")
    at = time.time() - 30
    ring = ring_from(make_video(width=320, height=240, seconds=8, gop=50, container="ts"), received_at=at)
    working = unreachable_bucket(settings)

    stages = start_recording(camera, ring, at)
    try:
        deadline = time.monotonic() + 20
        while not stages.spooler._retrying and time.monotonic() < deadline:  # the first write failed: waiting to retry
            time.sleep(0.05)
        assert stages.spooler._retrying, "the failed spool write was not kept for a retry"
        assert Alert.objects.get(camera=camera).clip_status == ClipStatus.RECORDING
        settings.STORAGES = {**settings.STORAGES, "clips": working}  # the bucket is back
        alert = recorded(camera)
    finally:
        stages.stop()

    assert alert.clip_status == ClipStatus.QUEUED, alert.clip_error
    assert bucket.has(alert.spool_name)


@pytest.mark.django_db(transaction=True)
def test_a_spool_the_bucket_keeps_refusing_marks_the_alert_and_keeps_recording(
    bucket: Bucket, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spooler_module, "SPOOL_RETRY_SECONDS", 5.0)
    camera = make_camera(make_site("Main St"), "Aisle 3")
    at = time.time() - 30
    ring = ring_from(make_video(width=320, height=240, seconds=8, gop=50, container="ts"), received_at=at)
    unreachable_bucket(settings)

    stages = start_recording(camera, ring, at)
    try:
        alert = recorded(camera, seconds=40)
    finally:
        stages.stop()  # also asserts the threads survived and stopped cleanly

    assert alert.clip_status == ClipStatus.FAILED
    assert alert.clip_error.startswith("No clip: the spool could not be stored (EndpointConnectionError")


# --- Playback and download ------------------------------------------------------------------------

@pytest.fixture
def ready_alert(bucket: Bucket, db: None, test_clip: SampleClip) -> Alert:
    camera = make_camera(make_site("Riverside", time_zone="Europe/London"), "Aisle 3")
    return attach_clip(make_alert(camera, event_type="concealment"), test_clip)


@pytest.fixture
def reviewer(ready_alert: Alert, fast_passwords: None) -> Client:
    client = Client()
    client.force_login(make_user("reviewer", site=ready_alert.camera.site, role=Role.REVIEWER))
    return client


@pytest.fixture
def no_whole_object_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3File.file downloads the whole object; a range request must fetch only its range."""
    def whole(self: S3File) -> None:
        pytest.fail(f"the whole object {self.name} was downloaded to serve a range")

    monkeypatch.setattr(S3File, "file", property(whole))


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-99", 0, 99), ("bytes=1000-1999", 1000, 1999), ("bytes=5000-", 5000, None), ("bytes=-500", None, None),
])
def test_it_answers_a_range_from_the_bucket_with_206_and_exactly_those_bytes(
    ready_alert: Alert, reviewer: Client, test_clip: SampleClip, no_whole_object_reads: None,
    header: str, first: int | None, last: int | None,
) -> None:
    size = len(test_clip.data)
    start = size - 500 if first is None else first
    end = size - 1 if last is None else last

    response = reviewer.get(f"/alerts/{ready_alert.pk}/clip/", HTTP_RANGE=header)

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert response["Content-Length"] == str(end - start + 1)
    assert body(response) == test_clip.data[start : end + 1]


def test_it_plays_the_whole_clip_from_the_bucket(ready_alert: Alert, reviewer: Client, test_clip: SampleClip,
                                                  no_whole_object_reads: None) -> None:
    response = reviewer.get(f"/alerts/{ready_alert.pk}/clip/")

    assert response.status_code == 200
    assert body(response) == test_clip.data
    assert response["Content-Disposition"].startswith("inline")


def test_it_answers_416_past_the_end_of_the_object(ready_alert: Alert, reviewer: Client, test_clip: SampleClip) -> None:
    response = reviewer.get(f"/alerts/{ready_alert.pk}/clip/", HTTP_RANGE="bytes=999999-")

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(test_clip.data)}"


def test_it_downloads_the_clip_from_the_bucket_and_logs_it(ready_alert: Alert, reviewer: Client,
                                                            test_clip: SampleClip) -> None:
    response = reviewer.get(f"/alerts/{ready_alert.pk}/download/")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert hashlib.sha256(body(response)).hexdigest() == ready_alert.clip_sha256
    assert ClipAccess.objects.filter(alert=ready_alert, action=AccessAction.DOWNLOAD).count() == 1


def test_it_serves_the_thumbnail_from_the_bucket(ready_alert: Alert, reviewer: Client, test_clip: SampleClip) -> None:
    response = reviewer.get(f"/alerts/{ready_alert.pk}/thumbnail/")

    assert response.status_code == 200
    assert body(response) == test_clip.thumbnail


def test_it_says_404_when_the_object_is_gone(ready_alert: Alert, reviewer: Client, bucket: Bucket) -> None:
    bucket.client.delete_object(Bucket=bucket.name, Key=bucket.key(ready_alert.clip.name))

    assert reviewer.get(f"/alerts/{ready_alert.pk}/clip/").status_code == 404


# --- Never a public URL -----------------------------------------------------------------------------

def unsigned_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_it_keeps_clip_objects_unreadable_without_credentials(ready_alert: Alert, bucket: Bucket) -> None:
    # The control: this server does serve an object that is public, to an unsigned request.
    bucket.client.put_object(Bucket=bucket.name, Key="public.txt", Body=b"x", ACL="public-read")
    assert unsigned_get(f"{bucket.endpoint}/{bucket.name}/public.txt") == 200

    for name in (ready_alert.clip.name, ready_alert.thumbnail.name):
        assert unsigned_get(f"{bucket.endpoint}/{bucket.name}/{bucket.key(name)}") == 403
        grants = bucket.client.get_object_acl(Bucket=bucket.name, Key=bucket.key(name))["Grants"]
        assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]  # the owner only
        assert all("URI" not in grant["Grantee"] for grant in grants)  # no AllUsers / AuthenticatedUsers


def test_it_links_the_admin_to_the_checked_views_not_to_the_bucket(ready_alert: Alert, bucket: Bucket,
                                                                     fast_passwords: None) -> None:
    client = Client()
    client.force_login(make_user("root", superuser=True))

    page = client.get(f"/admin/alerts/alert/{ready_alert.pk}/change/").content.decode()

    assert f'href="/alerts/{ready_alert.pk}/clip/"' in page
    assert f'href="/alerts/{ready_alert.pk}/thumbnail/"' in page
    assert bucket.endpoint not in page and "Signature" not in page


# --- Settings read from the environment ----------------------------------------------------------------

def manage(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with only these variables set (settings are read once, at import)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "DATABASE_URL", "CLIP_", "AWS_"))}
    env.update({"SECRET_KEY": "k" * 50, "DEBUG": "false", "DJANGO_SETTINGS_MODULE": "shoplift.settings", **env_extra})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("extra", "expected"), [
    ({"CLIP_STORAGE": "s3"}, "CLIP_S3_BUCKET is not set: expected the bucket name for evidence clips"),
    ({"CLIP_STORAGE": "azure"}, "CLIP_STORAGE='azure' is invalid: expected local or s3"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "s3://clips"}, "CLIP_S3_BUCKET='s3://clips' is invalid"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_ENDPOINT_URL": "minio:9000"},
     "CLIP_S3_ENDPOINT_URL='minio:9000' is invalid: expected an http:// or https:// URL"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_ENDPOINT_URL": "ftp://minio:9000"},
     "CLIP_S3_ENDPOINT_URL='ftp://minio:9000' is invalid"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_ENDPOINT_URL": f"http://admin:{SECRET}@minio:9000"},
     "CLIP_S3_ENDPOINT_URL='http://admin:****@minio:9000' is invalid"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_SECRET_ACCESS_KEY": SECRET},
     "CLIP_S3_ACCESS_KEY_ID and CLIP_S3_SECRET_ACCESS_KEY must be set together"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_PREFIX": "a/../b"}, "CLIP_S3_PREFIX='a/../b' is invalid"),
    ({"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_READ_TIMEOUT_SECONDS": "0"},
     "CLIP_S3_READ_TIMEOUT_SECONDS='0' is invalid"),
])
def test_it_refuses_to_start_with_a_bad_clip_storage_setting(extra: dict[str, str], expected: str) -> None:
    result = manage(extra, "check")

    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_it_stores_clips_in_the_bucket_the_environment_names(s3_endpoint: str) -> None:
    name = f"env-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name)
    env = {"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": name, "CLIP_S3_ENDPOINT_URL": s3_endpoint,
           "CLIP_S3_REGION": "us-east-1", "CLIP_S3_ACCESS_KEY_ID": KEY_ID, "CLIP_S3_SECRET_ACCESS_KEY": SECRET,
           "CLIP_S3_PREFIX": "/site-a/"}
    script = ("from django.core.files.base import ContentFile; from alerts.models import clip_storage; "
              "print(clip_storage().save('probe/hello.txt', ContentFile(b'hello')))")

    result = manage(env, "shell", "--no-imports", "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "probe/hello.txt"
    assert client.get_object(Bucket=name, Key="site-a/probe/hello.txt")["Body"].read() == b"hello"


def test_every_bucket_call_is_bounded_by_the_configured_timeouts_and_retries(s3_endpoint: str) -> None:
    env = {"CLIP_STORAGE": "s3", "CLIP_S3_BUCKET": "clips", "CLIP_S3_ENDPOINT_URL": s3_endpoint,
           "CLIP_S3_CONNECT_TIMEOUT_SECONDS": "3", "CLIP_S3_MAX_ATTEMPTS": "2"}
    script = ("from alerts.models import clip_storage; c = clip_storage().connection.meta.client.meta.config; "
              "print(c.connect_timeout, c.read_timeout, c.retries, c.s3)")

    result = manage(env, "shell", "--no-imports", "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 2)[:2] == ["3.0", "20.0"]  # boto3's own defaults are 60 s each
    assert "'total_max_attempts': 2" in result.stdout and "'mode': 'standard'" in result.stdout
    assert "'addressing_style': 'path'" in result.stdout
