"""The one-thread lifecycle shared by the detector process's loops (inference, recorder, spooler, status writer)."""
from __future__ import annotations

import threading
from typing import Self


class BackgroundThread:
    """Runs `self._run` on one daemon thread named `thread_name`: start(), then join(timeout)."""

    thread_name = "worker"
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it ended (or never started)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
