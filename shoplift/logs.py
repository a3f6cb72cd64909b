"""Logging shared by every process: one plain-text file per process type in LOG_DIR.

A line is `time level logger key=value ... message`. The key=value fields come from `extra=`
(camera, stage, attempt, duration, ...). Records pass through a bounded queue to a writer thread,
so a slow or stuck disk never blocks capture or inference: when the queue is full, records are
dropped and counted, never waited for. Rotated files are gzip-compressed. Passwords in URLs are
masked in every record.
"""
from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import queue
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from shoplift.masking import mask_text

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def process_type() -> str:
    """web, worker, detectors or manage: names the log file. SHOPLIFT_PROCESS overrides the guess."""
    explicit = os.environ.get("SHOPLIFT_PROCESS")
    if explicit:
        return explicit
    argv = " ".join(sys.argv[:3])
    if "gunicorn" in argv:
        return "web"
    if "celery" in argv:
        return "worker"
    if "run_detectors" in argv:
        return "detectors"
    return "manage"


class MaskCredentialsFilter(logging.Filter):
    """Mask URL passwords in every record, whatever code produced it (PyAV errors quote URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted tracebacks quote exception strings; cache a masked copy.
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask_text(value))
        return True


# Control characters (and Unicode line breaks) written as escapes: a login name or a camera error
# carrying a newline must not start a forged line of the log.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_control(text: str) -> str:
    return text.translate(_CONTROL)


def _field(value: Any) -> str:
    text = escape_control(f"{value:.3f}" if isinstance(value, float) else str(value))
    if " " in text or '"' in text or "=" in text or not text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_field(v)}" for k, v in vars(record).items() if k not in _STANDARD)
        line = f"{record.asctime} {record.levelname} {record.name}"
        message = escape_control(record.message)
        return f"{line} {fields} {message}" if fields else f"{line} {message}"


# Logs name cameras, users and addresses: readable by the service's user and group only,
# whatever the umask (clips and spools get the same through FILE_UPLOAD_PERMISSIONS).
LOG_FILE_MODE = 0o640


def _gzip_rotator(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(dest, LOG_FILE_MODE)
    os.remove(source)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    def _open(self) -> Any:
        stream = super()._open()
        os.chmod(self.baseFilename, LOG_FILE_MODE)
        return stream


def rotating_file_handler(path: Path, *, max_bytes: int, backups: int) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.namer = lambda name: f"{name}.gz"
    handler.rotator = _gzip_rotator
    return handler


class QueuedHandler(logging.handlers.QueueHandler):
    """Hands records to `target` on a writer thread through a bounded queue; never blocks the caller."""

    def __init__(self, target: logging.Handler, *, capacity: int = 10_000) -> None:
        super().__init__(queue.Queue(maxsize=capacity))
        self.target, self.capacity = target, capacity
        self.dropped = 0
        self._lock_dropped = threading.Lock()
        self._start_listener()
        # Threads don't survive fork (Celery's prefork pool, run_detectors --processes): give each
        # child its own queue and writer thread, or its records would go to a queue nobody reads.
        os.register_at_fork(after_in_child=self._after_fork)

    def _start_listener(self) -> None:
        self.listener = logging.handlers.QueueListener(self.queue, self.target, respect_handler_level=True)
        self.listener.start()

    def _after_fork(self) -> None:
        self.queue = queue.Queue(maxsize=self.capacity)
        self._lock_dropped = threading.Lock()
        self._start_listener()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            with self._lock_dropped:
                self.dropped += 1

    def close(self) -> None:
        if self.listener._thread is not None:  # close() runs again at interpreter exit
            self.listener.stop()  # drains what is queued
        self.target.close()
        super().close()


def file_handler(*, log_dir: str, max_bytes: int = 20 * 1024 * 1024, backups: int = 10) -> logging.Handler:
    """The handler LOGGING names: LOG_DIR/<process type>.log behind a queue."""
    target = rotating_file_handler(Path(log_dir) / f"{process_type()}.log", max_bytes=max_bytes, backups=backups)
    target.setFormatter(KeyValueFormatter())
    return QueuedHandler(target)
