"""Every database write and storage upload of an alert's clip: the spooler thread.

The recorder thread (detection.recording.recorder) only copies packets out of the rings. It hands
this thread, in order:

  raise_alert(recording)         render the snapshot and register the alert (alerts.emitter); a
                                 repeat inside the dedup window cancels the recording, and so
                                 does an event the site's learned model suppresses (re-scored
                                 here first, detection.learning.rescoring)
  close_event(recording, event)  record how the event ended on its alert
  spool(recording, window, ..., part)
                                 write one clip window's packets, as received, to the spool file
                                 (MPEG-TS) in the clips storage and queue that clip's build
  unrecorded(recording, reason, part)
                                 no video came for the window: that clip is failed with the reason

Jobs run in order, so an alert exists before its spool is attached. A database that is down holds
the queue (the job at its head is retried with backoff; nothing is dropped) while the recorder
goes on collecting packets in memory. A storage write that fails is retried with backoff beside
the queue for SPOOL_RETRY_SECONDS, then the alert is failed with the reason. At shutdown the
queue is flushed for at most `flush_seconds`; what is left is logged with its alert ids.
"""
from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.files import File
from django.db import DatabaseError, close_old_connections, connection

from alerts.emitter import alert_clip_spooled, alert_clip_unrecorded, alert_event_close, alert_raise
from alerts.models import ClipPart, clip_storage
from detection.capture.ring import RingSnapshot
from detection.inference.events import Event
from detection.learning.rescoring import Rescorer, suppression_record
from detection.recording.remux import write_snapshot
from detection.recording.thumbnail import thumbnail_jpeg
from detection.threads import BackgroundThread
from shoplift.storage import STORAGE_ERRORS

if TYPE_CHECKING:
    from detection.recording.recorder import Recording

logger = logging.getLogger(__name__)

SPOOL_FORMAT, SPOOL_SUFFIX = "mpegts", ".ts"  # carries H.264/H.265 as received, readable even if cut short
POLL_SECONDS = 0.25
# How long a spool write that fails (full disk, bucket down) is retried. Shorter than the sweeper's
# grace for alerts left recording (alerts.emitter.RECORDING_GRACE_SECONDS), which would fail them.
SPOOL_RETRY_SECONDS = 90.0
DATABASE_RETRY_CAP_SECONDS = 10.0
FLUSH_SECONDS = 10.0  # at shutdown; a service manager's stop timeout should allow for it


@dataclass
class _Spool:
    recording: Recording
    snapshot: RingSnapshot
    warning: str
    part: ClipPart
    name: str | None = None  # set once stored: a retry after a database error does not store it again
    error: str = ""  # the last storage error
    attempts: int = 0
    give_up: float = 0.0  # monotonic time after which a failing storage write is abandoned
    due: float = 0.0


@dataclass
class _Job:
    label: str
    recording: Recording
    run: Callable[[], object] = field(repr=False)


class Spooler(BackgroundThread):
    """Start with start(); the recorder submits jobs from its thread; set `stop` to flush and end."""

    thread_name = "clip-spooler"

    def __init__(self, *, stop: threading.Event, flush_seconds: float = FLUSH_SECONDS, max_jobs: int = 10000,
                 rescorer: Rescorer | None = None) -> None:
        self.stop = stop
        self.rescorer = rescorer  # the sites' learned models, reloaded by the supervisor
        self.flush_seconds = flush_seconds
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=max_jobs)
        self._head: _Job | None = None  # a job the database refused, retried before any other
        self._database_failures = 0
        self._retrying: list[_Spool] = []  # storage writes waiting for their next try
        self.raised = self.suppressed = self.spooled = self.failed = self.dropped = 0
        self.model_suppressed = 0  # events a learned model scored below its threshold
        self.by_camera: dict[int, Counter[str]] = defaultdict(Counter)  # events / suppressed per camera, for metrics
        self.left_at_stop: list[str] = []  # what the shutdown flush could not finish, for the log and tests

    # --- the recorder's thread ----------------------------------------------------------------------

    def raise_alert(self, recording: Recording) -> None:
        self._submit(_Job("raise", recording, lambda: self._raise(recording)))

    def close_event(self, recording: Recording, event: Event) -> None:
        self._submit(_Job("close", recording, lambda: self._close(recording, event)))

    def spool(self, recording: Recording, snapshot: RingSnapshot, warning: str, part: ClipPart = ClipPart.FIRST) -> None:
        job = _Spool(recording, snapshot, warning, part)
        self._submit(_Job(f"spool {part}", recording, partial(self._store, job)))

    def unrecorded(self, recording: Recording, reason: str, part: ClipPart = ClipPart.FIRST) -> None:
        self._submit(_Job(f"unrecorded {part}", recording, lambda: alert_clip_unrecorded(
            alert_id=recording.alert_id, reason=reason, part=part)))

    @property
    def pending(self) -> int:
        return self._jobs.qsize() + len(self._retrying) + (self._head is not None)

    def _submit(self, job: _Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:  # only if the database has been down for a very long time
            self.dropped += 1
            logger.error("spooler queue full: %s dropped alert=%s camera=%s event_type=%s", job.label,
                         job.recording.alert_id, job.recording.event.camera_name, job.recording.event.event_type)

    # --- the spooler thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self._step(timeout=POLL_SECONDS)
            self._flush()
        finally:
            connection.close()

    def _step(self, *, timeout: float) -> None:
        close_old_connections()
        job = self._head
        if job is None:
            try:
                job = self._jobs.get(timeout=timeout) if timeout > 0 else self._jobs.get_nowait()
            except queue.Empty:
                job = None
        if job is not None:
            self._attempt(job)
            if self._head is not None:
                return  # the database is down: nothing else can go through before that job
        now = time.monotonic()
        for spool in [s for s in self._retrying if s.due <= now]:
            self._retrying.remove(spool)
            self._attempt(_Job(f"spool {spool.part}", spool.recording, partial(self._store, spool)))
            if self._head is not None:
                return  # that one is now the job at the head, kept for the database

    def _attempt(self, job: _Job) -> None:
        try:
            job.run()
        except DatabaseError as exc:  # the database is down or restarting: keep the job, try again
            self._head = job
            self._database_failures += 1
            delay = min(0.5 * 2 ** (self._database_failures - 1), DATABASE_RETRY_CAP_SECONDS)
            logger.warning("database unavailable: %s of alert=%s camera=%s kept, retry in %.1f s (failure %s): %s",
                           job.label, job.recording.alert_id, job.recording.event.camera_name, delay,
                           self._database_failures, exc)
            connection.close()  # a fresh connection on the next try
            if self.stop.is_set():  # flushing at shutdown: the deadline bounds the waiting
                time.sleep(min(delay, 1.0))
            else:
                self.stop.wait(delay)
            return
        except Exception:  # loop top: one bad job must not stop the others
            self.failed += 1
            logger.exception("spooler %s failed alert=%s camera=%s", job.label, job.recording.alert_id,
                             job.recording.event.camera_name)
        self._head = None
        self._database_failures = 0

    def _flush(self) -> None:
        """Finish what is queued, within flush_seconds; log what could not be finished."""
        deadline = time.monotonic() + self.flush_seconds
        while time.monotonic() < deadline and (self._head is not None or not self._jobs.empty() or self._retrying):
            for spool in self._retrying:
                spool.due = 0.0  # no more waiting between tries
            if self._head is None and self._jobs.empty():
                time.sleep(0.1)  # only storage retries left: do not spin on a full disk
            self._step(timeout=0)
        for spool in list(self._retrying):
            self._retrying.remove(spool)
            reason = f"the detector stopped before the spool could be stored ({spool.error})"
            self._attempt(_Job(f"unrecorded {spool.part}", spool.recording, partial(
                alert_clip_unrecorded, alert_id=spool.recording.alert_id, reason=reason, part=spool.part)))
        left = ([self._head] if self._head is not None else []) + list(self._jobs.queue)
        self.left_at_stop = [f"{job.label} alert={job.recording.alert_id} camera={job.recording.event.camera_name}"
                             for job in left]
        self.left_at_stop += [f"spool {s.part} alert={s.recording.alert_id} camera={s.recording.event.camera_name}"
                              for s in self._retrying]
        if self.left_at_stop:
            logger.error("shutdown: %s clip jobs not finished in %.0f s (alerts left recording are failed by the "
                         "sweeper): %s", len(self.left_at_stop), self.flush_seconds, "; ".join(self.left_at_stop))

    # --- the jobs -----------------------------------------------------------------------------------

    def _raise(self, recording: Recording) -> None:
        event = recording.event
        rescore = self.rescorer.rescore(event) if self.rescorer is not None else None
        if rescore is not None and rescore.suppressed:
            suppression_record(rescore=rescore, event=event)
            recording.cancelled = True  # no alert: the recorder stops collecting its packets
            self.model_suppressed += 1
            self.by_camera[event.camera_id]["model_suppressed"] += 1
            return
        recording.raise_tries += 1
        result = alert_raise(event, thumbnail=thumbnail_jpeg(event), retry=recording.raise_tries > 1,
                             learned_score=rescore.learned_score if rescore is not None else None,
                             learned_model_version=rescore.version if rescore is not None else "")
        if not result.created:
            recording.cancelled = True  # a repeat: the recorder stops collecting its packets
            self.suppressed += 1
            self.by_camera[event.camera_id]["suppressed"] += 1
            return
        recording.alert_id = result.alert_id
        self.raised += 1
        self.by_camera[event.camera_id]["events"] += 1

    def _close(self, recording: Recording, event: Event) -> None:
        if recording.alert_id is not None:
            # A capped event ends long after its clip was spooled: its alert still gets the end time.
            alert_event_close(alert_id=recording.alert_id, event=event)

    def _store(self, spool: _Spool) -> None:
        """Store the spool file and queue the build. A full disk or an unreachable bucket is retried
        with backoff for SPOOL_RETRY_SECONDS (the packets wait in memory), then the alert is failed
        with the reason."""
        recording = spool.recording
        if recording.alert_id is None:
            return  # its alert was not raised (a repeat, or raising failed and was logged)
        if spool.name is None:
            try:
                spool.name = self._write(recording.alert_id, spool.snapshot, spool.part)
            except STORAGE_ERRORS as exc:
                self._storage_failed(spool, f"{exc.__class__.__name__}: {exc}")
                return
        first, last = spool.snapshot.packets[0].recv_time, spool.snapshot.packets[-1].recv_time
        alert_clip_spooled(alert_id=recording.alert_id, spool_name=spool.name, clip_start=first, clip_end=last,
                           warning=spool.warning, part=spool.part)
        self.spooled += 1

    def _write(self, alert_id: int, snapshot: RingSnapshot, part: ClipPart) -> str:
        stem = f"{alert_id}-event" if part is ClipPart.EVENT else str(alert_id)
        with tempfile.TemporaryDirectory(prefix="spool-") as tmp:
            path = Path(tmp) / f"{stem}{SPOOL_SUFFIX}"
            write_snapshot(snapshot, path, container_format=SPOOL_FORMAT, faststart=False)
            with path.open("rb") as fh:
                return str(clip_storage().save(f"spool/{stem}{SPOOL_SUFFIX}", File(fh, name=path.name)))

    def _storage_failed(self, spool: _Spool, error: str) -> None:
        now = time.monotonic()
        spool.error = error
        spool.attempts += 1
        spool.give_up = spool.give_up or now + SPOOL_RETRY_SECONDS
        retry_in = min(2.0 ** spool.attempts, 30.0)
        if now + retry_in > spool.give_up:
            alert_clip_unrecorded(alert_id=spool.recording.alert_id, reason=f"the spool could not be stored ({error})",
                                  part=spool.part)
            return
        logger.warning("spool not stored alert=%s camera=%s attempt=%s retry_in=%.0f error=%s", spool.recording.alert_id,
                       spool.recording.event.camera_name, spool.attempts, retry_in, error)
        spool.due = now + retry_in
        self._retrying.append(spool)
