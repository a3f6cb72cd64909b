"""Settings for the test run: the real settings, with the variables a test run needs set first.

Set through os.environ so that subprocesses the tests start (servers, workers) inherit them.
"""
import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from shoplift.settings import *  # noqa: E402,F401,F403

# Tests don't run collectstatic: serve static files from the app folders.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
