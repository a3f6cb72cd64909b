"""Retention: how long evidence stays in the clips storage (the beat task `apply_retention` and
`manage.py apply_retention` both call `retention_apply`).

Three steps, in this order:

1. Age: each site keeps its alerts' files (first clip, whole-event clip, thumbnail, a failed
   build's spool) for `Site.retention_days`, or CLIP_RETENTION_DAYS.
2. Orphans: spool files and thumbnails no row refers to, and snapshots of cameras that no longer
   exist, once they are an hour old (a file is stored before its row names it). Garbage goes
   before evidence, so this runs before the headroom step.
3. Headroom: while the clips folder's disk has less free space than CLIP_STORAGE_MIN_FREE_BYTES
   (or CLIP_STORAGE_MIN_FREE_PERCENT of the disk, whichever is more), the oldest alerts' files go.
   Object storage (S3) has no free space to measure: the step is skipped there.

A held alert (`alerts.models.alert_held_q`: a legal hold or, by default, a confirmed review) is
never touched, nor an alert whose clip is still being recorded or built. A deleted clip leaves its
row, marked with when and why, and keeping its SHA-256 and size as the record of what was there.
Each alert is locked and re-checked in its own transaction, so a hold set during a run holds, and a
run cut short (a time limit) leaves nothing half-marked that the next run does not finish. Storage
errors are logged and counted; the file keeps its row's reference and is tried again next run.
Each emptied alert gets a "retention_delete" entry in the audit log (alerts.audit), written in its
transaction, naming the files, the bytes, the reason and the clip's SHA-256.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from alerts.audit import audit_record
from alerts.models import Alert, AuditAction, ClipStatus, EventClip, alert_held_q, clip_storage
from cameras.models import Camera, Site
from shoplift.storage import STORAGE_ERRORS

log = logging.getLogger("shoplift.retention")

ORPHAN_MIN_AGE = timedelta(hours=1)  # spools and thumbnails are stored a moment before their row names them
IN_PROGRESS = (ClipStatus.RECORDING, ClipStatus.QUEUED, ClipStatus.BUILDING)
ORPHAN_FOLDERS = ("spool", "thumbnails", "snapshots")


@dataclass(frozen=True)
class FreedFile:
    step: str  # "age", "headroom" or "orphan"
    name: str
    size: int
    alert_id: int | None = None


@dataclass
class RetentionReport:
    dry_run: bool
    expired_alerts: int = 0
    expired_bytes: int = 0
    headroom_alerts: int = 0
    headroom_bytes: int = 0
    orphan_files: int = 0
    orphan_bytes: int = 0
    held_kept: int = 0  # held alerts past their site's days whose files were kept
    errors: int = 0  # files that could not be deleted (or folders not listed); tried again next run
    headroom: str = ""  # what the headroom step found
    files: list[FreedFile] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return self.expired_bytes + self.headroom_bytes + self.orphan_bytes

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (f"retention {verb} {filesizeformat(self.bytes_freed)} ({self.bytes_freed} bytes): "
                f"{self.expired_alerts} alert(s) past their site's days ({self.expired_bytes} bytes), "
                f"{self.headroom_alerts} alert(s) for free-space headroom ({self.headroom_bytes} bytes), "
                f"{self.orphan_files} orphan file(s) ({self.orphan_bytes} bytes); {self.held_kept} held alert(s) "
                f"past their days kept; {self.errors} error(s). Headroom: {self.headroom}")


def retention_apply(*, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run)
    done: set[int] = set()  # alerts already emptied (in a dry run: that would be)
    for site in Site.objects.order_by("pk"):
        _expire_site(site, now=now, report=report, done=done)
    _sweep_orphans(now=now, report=report)
    _keep_headroom(now=now, report=report, done=done)
    log.info("%s", report.summary())
    return report


def _deletable() -> QuerySet[Alert]:
    """Alerts with files retention may delete: not held, no clip in the making."""
    has_files = (Q(clip__gt="") | Q(thumbnail__gt="") | Q(spool_name__gt="")
                 | Q(event_clip__clip__gt="") | Q(event_clip__spool_name__gt=""))
    return (Alert.objects.filter(has_files).exclude(alert_held_q()).exclude(clip_status__in=IN_PROGRESS)
            .exclude(event_clip__clip_status__in=IN_PROGRESS).distinct())


def _expire_site(site: Site, *, now: datetime, report: RetentionReport, done: set[int]) -> None:
    days = site.clip_retention_days
    old = Q(camera__site=site, detected_at__lt=now - timedelta(days=days))
    held = (Alert.objects.filter(old, alert_held_q()).filter(Q(clip__gt="") | Q(event_clip__clip__gt=""))
            .distinct().count())
    report.held_kept += held
    ids = list(_deletable().filter(old).order_by("detected_at", "pk").values_list("pk", flat=True))
    if ids or held:
        log.info("retention site=%s days=%s expired=%s held_kept=%s", site.pk, days, len(ids), held)
    for alert_id in ids:
        freed = _empty_alert(alert_id, step="age", reason=f"retention: older than {days} days", now=now,
                             report=report)
        if freed is not None:
            done.add(alert_id)
            report.expired_alerts += 1
            report.expired_bytes += freed


def _keep_headroom(*, now: datetime, report: RetentionReport, done: set[int]) -> None:
    storage = clip_storage()
    if not isinstance(storage, FileSystemStorage):
        report.headroom = f"skipped: the clips storage ({type(storage).__name__}) has no free space to measure"
        log.info("retention headroom skipped: the clips storage (%s) has no free space to measure; only the age "
                 "limit applies", type(storage).__name__)
        return
    location = str(storage.location)
    try:
        usage = shutil.disk_usage(location)
    except OSError as exc:
        report.errors += 1
        report.headroom = f"not measured: {exc}"
        log.error("retention headroom not measured location=%s error=%s", location, exc)
        return
    needed = max(int(settings.CLIP_STORAGE_MIN_FREE_BYTES),
                 int(usage.total * float(settings.CLIP_STORAGE_MIN_FREE_PERCENT) / 100))
    free = usage.free
    if free >= needed:
        report.headroom = f"{free} bytes free, at least {needed} wanted: nothing to do"
        return
    log.warning("clips storage below its headroom location=%s free=%s needed=%s: deleting the oldest unheld clips",
                location, free, needed)
    reason = f"retention: the clips storage was below its free-space headroom ({free} of {needed} bytes free)"
    for alert_id in list(_deletable().order_by("detected_at", "pk").values_list("pk", flat=True)):
        if alert_id in done:
            continue  # a dry run's age step already counted it
        freed = _empty_alert(alert_id, step="headroom", reason=reason, now=now, report=report)
        if freed is None:
            continue
        done.add(alert_id)
        report.headroom_alerts += 1
        report.headroom_bytes += freed
        free = free + freed if report.dry_run else shutil.disk_usage(location).free
        log.warning("retention headroom alert=%s freed=%s free=%s needed=%s", alert_id, freed, free, needed)
        if free >= needed:
            report.headroom = f"restored: {free} bytes free, at least {needed} wanted"
            return
    report.headroom = f"still short: {free} bytes free, {needed} wanted, and no unheld clips left"
    log.error("clips storage still below its headroom location=%s free=%s needed=%s: every clip left is held or "
              "being built; add space or release holds", location, free, needed)


def _empty_alert(alert_id: int, *, step: str, reason: str, now: datetime, report: RetentionReport) -> int | None:
    """Delete one alert's files and mark its rows; None when it has become held (or lost its files)
    since it was listed. Returns the bytes freed (in a dry run: that would be)."""
    storage = clip_storage()
    with transaction.atomic():
        # Locked and re-checked: a manager's hold saved since the listing wins.
        alert = (Alert.objects.select_for_update().filter(pk=alert_id).exclude(alert_held_q())
                 .exclude(clip_status__in=IN_PROGRESS).first())
        event = EventClip.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None or (event is not None and event.clip_status in IN_PROGRESS):
            return None
        rows: list[tuple[type[Alert] | type[EventClip], dict[str, str]]] = [
            (Alert, {"clip": alert.clip.name or "", "thumbnail": alert.thumbnail.name or "",
                     "spool_name": alert.spool_name}),
        ]
        if event is not None:
            rows.append((EventClip, {"clip": event.clip.name or "", "spool_name": event.spool_name}))
        freed, touched = 0, False
        cleared: list[dict[str, object]] = []
        deleted: list[dict[str, object]] = []  # for the audit entry
        for _, names in rows:
            cleared.append({})
            for field_name, name in names.items():
                if not name:
                    continue
                size = _delete(storage, name, dry_run=report.dry_run, report=report, alert_id=alert_id)
                if size is None:
                    continue  # kept on the row: tried again next run
                touched = True
                cleared[-1][field_name] = ""
                freed += size
                report.files.append(FreedFile(step, name, size, alert_id))
                deleted.append({"name": name, "size": size})
        if alert.clip_deleted_at is None and any("clip" in fields for fields in cleared):
            cleared[0] |= {"clip_deleted_at": now, "clip_deleted_reason": reason[:200]}
        if not report.dry_run:
            for (model, _), fields in zip(rows, cleared, strict=True):
                if fields:
                    model.objects.filter(pk=alert_id).update(**fields)
            if touched:
                audit_record(
                    action=AuditAction.RETENTION_DELETE, site_id=alert.camera.site_id, object_type="alert",
                    object_id=alert_id, summary=f"Alert #{alert_id}: {len(deleted)} file(s) of {freed} bytes deleted "
                                                f"({reason})",
                    detail={"step": step, "reason": reason, "files": deleted, "bytes": freed,
                            "clip_sha256": alert.clip_sha256, "clip_size": alert.clip_size,
                            "event_clip_sha256": event.clip_sha256 if event is not None else None},
                )
    if not touched:
        return None
    log.info("retention %s alert=%s freed=%s reason=%s", "would empty" if report.dry_run else "emptied", alert_id,
             freed, reason)
    return freed


def _delete(storage: Storage, name: str, *, dry_run: bool, report: RetentionReport,
            alert_id: int | None = None) -> int | None:
    """Delete one file; its size, 0 when it was already gone, None when the storage failed."""
    try:
        if not storage.exists(name):
            return 0
        size = int(storage.size(name))
        if not dry_run:
            storage.delete(name)
    except STORAGE_ERRORS as exc:
        report.errors += 1
        log.error("retention could not delete alert=%s name=%s error=%s: kept, tried again next run", alert_id, name,
                  exc)
        return None
    return size


def _sweep_orphans(*, now: datetime, report: RetentionReport) -> None:
    storage = clip_storage()
    # Read before listing: a file named by a row only after this is younger than ORPHAN_MIN_AGE.
    keep = {
        "spool": set(Alert.objects.filter(spool_name__gt="").values_list("spool_name", flat=True))
        | set(EventClip.objects.filter(spool_name__gt="").values_list("spool_name", flat=True)),
        "thumbnails": set(Alert.objects.filter(thumbnail__gt="").values_list("thumbnail", flat=True)),
        "snapshots": {f"snapshots/{pk}.jpg" for pk in Camera.objects.values_list("pk", flat=True)},
    }
    before = now - ORPHAN_MIN_AGE
    for folder in ORPHAN_FOLDERS:
        try:
            names = [name for name in _walk(storage, folder) if name not in keep[folder]]
        except STORAGE_ERRORS as exc:
            report.errors += 1
            log.error("retention could not list folder=%s error=%s", folder, exc)
            continue
        for name in names:
            try:
                if storage.get_modified_time(name) >= before:
                    continue  # may be a file whose row is being written
            except STORAGE_ERRORS as exc:
                report.errors += 1
                log.error("retention could not read name=%s error=%s", name, exc)
                continue
            size = _delete(storage, name, dry_run=report.dry_run, report=report)
            if size is None:
                continue
            report.orphan_files += 1
            report.orphan_bytes += size
            report.files.append(FreedFile("orphan", name, size))
            log.info("retention %s orphan name=%s freed=%s", "would delete" if report.dry_run else "deleted", name,
                     size)


def _walk(storage: Storage, folder: str) -> Iterator[str]:
    try:
        dirs, files = storage.listdir(folder)
    except FileNotFoundError:
        return  # nothing was ever stored there
    for name in files:
        yield f"{folder}/{name}"
    for sub in dirs:
        yield from _walk(storage, f"{folder}/{sub}")
