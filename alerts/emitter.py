"""The one place that registers alerts raised by the detectors.

`alert_raise` takes a finished rules decision (an event that just started; the detectors pass
their detection.inference.events.Event, which has the attributes of `RaisedEvent`) and either
creates an Alert or, when the same (camera, zone, event type) raised one less than
DEDUP_WINDOW_SECONDS earlier, folds it into that alert's suppressed count. Raised again as a retry
after a lost connection (the commit may have happened), the same event finds its alert.

The dedup check is a claim on an alerts.DedupKey row: one conditional UPDATE whose row count
says who won, inside the same transaction that creates the alert. Two processes (or machines)
racing on the same key serialize on that row, so exactly one creates the alert and the other sees
it; the state is in the database, so it survives restarts. No read-then-write.

Called from the detector process's spooler thread (detection.recording.spooler), never from the
frame loop or the recorder thread.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Greatest
from django.utils import timezone

from alerts.models import WHOLE_FRAME, Alert, ClipPart, ClipStatus, DedupKey, EventClip, NotifyMessage, clip_storage
from cameras.models import Zone
from shoplift.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

# A recording alert is abandoned when it is older than the longest clip plus this.
RECORDING_GRACE_SECONDS = 120.0


class RaisedEvent(Protocol):
    """What an alert records of a detector's event. Times are epoch seconds."""

    @property
    def camera_id(self) -> int: ...
    @property
    def camera_name(self) -> str: ...
    @property
    def zone_id(self) -> int | None: ...
    @property
    def zone_name(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def start(self) -> float: ...
    @property
    def last_high(self) -> float: ...
    @property
    def end(self) -> float | None: ...
    @property
    def clip_start(self) -> float: ...
    @property
    def clip_end(self) -> float: ...
    @property
    def track_json(self) -> dict[str, object] | None: ...


@dataclass(frozen=True)
class RaiseResult:
    """`alert_id` is the new alert, or the earlier alert a suppressed event was counted on (None if
    that alert has since been deleted)."""

    alert_id: int | None
    created: bool

    @property
    def suppressed(self) -> bool:
        return not self.created


def epoch_to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def alert_raise(event: RaisedEvent, *, thumbnail: bytes = b"", retry: bool = False,
                window_seconds: float | None = None, learned_score: float | None = None,
                learned_model_version: str = "") -> RaiseResult:
    """Create the alert for a started event, unless its key raised one inside the dedup window.
    `thumbnail` is the snapshot as JPEG (b"": none). `retry`: an earlier call for this very event
    failed, perhaps after its commit; an alert of the same key and start is then this event's.
    `learned_score`: a site's learned model re-scored the event (detection.learning.rescoring); the
    alert is raised on that score and records it, the model's version and the rule score."""
    window = timedelta(seconds=settings.DEDUP_WINDOW_SECONDS if window_seconds is None else window_seconds)
    at = epoch_to_datetime(event.start)
    key_id = _dedup_key_id(event)
    with transaction.atomic():
        # The claim: only a key whose last alert is old enough (or absent) is updated, atomically.
        claimed = DedupKey.objects.filter(pk=key_id).filter(
            Q(last_alert_at__isnull=True) | Q(last_alert_at__lte=at - window)
        ).update(last_alert_at=at)
        if not claimed and retry:
            raised = DedupKey.objects.filter(pk=key_id, last_alert_at=at).values_list("last_alert_id", flat=True).first()
            if raised is not None and Alert.objects.filter(pk=raised).exists():
                # This very event raised it (same key, same start) before a lost connection hid the commit.
                logger.info("alert already raised alert=%s camera=%s event_type=%s", raised, event.camera_id,
                            event.event_type)
                return RaiseResult(alert_id=raised, created=True)
        if not claimed:
            return _suppress(event, key_id, window)
        alert = _alert_create(event, at, learned_score=learned_score, learned_model_version=learned_model_version)
        DedupKey.objects.filter(pk=key_id).update(last_alert_id=alert.pk)
    if thumbnail:
        # Storage after the transaction, never inside it: a slow bucket must not hold the key's row
        # lock (every detector process raising on that key would wait on it). An alert whose
        # thumbnail could not be stored stays, without one.
        _thumbnail_store(alert, thumbnail)
    logger.info("alert raised alert=%s camera=%s camera_name=%s zone=%s event_type=%s score=%.3f start=%s "
                "clip=%.1f..%.1f%s", alert.pk, event.camera_id, event.camera_name, event.zone_name or "whole frame",
                event.event_type, event.score, at.isoformat(), event.clip_start, event.clip_end,
                "" if learned_score is None else f" learned_score={learned_score:.3f} model={learned_model_version}")
    _notify(alert.pk)
    return RaiseResult(alert_id=alert.pk, created=True)


def _notify(alert_id: int) -> None:
    from alerts.notify import notify_plan

    try:
        notify_plan(alert_id=alert_id, message=NotifyMessage.ALERT)
    except Exception:  # the alert stands whatever happens to its notifications
        logger.exception("alert notifications not planned alert=%s", alert_id)


def alert_event_close(*, alert_id: int, event: RaisedEvent) -> bool:
    """Record how an event ended (end time, peak score, the person's track) on its alert. The
    clips' windows are set when they are spooled."""
    alert = Alert.objects.filter(pk=alert_id)
    # An alert a learned model re-scored keeps the learned score it was raised on.
    peak = Case(When(learned_score__isnull=False, then=F("score")), default=Greatest(F("score"), event.score))
    updated = alert.update(event_end=epoch_to_datetime(event.end if event.end is not None else event.last_high),
                           score=peak)
    track = event.track_json
    if track is not None:  # the person's track now reaches the event's last high sample
        alert.update(track=track)
    return bool(updated)


def _dedup_key_id(event: RaisedEvent) -> int:
    # get_or_create retries a lookup when a concurrent insert wins (IntegrityError on the unique key).
    key, _ = DedupKey.objects.get_or_create(
        camera_id=event.camera_id, zone_key=event.zone_id if event.zone_id is not None else WHOLE_FRAME,
        event_type=event.event_type,
    )
    return int(key.pk)


def _suppress(event: RaisedEvent, key_id: int, window: timedelta) -> RaiseResult:
    last_id = DedupKey.objects.filter(pk=key_id).values_list("last_alert_id", flat=True).first()
    if last_id is not None:
        Alert.objects.filter(pk=last_id).update(suppressed_count=F("suppressed_count") + 1,
                                                last_suppressed_at=timezone.now())
    logger.info("alert suppressed (repeat within %ss) alert=%s camera=%s camera_name=%s zone=%s event_type=%s "
                "score=%.3f start=%s", window.total_seconds(), last_id, event.camera_id, event.camera_name,
                event.zone_name or "whole frame", event.event_type, event.score, epoch_to_datetime(event.start).isoformat())
    return RaiseResult(alert_id=last_id, created=False)


def _alert_create(event: RaisedEvent, at: datetime, *, learned_score: float | None,
                  learned_model_version: str) -> Alert:
    zone_id = event.zone_id
    if zone_id is not None and not Zone.objects.filter(pk=zone_id).exists():
        zone_id = None  # deleted since the rules were loaded; zone_name keeps what it was
    return Alert.objects.create(
        camera_id=event.camera_id, zone_id=zone_id, zone_name=event.zone_name, event_type=event.event_type,
        score=event.score if learned_score is None else learned_score, event_start=at, detected_at=timezone.now(),
        # The rule score as raised, on every alert: what a learned model sees of it when it re-scores an
        # event, so training reads the same value (`score` grows to the event's peak as it goes on).
        rule_score=event.score, learned_score=learned_score, learned_model_version=learned_model_version,
        clip_start=epoch_to_datetime(event.clip_start), clip_end=epoch_to_datetime(event.clip_end),
        clip_status=ClipStatus.RECORDING, clip_status_changed_at=timezone.now(), track=event.track_json,
    )


def _thumbnail_store(alert: Alert, jpeg: bytes) -> None:
    try:
        # Through clip_storage() when used, like every reader of the field, so a deployment (or a
        # test) that swaps the clips storage gets the thumbnail where it reads it.
        name = clip_storage().save(_thumbnail_name(alert), ContentFile(jpeg))
    except STORAGE_ERRORS as exc:
        logger.warning("thumbnail not stored alert=%s error=%s: the alert stays without one", alert.pk, exc)
        return
    Alert.objects.filter(pk=alert.pk).update(thumbnail=name)
    alert.thumbnail.name = name


def _thumbnail_name(alert: Alert) -> str:
    return f"thumbnails/{alert.camera_id}/{alert.event_start:%Y/%m/%d}/{alert.pk}.jpg"


# --- The clip's way from recording to the build queue (called by detection.recording.spooler) --------

def alert_clip_spooled(*, alert_id: int, spool_name: str, clip_start: float, clip_end: float,
                       warning: str = "", part: str = ClipPart.FIRST) -> bool:
    """The clip window's packets are in the spool file: queue the build. `part` is the alert's
    first clip (its state is on the alert, which was `recording`) or its whole-event clip (a new
    EventClip row).

    The clip bounds become what was recorded (the start snaps back to a keyframe; a camera that
    stopped or a shutdown can cut the end), so the builder checks the clip against the truth.
    `warning` says what of the window is missing (a camera that stalled, packets the recorder
    lost); the clip is then built from what there is and shows the warning instead of looking whole.
    """
    from alerts.clip_jobs import clip_job_enqueue

    fields = dict(spool_name=spool_name, clip_start=epoch_to_datetime(clip_start), clip_end=epoch_to_datetime(clip_end),
                  clip_warning=warning, clip_status=ClipStatus.QUEUED, clip_status_changed_at=timezone.now())
    with transaction.atomic():
        updated = _clip_row_set(alert_id, part, fields)
        if updated:
            clip_job_enqueue(alert_id=alert_id, part=part)
    if updated:
        logger.info("clip spooled alert=%s part=%s spool=%s seconds=%.2f", alert_id, part, spool_name,
                    clip_end - clip_start)
        if warning:
            logger.warning("clip incomplete alert=%s part=%s warning=%s", alert_id, part, warning)
    return updated


def alert_clip_unrecorded(*, alert_id: int | None, reason: str, part: str = ClipPart.FIRST) -> bool:
    """No clip can be built (no video came for the window, the spool could not be stored): the
    alert stays, its clip marked failed with the reason."""
    if alert_id is None:
        return False
    updated = _clip_row_set(alert_id, part, dict(clip_status=ClipStatus.FAILED, clip_error=f"No clip: {reason}.",
                                                 clip_status_changed_at=timezone.now()))
    logger.error("clip not recorded alert=%s part=%s reason=%s", alert_id, part, reason)
    return updated


def _clip_row_set(alert_id: int, part: str, fields: dict[str, Any]) -> bool:
    """Move a clip out of recording: the first clip's fields on its alert (only while it is
    `recording`), or the whole-event clip's new row (only once). False if it had already moved."""
    if part == ClipPart.EVENT:
        if not Alert.objects.filter(pk=alert_id).exists():
            return False
        _, created = EventClip.objects.get_or_create(alert_id=alert_id, defaults=fields)
        return created
    return bool(Alert.objects.filter(pk=alert_id, clip_status=ClipStatus.RECORDING).update(**fields))


def alert_recordings_abandon(*, now: datetime | None = None) -> int:
    """Mark failed the alerts still `recording` long after any clip window could have ended: their
    detector process died (killed, crashed, machine lost) before it spooled the clip. The alert
    and its snapshot stay; staff see why there is no clip. Returns how many."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.CLIP_MAX_SECONDS + RECORDING_GRACE_SECONDS)
    ids = Alert.objects.filter(clip_status=ClipStatus.RECORDING, clip_status_changed_at__lt=stale_before)
    reason = "the detector process stopped before the clip was recorded"
    return sum(alert_clip_unrecorded(alert_id=pk, reason=reason) for pk in ids.values_list("pk", flat=True)[:200])


def alerts_sweep(*, now: datetime | None = None) -> int:
    """The periodic sweep (Celery beat, and the first detector shard): abandoned recordings, then
    clip jobs and notifications whose message was lost. Returns how many it moved."""
    from alerts.clip_jobs import clip_jobs_sweep
    from alerts.notify import deliveries_sweep

    return alert_recordings_abandon(now=now) + clip_jobs_sweep(now=now) + deliveries_sweep(now=now)
