"""The detector process's thread for camera status and snapshot writes (alerts and clips have
their own, detection.recording.spooler).

Capture and inference threads must never wait on the database (a locked SQLite file or a slow
PostgreSQL would stall video). They hand work to the Writer instead:

  writer.submit(job)             any callable, run in order on the writer thread; never blocks,
                                 returns False and counts the drop when the queue is full
  writer.submit_status(status)   a CameraStatus; coalesced per camera (only the latest is
                                 written), never dropped, so the dashboard ends up right
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connection
from django.utils import timezone

from alerts.notify import DeliveryError, camera_online_publish
from detection.capture.stream import CameraStatus
from detection.threads import BackgroundThread
from shoplift.masking import mask_text

logger = logging.getLogger(__name__)

# After the stop event, the writer keeps draining for at most this long, then exits.
DRAIN_SECONDS = 1.5
_WAKE = object()  # queue item that only wakes the loop to write pending statuses


@dataclass(frozen=True)
class WriterStats:
    submitted: int
    done: int
    failed: int
    dropped: int  # jobs refused because the queue was full
    pending: int
    statuses_written: int


class Writer(BackgroundThread):
    def __init__(self, *, stop: threading.Event, max_jobs: int = 1000, name: str = "writer") -> None:
        self.stop = stop
        self.name = name
        self.thread_name = f"writer-{name}"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_jobs)
        self._statuses: dict[int, CameraStatus] = {}
        self._status_lock = threading.Lock()
        self._wake_pending = False
        self._submitted = self._done = self._failed = self._dropped = self._statuses_written = 0
        self._published_online: dict[int, bool] = {}  # each camera's state as last sent to MQTT
        self._last_drop_log = 0.0

    # --- any thread ----------------------------------------------------------------------------------

    def submit(self, job: Callable[[], object], *, label: str | None = None) -> bool:
        """Queue a job without blocking. False when the queue is full (the job is dropped and counted)."""
        try:
            self._queue.put_nowait((job, label or getattr(job, "__name__", "job")))
        except queue.Full:
            self._dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 5.0:  # one line per burst, not one per job
                self._last_drop_log = now
                logger.warning("writer %s: queue full (%d jobs), dropped %s (dropped=%d in all)",
                               self.name, self._queue.maxsize, label or "job", self._dropped)
            return False
        self._submitted += 1
        return True

    def submit_status(self, status: CameraStatus) -> None:
        """Record a camera's latest status; the writer thread applies the newest one per camera."""
        with self._status_lock:
            self._statuses[status.camera_id] = status
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # the loop also writes statuses on its own timer

    def stats(self) -> WriterStats:
        return WriterStats(self._submitted, self._done, self._failed, self._dropped, self._queue.qsize(),
                           self._statuses_written)

    # --- the writer thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self._step(timeout=0.2)
            # Last statuses (cameras going offline at shutdown) and queued jobs, within a bound.
            deadline = time.monotonic() + DRAIN_SECONDS
            while time.monotonic() < deadline and (not self._queue.empty() or self._statuses):
                self._step(timeout=0.0)
        finally:
            connection.close()  # this thread's connection; Django would not close it for us

    def _step(self, *, timeout: float) -> None:
        try:
            item = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            item = None
        close_old_connections()
        try:
            self._write_statuses()
            if item is not None and item is not _WAKE:
                self._run_job(*item)
        finally:
            close_old_connections()

    def _run_job(self, job: Callable[[], object], label: str) -> None:
        try:
            job()
        except Exception:  # loop top: one failed job must not stop the writer
            self._failed += 1
            logger.exception("writer %s: job %s failed", self.name, label)
        else:
            self._done += 1

    def _write_statuses(self) -> None:
        with self._status_lock:
            pending, self._statuses = self._statuses, {}
            self._wake_pending = False
        for camera_id, status in pending.items():
            try:
                apply_status(status)
            except Exception:  # loop top: keep it for the next round unless a newer one came
                logger.exception("writer %s: writing status of camera_id=%s failed; will retry", self.name, camera_id)
                with self._status_lock:
                    self._statuses.setdefault(camera_id, status)
            else:
                self._statuses_written += 1
                self._publish_online(status)

    def _publish_online(self, status: CameraStatus) -> None:
        """Tell MQTT subscribers (NOTIFY_MQTT_URL) when a camera goes online or offline: once at start,
        then on each change. A broker that is down is logged and tried again at the next status."""
        if self._published_online.get(status.camera_id) == status.online:
            return
        try:
            camera_online_publish(camera_id=status.camera_id, online=status.online)
        except DeliveryError as exc:
            logger.warning("writer %s: camera state not published camera_id=%s: %s", self.name, status.camera_id, exc)
            return
        self._published_online[status.camera_id] = status.online


def apply_status(status: CameraStatus) -> int:
    """Write one status to its Camera row with a single UPDATE; returns the rows changed."""
    from cameras.models import Camera

    fields: dict[str, Any] = {
        "online": status.online,
        "last_error": mask_text(status.last_error),
        "status_updated_at": timezone.now(),
    }
    if status.last_frame_at is not None:  # keep "last seen" when a camera has not sent since start
        fields["last_frame_at"] = status.last_frame_at
    return Camera.objects.filter(pk=status.camera_id).update(**fields)
