"""Helpers shared by bench.capacity, bench.latency and bench.dashboard: CPU accounting from /proc,
child processes that are always cleaned up, throw-away PostgreSQL databases, the environment of
a Django process, and a logged-in HTTP client over one keep-alive connection.

The Django benchmarks run their work in a child process (`python -m bench.NAME --json`) so that
each gets its own settings (database, broker) even when the runner imports every module in one
process; the child prints its figures as one line starting with RESULT_PREFIX.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RESULT_PREFIX = "BENCH-RESULT "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PG_ADMIN_URL = "postgres://root@127.0.0.1:5432/postgres"
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


# --- CPU accounting -------------------------------------------------------------------------------

def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def thread_cpu(tid: int) -> float:
    """CPU seconds one live thread of this process has run (schedstat: nanosecond run time; the
    tick-based utime/stime of a thread under-count short bursts). 0.0 once it has ended."""
    try:
        return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # leave guest time out: it is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def rss_bytes(pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


# --- Child processes ------------------------------------------------------------------------------

def spawn(args: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None,
          cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """A process in a session of its own, so that stop() ends it and every child it started."""
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(list(args), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def stop(process: subprocess.Popen[Any] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout` seconds."""
    if process is None:
        return
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children the leader left behind
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(5)


def wait_for(predicate: Any, timeout: float, what: str, *, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def run_child(module: str, *args: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m bench.MODULE --json ARGS` and return the figures it printed.

    Its other output goes through to our stdout as it comes, so a long run shows progress.
    """
    with sigterm_cleans_up():
        return _run_child(module, *args, timeout=timeout, env=env)


def _run_child(module: str, *args: str, timeout: float, env: dict[str, str] | None) -> dict[str, Any]:
    command = [PYTHON, "-m", f"bench.{module}", "--json", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=env or dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True, text=True, bufsize=1)
    result: dict[str, Any] | None = None
    tail: list[str] = []
    # A child that hangs without a word still ends: SIGTERM (its finally blocks clean up), then SIGKILL.
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        stop(process, timeout=30)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
            else:
                print(f"   {line.rstrip()}", flush=True)
                tail = (tail + [line.rstrip()])[-30:]
        code = process.wait(30)
    finally:
        watchdog.cancel()
        stop(process, timeout=30)  # its own finally blocks drop databases and stop servers on SIGTERM
    if result is None:
        reason = f"ran past {timeout:g} s and was stopped" if timed_out.is_set() else f"exited with {code}"
        raise RuntimeError(f"bench.{module} {reason} and gave no result; last lines:\n" + "\n".join(tail))
    return result


def print_result(figures: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def sigterm_raises() -> None:
    """Turn SIGTERM into SystemExit in a child, so its finally blocks clean up when the parent stops it."""
    signal.signal(signal.SIGTERM, _exit_on_signal)


@contextmanager
def sigterm_cleans_up() -> Iterator[None]:
    """While inside: SIGTERM raises SystemExit (so finally blocks stop servers and children), then the
    previous handler is back. Only the main thread can set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- PostgreSQL -----------------------------------------------------------------------------------

def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def pg_database(name: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database (dropped first if a crashed run left it), dropped afterwards."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        if not keep:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Django processes -----------------------------------------------------------------------------

def django_env(*, database_url: str, data_dir: Path, process: str, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off) pointed at a benchmark's own database, folders and broker."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shoplift.settings",
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "CLIP_STORAGE_DIR": str(data_dir / "clips"),
        "LOG_DIR": str(data_dir / "log"),
        "LOG_LEVEL": "INFO",
        "SHOPLIFT_PROCESS": process,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def apply_env(env: dict[str, str]) -> None:
    """Make this process use `env` (before django.setup())."""
    os.environ.clear()
    os.environ.update(env)


def collectstatic(env: dict[str, str]) -> None:
    """What a deployment runs before gunicorn (bin/run does too): the manifest DEBUG-off pages need.
    It writes the git-ignored staticfiles/ folder."""
    subprocess.run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   timeout=120)


def start_gunicorn(env: dict[str, str], *, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    process = spawn([str(Path(PYTHON).with_name("gunicorn")), "shoplift.wsgi", "--bind", f"127.0.0.1:{port}",
                     "--workers", str(workers), "--access-logfile", "-", "--log-level", "warning"],
                    env={**env, "SHOPLIFT_PROCESS": "web"}, log=log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            status, _ = HttpClient(port).get("/healthz")
            return status in (200, 503)
        except OSError:
            return False

    wait_for(up, 60, f"gunicorn on port {port}", interval=0.2)
    return process


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# --- HTTP -----------------------------------------------------------------------------------------

class HttpClient:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port, with a session cookie if given."""

    def __init__(self, port: int, *, session: str | None = None, timeout: float = 30.0) -> None:
        self.port, self.session, self.timeout = port, session, timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        headers = {"Cookie": f"sessionid={self.session}"} if self.session else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self._conn.request("GET", path, headers=headers)
                response = self._conn.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # the server closed an idle keep-alive connection: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
