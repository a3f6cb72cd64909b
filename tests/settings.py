"""Settings for the test run: the real settings, with the variables a test run needs set first.

Set through os.environ so that subprocesses the tests start (servers, workers) inherit them.
"""
import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
# Log files of the test run (and of the processes it starts) stay out of the project folder.
os.environ.setdefault("LOG_DIR", os.path.join(__import__("tempfile").gettempdir(), f"shoplift-test-logs-{os.getpid()}"))

from shoplift.settings import *  # noqa: E402,F401,F403

# Tests don't run collectstatic: serve static files from the app folders.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# A file, not SQLite's in-memory database, so that processes a test starts (workers, detector
# supervisors) can open the same test database. One file per test run, so parallel runs don't collide.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"shoplift-test-{os.getpid()}.sqlite3")}  # noqa: F405

# The test run's own Redis (tests/support/processes.py starts it on this port), never the shared 6379.
if "CELERY_BROKER_URL" not in os.environ:
    import socket

    with socket.socket() as _sock:
        _sock.bind(("127.0.0.1", 0))
        os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{_sock.getsockname()[1]}/0"
    CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
# The live pictures' Redis (REDIS_URL) is the test run's too, in this process and in the detector
# processes tests start, so no test writes to the machine's shared Redis.
os.environ["REDIS_URL"] = REDIS_URL = os.environ["CELERY_BROKER_URL"]

# Nothing cached survives from one test's data to the next; tests of a cache turn one on themselves.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
