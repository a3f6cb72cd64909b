"""Settings read from the environment: a bad or missing value stops start-up and names the variable."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"SECRET_KEY": "k" * 50, "DEBUG": "false"}


def start(extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter, because settings are read once at import; no .env in the cwd is read
    # since settings read BASE_DIR/.env: pass every variable explicitly so a developer's .env can't mask it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL"))}
    env.update(GOOD)
    env.update(extra)
    env["DJANGO_SETTINGS_MODULE"] = "shoplift.settings"
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_it_starts_with_good_values(tmp_path):
    result = start({}, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("extra, expected", [
    ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY is too short"),
    ({"DEBUG": "maybe"}, "DEBUG='maybe' is invalid: expected true or false"),
    ({"DETECTION_THRESHOLD": "1.5"}, "DETECTION_THRESHOLD='1.5' is invalid: expected a score from 0 to 1"),
    ({"DETECTION_THRESHOLD": "high"}, "DETECTION_THRESHOLD='high' is invalid"),
    ({"DEDUP_WINDOW_SECONDS": "-5"}, "DEDUP_WINDOW_SECONDS='-5' is invalid: expected seconds, 0 or more"),
    ({"CLIP_PRE_SECONDS": "12"}, "CLIP_PRE_SECONDS (12.0) must be shorter than RING_SECONDS (10.0)"),
    ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE='Mars/Olympus' is invalid: expected an IANA time zone name"),
    ({"DATABASE_URL": "not-a-url"}, "DATABASE_URL='not-a-url' is invalid: expected a database URL"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL='localhost:6379' is invalid: expected a Redis URL"),
    ({"CELERY_TASK_TIME_LIMIT": "60", "CELERY_TASK_SOFT_TIME_LIMIT": "90"}, "CELERY_TASK_TIME_LIMIT (60) must be greater"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is invalid"),
    ({"NOTIFY_WEBHOOK_URL": "https://pos.example.com/hook", "NOTIFY_WEBHOOK_SECRET": "short"},
     "NOTIFY_WEBHOOK_SECRET must be at least 16 characters"),
    ({"NOTIFY_WEBHOOK_URL": "ftp://pos.example.com"}, "NOTIFY_WEBHOOK_URL='ftp://pos.example.com' is invalid"),
    ({"NOTIFY_MQTT_URL": "mqtt://user:hunter2@broker:port"}, "NOTIFY_MQTT_URL='mqtt://user:****@broker:port' is invalid"),
    ({"DASHBOARD_URL": "cctv.example.com"}, "DASHBOARD_URL='cctv.example.com' is invalid"),
])
def test_it_refuses_to_start_with_a_message_naming_the_variable(extra, expected, tmp_path):
    result = start(extra, tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr  # an operator gets the message, not a stack


def test_it_allows_a_missing_secret_key_only_in_debug(tmp_path):
    result = start({"SECRET_KEY": "", "DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr


def test_it_passes_the_deployment_checks_with_production_values(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    env.update(SECRET_KEY="p" * 20 + "-Zq8!xK2@mW9#rT5$vB7", DEBUG="false", ALLOWED_HOSTS="cctv.example.com",
               SECURE_SSL_REDIRECT="true", SECURE_HSTS_SECONDS="31536000")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_has_no_missing_migrations():
    env = {**os.environ, "DEBUG": "true"}
    result = subprocess.run([sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
