"""Plain-text logs: key=value lines, masked credentials, gzip rotation, and a queue that never blocks."""
from __future__ import annotations

import gzip
import logging
import os
import threading

from shoplift.logs import KeyValueFormatter, MaskCredentialsFilter, QueuedHandler, process_type, rotating_file_handler
from tests.support.rtsp import wait_until


class BlockedHandler(logging.Handler):
    """A handler stuck on a dead disk until released."""

    def __init__(self) -> None:
        super().__init__()
        self.unblock = threading.Event()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.unblock.wait()
        self.records.append(record.getMessage())


def make_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_it_never_blocks_the_caller_when_the_disk_is_stuck():
    blocked = BlockedHandler()
    queued = QueuedHandler(blocked, capacity=50)
    logger = make_logger("test.blocked", queued)
    caller = threading.Thread(target=lambda: [logger.info("frame %s", i) for i in range(5000)])
    caller.start()
    caller.join(timeout=10)
    try:
        assert not caller.is_alive(), "logging blocked the caller while the handler was stuck"
        assert queued.dropped >= 5000 - 51  # the queue holds 50 and the writer thread holds one
    finally:
        blocked.unblock.set()
    wait_until(lambda: len(blocked.records) >= 50, 10, message="queued records written once the disk is back")
    queued.close()
    assert blocked.records[0] == "frame 0"


def test_it_writes_one_key_value_line_per_event_with_passwords_masked(tmp_path):
    path = tmp_path / "detectors.log"
    target = rotating_file_handler(path, max_bytes=10_000_000, backups=2)
    target.setFormatter(KeyValueFormatter())
    queued = QueuedHandler(target)
    queued.addFilter(MaskCredentialsFilter())
    logger = make_logger("shoplift.capture", queued)
    logger.warning("reconnecting to %s", "rtsp://admin:hunter2@10.0.0.5/ch1",
                   extra={"camera": "Aisle 3", "stage": "capture", "attempt": 4, "duration": 1.23456,
                          "url": "rtsp://admin:hunter2@10.0.0.5/ch1"})
    try:
        raise ConnectionError("rtsp://admin:hunter2@10.0.0.5/ch1 refused")
    except ConnectionError:
        logger.exception("open failed", extra={"camera": "Aisle 3"})
    queued.close()
    text = path.read_text()
    assert "hunter2" not in text
    first = text.splitlines()[0]
    assert " WARNING shoplift.capture camera=\"Aisle 3\" stage=capture attempt=4 duration=1.235 " in first
    assert first.endswith("reconnecting to rtsp://admin:****@10.0.0.5/ch1")
    assert "ConnectionError: rtsp://admin:****@10.0.0.5/ch1 refused" in text


def test_it_rotates_and_compresses_old_files(tmp_path):
    path = tmp_path / "worker.log"
    target = rotating_file_handler(path, max_bytes=2000, backups=3)
    target.setFormatter(KeyValueFormatter())
    logger = make_logger("test.rotate", target)
    for i in range(200):
        logger.info("line %04d %s", i, "x" * 40)
    target.close()
    rotated = sorted(tmp_path.glob("worker.log.*.gz"))
    assert [p.name for p in rotated] == ["worker.log.1.gz", "worker.log.2.gz", "worker.log.3.gz"]
    assert "line 0" in gzip.decompress(rotated[0].read_bytes()).decode()
    assert "line 0199" in path.read_text()


def test_a_forked_child_gets_its_own_writer_thread(tmp_path):
    path = tmp_path / "forked.log"
    target = rotating_file_handler(path, max_bytes=10_000_000, backups=1)
    target.setFormatter(KeyValueFormatter())
    queued = QueuedHandler(target)
    logger = make_logger("test.fork", queued)
    pid = os.fork()
    if pid == 0:  # the child: log, flush through its own listener, leave without running pytest's teardown
        logger.info("from the child")
        queued.listener.stop()
        os._exit(0)
    os.waitpid(pid, 0)
    logger.info("from the parent")
    queued.close()
    text = path.read_text()
    assert "from the child" in text and "from the parent" in text


def test_it_names_the_log_file_after_the_process(monkeypatch):
    monkeypatch.delenv("SHOPLIFT_PROCESS", raising=False)
    for argv, expected in [(["gunicorn", "shoplift.wsgi"], "web"), (["celery", "-A", "shoplift", "worker"], "worker"),
                           (["manage.py", "run_detectors"], "detectors"), (["manage.py", "migrate"], "manage")]:
        monkeypatch.setattr("sys.argv", argv)
        assert process_type() == expected
    monkeypatch.setenv("SHOPLIFT_PROCESS", "beat")
    assert process_type() == "beat"
