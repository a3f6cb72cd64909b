"""The clip job: from a queued clip row with a spool file to a stored, hashed MP4.

An alert has up to two clips (alerts.models.ClipPart): its first clip, whose state is on the Alert
row, and, when the event went on past it, the whole-event clip, an EventClip row keyed by the
alert's id. Either row is its job's state (queued, building, ready, failed) and the spool file
its payload, so together they are an outbox: a job whose message was lost (Redis down, worker
killed) is found again by `clip_jobs_sweep`. Claims are conditional updates, so a job runs once
however often its message is delivered.
"""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from alerts.clip_build import BuiltClip, ClipError, clip_build
from alerts.models import Alert, ClipFields, ClipPart, ClipStatus, EventClip, NotifyMessage, clip_storage
from shoplift.storage import STORAGE_ERRORS

log = logging.getLogger("shoplift.clips")
MAX_BACKOFF_SECONDS = 300.0


def clip_model(part: str) -> type[Alert] | type[EventClip]:
    """The model whose rows hold this part's clip jobs; both are keyed by the alert's id."""
    return EventClip if part == ClipPart.EVENT else Alert


def clip_alert(row: ClipFields) -> Alert:
    if isinstance(row, EventClip):
        return row.alert
    assert isinstance(row, Alert)
    return row


@dataclass(frozen=True)
class JobOutcome:
    status: str  # "ready", "failed", "retry", "busy" or "skipped"
    retry_in: float | None = None
    detail: str = ""


def clip_lease_seconds() -> float:
    """How long a build claim holds: past the task's hard time limit, its worker is certainly gone."""
    return float(settings.CELERY_TASK_TIME_LIMIT) + 10.0


def clip_storage_name(alert: Alert, part: str = ClipPart.FIRST) -> str:
    """clips/<site>/<camera>/<yyyy>/<mm>/<dd>/<alert id>.mp4 (the whole-event clip: <alert id>-event.mp4),
    dated in the site's time zone."""
    camera = alert.camera
    local = timezone.localtime(alert.event_start, timezone=ZoneInfo(camera.site.time_zone))
    site = slugify(camera.site.name) or f"site-{camera.site_id}"
    cam = slugify(camera.name) or f"camera-{camera.pk}"
    suffix = "-event" if part == ClipPart.EVENT else ""
    return f"clips/{site}/{cam}/{local:%Y/%m/%d}/{alert.pk}{suffix}.mp4"


def download_filename(alert: Alert, part: str = ClipPart.FIRST) -> str:
    """Readable and sortable: site_camera_local-time_event_id.mp4 (the whole-event clip: ..._id-event.mp4)."""
    local = alert.event_start.astimezone(ZoneInfo(alert.camera.site.time_zone))
    parts = [alert.camera.site.name, alert.camera.name, local.strftime("%Y-%m-%d_%H%M%S"), alert.event_type]
    suffix = "-event" if part == ClipPart.EVENT else ""
    return "_".join(slugify(part) or "x" for part in parts) + f"_{alert.pk}{suffix}.mp4"


def _backoff(attempt: int) -> float:
    return min(float(settings.CLIP_RETRY_BACKOFF_SECONDS) * 2.0 ** max(attempt - 1, 0), MAX_BACKOFF_SECONDS)


def _claimable(task_id: str, now: datetime) -> Q:
    stale = now - timedelta(seconds=clip_lease_seconds())
    return (
        Q(clip_status=ClipStatus.QUEUED)
        | Q(clip_status=ClipStatus.FAILED, clip_task_id=task_id)
        | Q(clip_status=ClipStatus.BUILDING, clip_status_changed_at__lt=stale)
    )


def clip_job_claim(*, alert_id: int, task_id: str, part: str = ClipPart.FIRST, now: datetime | None = None) -> bool:
    """Take the build for this task. Allowed from queued, from this task's own failed attempt (a
    scheduled retry), or from a building claim whose lease expired (its worker died), and only
    while attempts remain: an attempt counts when it is claimed, so builds cut short by a time
    limit, an out-of-memory kill or a dead worker count too."""
    now = now or timezone.now()
    claimed = clip_model(part).objects.filter(_claimable(task_id, now), pk=alert_id,
                                   clip_attempts__lt=settings.CLIP_BUILD_MAX_ATTEMPTS).update(
        clip_status=ClipStatus.BUILDING, clip_task_id=task_id, clip_status_changed_at=now,
        clip_attempts=F("clip_attempts") + 1,
    )
    return claimed == 1


def _give_up_interrupted(*, alert_id: int, part: str, task_id: str = "", now: datetime | None = None) -> bool:
    """Fail a job that would be claimed again but has used up its attempts, saying why."""
    now = now or timezone.now()
    attempts = settings.CLIP_BUILD_MAX_ATTEMPTS
    failed = clip_model(part).objects.filter(_claimable(task_id, now), pk=alert_id, clip_attempts__gte=attempts).update(
        clip_status=ClipStatus.FAILED, clip_status_changed_at=now,
        clip_error=(f"The clip build was started {attempts} times without finishing (a worker killed, out of memory "
                    "or past its time limit); the spool is kept. Fix the cause, then use 'Retry clip build' in the "
                    "admin."),
    )
    if failed:
        log.error("clip failed alert=%s part=%s attempts=%s error=interrupted builds used up the attempts", alert_id,
                  part, attempts)
    return failed == 1


def clip_job_run(*, alert_id: int, task_id: str, part: str = ClipPart.FIRST) -> JobOutcome:
    """Build one of an alert's clips. Called by the Celery task; owns every state change of the build."""
    model = clip_model(part)
    if not clip_job_claim(alert_id=alert_id, task_id=task_id, part=part):
        if _give_up_interrupted(alert_id=alert_id, part=part, task_id=task_id):
            return JobOutcome("failed", detail="interrupted builds used up the attempts")
        state = model.objects.filter(pk=alert_id).values("clip_status", "clip_status_changed_at").first()
        if state is not None and state["clip_status"] == ClipStatus.BUILDING:
            # Another delivery holds a live claim (or this one was redelivered after its worker died):
            # come back when the lease ends instead of building twice or dropping the job.
            remaining = clip_lease_seconds() - (timezone.now() - state["clip_status_changed_at"]).total_seconds()
            log.info("clip build busy alert=%s part=%s task=%s retry_in=%.0f", alert_id, part, task_id,
                     max(remaining, 1))
            return JobOutcome("busy", retry_in=max(remaining, 1.0) + 1.0)
        log.info("clip build skipped alert=%s part=%s task=%s status=%s", alert_id, part, task_id,
                 state["clip_status"] if state else "deleted")
        return JobOutcome("skipped")

    related = "alert__camera__site" if model is EventClip else "camera__site"
    row: ClipFields = model.objects.select_related(related).get(pk=alert_id)
    storage = clip_storage()
    _remove_stale_work_dirs(alert_id, part)
    with tempfile.TemporaryDirectory(prefix=_work_dir_prefix(alert_id, part)) as tmp:
        try:
            built = _build(row, Path(tmp))
        except ClipError as exc:
            # The spool itself is bad: no retry can help. The spool is kept for inspection.
            return _fail(row, f"Corrupt spool: {exc}", retry=False)
        except STORAGE_ERRORS as exc:
            return _fail(row, f"Cannot read the spool: {exc}", retry=True)
        name = clip_storage_name(clip_alert(row), part)
        target: str | None = None
        try:
            # Never delete the name first: another attempt (whose lease this one took over) may have
            # written the clip there. Storage.save never overwrites; it picks a free name, which is
            # the only one this task may delete (when it loses its claim, in _ready).
            target = storage.get_available_name(name)
            with built.path.open("rb") as fh:
                saved = storage.save(target, File(fh, name=Path(name).name))
        except STORAGE_ERRORS as exc:
            _delete_partial(row, target)
            return _fail(row, f"Cannot store the clip ({exc.__class__.__name__}: {exc})", retry=True)
    return _ready(row, saved, built)


WORK_DIR_PREFIX = "shoplift-clip-"


def _work_dir_prefix(alert_id: int, part: str) -> str:
    return f"{WORK_DIR_PREFIX}{alert_id}-{part}-"


def _remove_stale_work_dirs(alert_id: int, part: str) -> None:
    """Remove the working folders (spool copy, MP4) that killed builds left in this machine's temp
    folder: this clip's, which no live attempt uses now that this one holds the claim, and any
    older than the lease, whose builds are certainly dead."""
    now, lease = time.time(), clip_lease_seconds()
    for path in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        try:
            if path.name.startswith(_work_dir_prefix(alert_id, part)) or now - path.stat().st_mtime > lease:
                shutil.rmtree(path)
                log.warning("clip work folder removed path=%s (left by a killed build attempt)", path)
        except OSError as exc:
            log.warning("clip work folder not removed path=%s error=%s", path, exc)


def _delete_partial(row: ClipFields, name: str | None) -> None:
    """A store that failed (full disk) can leave part of the file behind: remove it unless a clip
    row refers to it (another attempt's finished clip)."""
    if name is None:
        return
    try:
        if clip_storage().exists(name) and not clip_model(_part(row)).objects.filter(clip=name).exists():
            clip_storage().delete(name)
            log.warning("partial clip removed alert=%s name=%s", row.pk, name)
    except STORAGE_ERRORS as exc:
        log.warning("partial clip not removed alert=%s name=%s error=%s", row.pk, name, exc)


def _build(row: ClipFields, tmp: Path) -> BuiltClip:
    storage = clip_storage()
    if not row.spool_name or not storage.exists(row.spool_name):
        raise ClipError(f"the spool file '{row.spool_name or '(none)'}' is missing")
    spool = tmp / ("spool" + Path(row.spool_name).suffix)
    with storage.open(row.spool_name, "rb") as src, spool.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    expected = (row.clip_end - row.clip_start).total_seconds() if row.clip_start and row.clip_end else None
    return clip_build(spool=spool, out=tmp / "clip.mp4", expected_seconds=expected,
                      max_extra_seconds=float(settings.RING_SECONDS))


def _ready(row: ClipFields, name: str, built: BuiltClip) -> JobOutcome:
    now = timezone.now()
    updated = clip_model(_part(row)).objects.filter(pk=row.pk, clip_status=ClipStatus.BUILDING, clip_task_id=row.clip_task_id).update(
        clip=name, clip_sha256=built.sha256, clip_size=built.size, clip_duration=built.duration,
        clip_build_seconds=built.build_seconds, clip_status=ClipStatus.READY, clip_error="", clip_status_changed_at=now,
    )
    if updated != 1:
        # The lease expired and another task took over: its result wins, ours is removed.
        clip_storage().delete(name)
        return JobOutcome("skipped", detail="lost the claim")
    spool = row.spool_name
    transaction.on_commit(lambda: _delete_spool(spool))
    transaction.on_commit(lambda: _delete_orphans(name))
    if _part(row) == ClipPart.FIRST:
        transaction.on_commit(lambda: _notify_clip_ready(row.pk))
    alert = clip_alert(row)
    since_event = (now - alert.event_start).total_seconds()
    since_post_roll = (now - row.clip_end).total_seconds() if row.clip_end else float("nan")
    log.info(
        "clip ready alert=%s part=%s camera=%s duration=%.2f size=%s transcoded=%s build_s=%.3f latency_event_s=%.2f "
        "latency_post_roll_s=%.2f", alert.pk, _part(row), alert.camera.name, built.duration, built.size,
        built.transcoded, built.build_seconds, since_event, since_post_roll,
    )
    return JobOutcome("ready")


def _notify_clip_ready(alert_id: int) -> None:
    from alerts.notify import notify_plan

    try:
        notify_plan(alert_id=alert_id, message=NotifyMessage.CLIP_READY)
    except Exception:  # the clip is ready whatever happens to its notification
        log.exception("clip-ready notification not planned alert=%s", alert_id)


def _delete_orphans(name: str) -> None:
    """Remove what killed attempts of this clip left beside it. Storage.save gives an attempt that
    found the name taken <stem>_<7 random characters>.mp4; an attempt killed between storing and
    committing (SIGKILL, out of memory, hard time limit) leaves that file behind, unreferenced."""
    storage = clip_storage()
    folder, _, base = name.rpartition("/")
    stem = re.escape(base.rsplit(".", 1)[0].split("_", 1)[0])
    sibling = re.compile(rf"^{stem}(_[A-Za-z0-9]{{7}})?\.mp4$")
    try:
        _, files = storage.listdir(folder)
        for orphan in [f for f in files if sibling.match(f) and f != base]:
            storage.delete(f"{folder}/{orphan}")
            log.warning("orphan clip removed name=%s/%s kept=%s (left by a killed build attempt)", folder, orphan, name)
    except STORAGE_ERRORS as exc:
        log.warning("orphan clips not checked name=%s error=%s", name, exc)


def _delete_spool(name: str) -> None:
    try:
        clip_storage().delete(name)
    except STORAGE_ERRORS as exc:
        log.warning("spool not deleted name=%s error=%s", name, exc)


def _part(row: ClipFields) -> str:
    return ClipPart.EVENT if isinstance(row, EventClip) else ClipPart.FIRST


def _fail(row: ClipFields, error: str, *, retry: bool) -> JobOutcome:
    model = clip_model(_part(row))
    attempts = model.objects.filter(pk=row.pk).values_list("clip_attempts", flat=True).get()
    retry_in = _backoff(attempts) if retry and attempts < settings.CLIP_BUILD_MAX_ATTEMPTS else None
    if retry and retry_in is None:
        error += f" — gave up after {attempts} attempts; fix the cause, then use 'Retry clip build' in the admin."
    failed = model.objects.filter(pk=row.pk, clip_status=ClipStatus.BUILDING, clip_task_id=row.clip_task_id).update(
        clip_status=ClipStatus.FAILED, clip_error=error, clip_status_changed_at=timezone.now(),
    )
    if not failed:  # the lease expired and another attempt took over: its outcome stands
        log.info("clip build abandoned alert=%s part=%s task=%s (lost the claim): %s", row.pk, _part(row),
                 row.clip_task_id, error)
        return JobOutcome("skipped", detail="lost the claim")
    log.error("clip failed alert=%s part=%s camera=%s attempt=%s retry_in=%s error=%s", row.pk, _part(row),
              clip_alert(row).camera.name, attempts, f"{retry_in:.0f}" if retry_in is not None else "none", error)
    return JobOutcome("retry" if retry_in is not None else "failed", retry_in=retry_in, detail=error)


def clip_job_enqueue(*, alert_id: int, part: str = ClipPart.FIRST) -> None:
    """Send the build job once the current transaction commits. A broker that is down loses nothing:
    the clip row stays queued with its spool, and the sweeper sends the job again later."""

    def send() -> None:
        from alerts.tasks import build_clip, enqueue_now

        enqueue_now(build_clip, alert_id, str(part))

    transaction.on_commit(send)


def clip_job_retry(*, alert_id: int, part: str = ClipPart.FIRST) -> bool:
    """Put a failed build back in the queue (the admin's retry action)."""
    with transaction.atomic():
        queued = clip_model(part).objects.filter(pk=alert_id, clip_status=ClipStatus.FAILED).update(
            clip_status=ClipStatus.QUEUED, clip_task_id="", clip_attempts=0, clip_status_changed_at=timezone.now(),
        )
        if queued:
            clip_job_enqueue(alert_id=alert_id, part=part)
    return queued == 1


def clip_jobs_sweep(*, now: datetime | None = None, limit: int = 200) -> int:
    """Re-send jobs whose message was lost, of either clip: queued too long, or building past the
    lease. Returns how many."""
    now = now or timezone.now()
    return sum(_sweep_part(part, now, limit) for part in ClipPart)


def _sweep_part(part: str, now: datetime, limit: int) -> int:
    model = clip_model(part)
    queued_before = now - timedelta(seconds=settings.CLIP_QUEUE_STALE_SECONDS)
    building_before = now - timedelta(seconds=clip_lease_seconds())
    stuck = Q(clip_status=ClipStatus.QUEUED, clip_status_changed_at__lt=queued_before) | Q(
        clip_status=ClipStatus.BUILDING, clip_status_changed_at__lt=building_before
    )
    ids = list(model.objects.filter(stuck).order_by("clip_status_changed_at").values_list("pk", flat=True)[:limit])
    sent = 0
    for alert_id in ids:
        if _give_up_interrupted(alert_id=alert_id, part=part, now=now):
            continue  # re-sending it would only be refused: its attempts are used up
        with transaction.atomic():
            # Conditional again: the job may have moved on since the select.
            if model.objects.filter(stuck, pk=alert_id).update(clip_status=ClipStatus.QUEUED, clip_task_id="",
                                                               clip_status_changed_at=now):
                clip_job_enqueue(alert_id=alert_id, part=part)
                sent += 1
    if sent:
        log.warning("clip sweeper re-enqueued count=%s part=%s", sent, part)
    return sent
