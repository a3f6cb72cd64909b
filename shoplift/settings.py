"""All configuration, read from the environment (and an optional .env file) through django-environ.

A bad or missing value stops start-up with ImproperlyConfigured naming the variable and what it
expects. Every variable is listed in README.md and .env.example.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import environ
from django.core.exceptions import ImproperlyConfigured, ValidationError

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

T = TypeVar("T")
_UNSET: Any = object()


def _read(name: str, cast: Callable[[str], T], default: Any, expects: str) -> T:
    """Read one variable; any parse error names the variable, the bad value and what it expects."""
    raw = env.str(name, default=None)
    if raw is None or raw == "":
        if default is _UNSET:
            raise ImproperlyConfigured(f"{name} is not set: expected {expects}.")
        return default  # type: ignore[no-any-return]  # the caller's default has the cast's type
    try:
        return cast(raw.strip())
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is invalid: expected {expects} ({exc}).") from None


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("not a boolean")


def _ranged(low: float, high: float | None = None) -> Callable[[str], float]:
    def cast(raw: str) -> float:
        value = float(raw)
        if value != value or value < low or (high is not None and value > high):
            raise ValueError(f"{value} is out of range")
        return value

    return cast


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{value} is not positive")
    return value


def _time_zone(raw: str) -> str:
    ZoneInfo(raw)
    return raw


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _choice(*allowed: str) -> Callable[[str], str]:
    def cast(raw: str) -> str:
        if raw.upper() not in allowed:
            raise ValueError(f"{raw} is not one of {', '.join(allowed)}")
        return raw.upper()

    return cast


def _db_url(raw: str) -> dict[str, Any]:
    if "://" not in raw:
        raise ValueError("no scheme")
    config: dict[str, Any] = env.db_url_config(raw)
    if not config.get("ENGINE"):
        raise ValueError("unknown database scheme")
    return config


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


# --- Core ------------------------------------------------------------------------------------
DEBUG = _read("DEBUG", _bool, False, "true or false")
_DEV_SECRET = "insecure-dev-key-only-for-DEBUG-true-never-in-production"
SECRET_KEY = _read("SECRET_KEY", str, _DEV_SECRET if DEBUG else _UNSET, "a long random string (required when DEBUG is off)")
if not DEBUG and (SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured("SECRET_KEY is too short or is the development key: set at least 32 random characters when DEBUG is off.")
ALLOWED_HOSTS = _read("ALLOWED_HOSTS", _list, ["localhost", "127.0.0.1", "[::1]"], "a comma-separated list of host names")
CSRF_TRUSTED_ORIGINS = _read("CSRF_TRUSTED_ORIGINS", _list, [], "a comma-separated list of origins such as https://cctv.example.com")
TIME_ZONE = _read("TIME_ZONE", _time_zone, "UTC", "an IANA time zone name such as Europe/London")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "cameras",
    "alerts",
    "detection",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "shoplift.headers.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "shoplift.urls"
WSGI_APPLICATION = "shoplift.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "alerts.context_processors.navigation",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------------
DATABASES = {
    "default": _read(
        "DATABASE_URL",
        _db_url,
        {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")},
        "a database URL such as postgres://user:password@host:5432/name or sqlite:////path/db.sqlite3",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, detectors) share the first-run database: wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

# --- Files -------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
DATA_DIR = _read("DATA_DIR", Path, BASE_DIR / "var", "a folder path")
CLIP_STORAGE_DIR = _read("CLIP_STORAGE_DIR", Path, DATA_DIR / "clips", "a folder path for evidence clips")
LOG_DIR = _read("LOG_DIR", Path, DATA_DIR / "log", "a folder path for log files")


def _storage_kind(raw: str) -> str:
    if raw.lower() not in {"local", "s3"}:
        raise ValueError(f"{raw} is not local or s3")
    return raw.lower()


def _bucket(raw: str) -> str:
    import re

    # Catches s3://bucket and bucket/prefix mistakes; allows the legacy names old AWS buckets have.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}", raw):
        raise ValueError("not a bucket name (letters, digits, '.', '-', '_'; no scheme, no '/')")
    return raw


def _web_url(raw: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("not an http:// or https:// URL")
    return raw.rstrip("/")


def _http_url(raw: str) -> str:
    """An S3 endpoint: a web URL without credentials (they have settings of their own)."""
    from urllib.parse import urlsplit

    url = _web_url(raw)
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValueError("credentials belong in CLIP_S3_ACCESS_KEY_ID and CLIP_S3_SECRET_ACCESS_KEY, not in the URL")
    return url


def _key_prefix(raw: str) -> str:
    prefix = raw.strip("/")
    if any(part in {"", ".", ".."} for part in prefix.split("/")):
        raise ValueError("empty, '.' or '..' path segment")
    return prefix


def clips_s3_storage(*, bucket: str, endpoint_url: str | None = None, region: str | None = None,
                     access_key: str | None = None, secret_key: str | None = None, prefix: str = "",
                     connect_timeout: float = 5.0, read_timeout: float = 20.0, max_attempts: int = 3) -> dict[str, Any]:
    """The STORAGES entry for clips in an S3 or MinIO bucket (django-storages), kept private.

    Every call is bounded: boto3's defaults (60 s to connect and 60 s per read, each retried) would
    let one hung bucket hold a spool write or a clip build for minutes."""
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": endpoint_url, "region_name": region,
            "access_key": access_key, "secret_key": secret_key,  # None: boto3's default credential chain
            "location": prefix,
            # No ACL header: objects stay as private as the bucket (AWS refuses ACLs on buckets with
            # "bucket owner enforced", the default). Nothing in the project asks for a URL: clips are
            # served only through the permission-checked views; a URL, if ever made, is signed.
            "default_acl": None, "querystring_auth": True, "querystring_expire": 60, "custom_domain": None,
            # Like the local folder: save() never replaces an object, it picks a free name.
            "file_overwrite": False,
            # MinIO and most S3-compatible servers are addressed as <endpoint>/<bucket>/<key>.
            "addressing_style": "path" if endpoint_url else None,
            # With a client_config django-storages takes the addressing style from it, not from above.
            "client_config": Config(s3={"addressing_style": "path"} if endpoint_url else {},
                                    connect_timeout=connect_timeout, read_timeout=read_timeout,
                                    retries={"total_max_attempts": max_attempts, "mode": "standard"}),
            # Reads that go through S3File (the worker's spool copy) spool to disk past this size.
            "max_memory_size": 8 * 1024 * 1024,
        },
    }


def _read_masked(name: str, cast: Callable[[str], T], default: Any, expects: str) -> T:
    """_read for a URL that may carry a password: the message shows it as ****."""
    import re

    try:
        return _read(name, cast, default, expects)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(re.sub(r"(://[^/@\s:]*:)[^@\s]*@", r"\1****@", str(exc))) from None


CLIP_STORAGE = _read("CLIP_STORAGE", _storage_kind, "local", "local or s3")
if CLIP_STORAGE == "s3":
    _CLIPS: dict[str, Any] = clips_s3_storage(
        bucket=_read("CLIP_S3_BUCKET", _bucket, _UNSET, "the bucket name for evidence clips when CLIP_STORAGE=s3"),
        endpoint_url=_read_masked("CLIP_S3_ENDPOINT_URL", _http_url, None,
                                  "an http:// or https:// URL such as http://minio:9000 (empty for AWS S3)"),
        region=_read("CLIP_S3_REGION", str, None, "a region name such as eu-west-2"),
        access_key=_read("CLIP_S3_ACCESS_KEY_ID", str, None, "an access key id"),
        secret_key=_read("CLIP_S3_SECRET_ACCESS_KEY", str, None, "a secret access key"),  # str never fails: never echoed
        prefix=_read("CLIP_S3_PREFIX", _key_prefix, "", "a key prefix such as shoplift/"),
        connect_timeout=_read("CLIP_S3_CONNECT_TIMEOUT_SECONDS", _ranged(0.1, 300), 5.0, "seconds, 0.1 to 300"),
        read_timeout=_read("CLIP_S3_READ_TIMEOUT_SECONDS", _ranged(0.1, 600), 20.0, "seconds, 0.1 to 600"),
        max_attempts=_read("CLIP_S3_MAX_ATTEMPTS", _positive_int, 3, "a whole number of tries, at least 1"),
    )
    if bool(_CLIPS["OPTIONS"]["access_key"]) != bool(_CLIPS["OPTIONS"]["secret_key"]):
        raise ImproperlyConfigured(
            "CLIP_S3_ACCESS_KEY_ID and CLIP_S3_SECRET_ACCESS_KEY must be set together "
            "(or both left empty to use boto3's default credentials: environment, profile or instance role)."
        )
else:
    # base_url=None: no public URL; clips are served only by the permission-checked views in alerts/.
    _CLIPS = {"BACKEND": "django.core.files.storage.FileSystemStorage",
              "OPTIONS": {"location": CLIP_STORAGE_DIR, "base_url": None}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": DATA_DIR / "media"}},
    # Evidence clips, thumbnails, snapshots and spool files: a local folder, or S3/MinIO.
    "clips": _CLIPS,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Clips, thumbnails, snapshots and spools on local disk: owner read-write, group read, others
# nothing, whatever the process umask (log files get the same mode: shoplift/logs.py).
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# --- Redis and Celery --------------------------------------------------------------------------
REDIS_URL = _read("REDIS_URL", _redis_url, "redis://127.0.0.1:6379/0", "a Redis URL such as redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = _read("CELERY_BROKER_URL", _redis_url, REDIS_URL, "a Redis URL such as redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = "celery"  # the broker list the clip jobs wait in (Redis key)
CELERY_TASK_ACKS_LATE = True  # a task is acknowledged after it ran, so a killed worker's job is redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = _read("CELERY_TASK_SOFT_TIME_LIMIT", _positive_int, 120, "seconds, a positive integer")
CELERY_TASK_TIME_LIMIT = _read("CELERY_TASK_TIME_LIMIT", _positive_int, 180, "seconds, a positive integer")
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT}) must be greater than CELERY_TASK_SOFT_TIME_LIMIT "
        f"({CELERY_TASK_SOFT_TIME_LIMIT}) so a task can clean up before it is killed."
    )
# An unacknowledged task returns to the queue after this long when its whole worker died. It must
# exceed the longest retry countdown; the clip sweeper recovers such jobs sooner (alerts/clip_jobs.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 3}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE

# --- Detection defaults (a camera or zone may override some of them) ---------------------------
DETECTION_THRESHOLD = _read("DETECTION_THRESHOLD", _ranged(0.0, 1.0), 0.5, "a score from 0 to 1")
DEDUP_WINDOW_SECONDS = _read("DEDUP_WINDOW_SECONDS", _ranged(0.0), 300.0, "seconds, 0 or more")
CLIP_PRE_SECONDS = _read("CLIP_PRE_SECONDS", _ranged(0.0), 2.0, "seconds, 0 or more")
CLIP_DURING_SECONDS = _read("CLIP_DURING_SECONDS", _ranged(0.0), 2.0, "seconds, 0 or more")
CLIP_POST_SECONDS = _read("CLIP_POST_SECONDS", _ranged(0.0), 2.0, "seconds, 0 or more")
RING_SECONDS = _read("RING_SECONDS", _ranged(1.0, 120.0), 10.0, "seconds, from 1 to 120")
if CLIP_PRE_SECONDS >= RING_SECONDS:
    raise ImproperlyConfigured(
        f"CLIP_PRE_SECONDS ({CLIP_PRE_SECONDS}) must be shorter than RING_SECONDS ({RING_SECONDS}): "
        "the pre-roll is taken from the ring buffer."
    )
RING_MAX_BYTES = _read("RING_MAX_BYTES", _positive_int, 64 * 1024 * 1024, "bytes, a positive integer (cap per camera)")
DETECTION_FPS = _read("DETECTION_FPS", _ranged(0.1, 30.0), 5.0, "frames per second, from 0.1 to 30")
DETECTOR = _read("DETECTOR", str, "person", "a detector name: person, motion or torchscript")
CAPTURE_OPEN_TIMEOUT_SECONDS = _read("CAPTURE_OPEN_TIMEOUT_SECONDS", _ranged(0.5, 120.0), 5.0, "seconds, from 0.5 to 120")
CAPTURE_WATCHDOG_SECONDS = _read("CAPTURE_WATCHDOG_SECONDS", _ranged(1.0, 600.0), 10.0, "seconds, from 1 to 600")
CAPTURE_BACKOFF_CAP_SECONDS = _read("CAPTURE_BACKOFF_CAP_SECONDS", _ranged(1.0, 3600.0), 30.0, "seconds, from 1 to 3600")
DETECTOR_RELOAD_SECONDS = _read("DETECTOR_RELOAD_SECONDS", _ranged(1.0, 300.0), 15.0,
                                "seconds between checks for camera and zone changes, from 1 to 300")
DETECTOR_METRICS_PORT = _read("DETECTOR_METRICS_PORT", int, 0,
                              "a TCP port for the detectors' Prometheus metrics (0 = off; process i of --processes uses port + i)")

# Live camera wall: each camera's latest detection frame, people drawn, as JPEG in Redis (REDIS_URL)
# about this often, for the Cameras page (detection/live.py writes it, cameras/live.py reads it).
LIVE_FRAME_SECONDS = _read("LIVE_FRAME_SECONDS", _ranged(0.0, 60.0), 1.0,
                           "seconds between a camera's live pictures, from 0 (off) to 60")
if 0.0 < LIVE_FRAME_SECONDS < 0.2:
    raise ImproperlyConfigured(f"LIVE_FRAME_SECONDS ({LIVE_FRAME_SECONDS}) must be 0 (off) or at least 0.2.")
LIVE_FRAME_WIDTH = _read("LIVE_FRAME_WIDTH", _positive_int, 640, "pixels, the widest live picture, from 160 to 3840")
if not 160 <= LIVE_FRAME_WIDTH <= 3840:
    raise ImproperlyConfigured(f"LIVE_FRAME_WIDTH ({LIVE_FRAME_WIDTH}) must be from 160 to 3840 pixels.")

# --- Clip jobs -----------------------------------------------------------------------------------
CLIP_BUILD_MAX_ATTEMPTS = _read("CLIP_BUILD_MAX_ATTEMPTS", _positive_int, 5, "a positive integer")
CLIP_RETRY_BACKOFF_SECONDS = _read("CLIP_RETRY_BACKOFF_SECONDS", _ranged(0.0, 3600.0), 10.0,
                                   "seconds before the first retry (it doubles, up to 300), from 0 to 3600")
CLIP_QUEUE_STALE_SECONDS = _read("CLIP_QUEUE_STALE_SECONDS", _ranged(1.0), 60.0,
                                 "seconds a clip job may wait in the queue before the sweeper re-enqueues it")
WORKER_METRICS_PORT = _read("WORKER_METRICS_PORT", int, 0,
                            "a TCP port for the clip worker's Prometheus metrics (0 = off)")
CLIP_SWEEP_INTERVAL_SECONDS = _read("CLIP_SWEEP_INTERVAL_SECONDS", _ranged(1.0), 30.0, "seconds between sweeps")

# --- Retention (alerts/retention.py) -------------------------------------------------------------
CLIP_RETENTION_DAYS = _read("CLIP_RETENTION_DAYS", _positive_int, 31,
                            "days clips are kept, a positive integer (a site's own setting overrides it)")
CLIP_RETENTION_HOLD_CONFIRMED = _read("CLIP_RETENTION_HOLD_CONFIRMED", _bool, True,
                                      "true or false: confirmed alerts' clips are held, like a legal hold")
CLIP_STORAGE_MIN_FREE_BYTES = _read("CLIP_STORAGE_MIN_FREE_BYTES", int, 0,
                                    "bytes kept free on the clips folder, 0 or more")
if CLIP_STORAGE_MIN_FREE_BYTES < 0:
    raise ImproperlyConfigured(f"CLIP_STORAGE_MIN_FREE_BYTES ({CLIP_STORAGE_MIN_FREE_BYTES}) must be 0 or more.")
CLIP_STORAGE_MIN_FREE_PERCENT = _read("CLIP_STORAGE_MIN_FREE_PERCENT", _ranged(0.0, 90.0), 5.0,
                                      "the percentage of the clips folder's disk kept free, from 0 to 90")
CLIP_RETENTION_INTERVAL_SECONDS = _read("CLIP_RETENTION_INTERVAL_SECONDS", _ranged(60.0), 3600.0,
                                        "seconds between retention runs, at least 60")

CELERY_BEAT_SCHEDULE = {
    "sweep-clip-jobs": {"task": "alerts.tasks.sweep_clip_jobs", "schedule": CLIP_SWEEP_INTERVAL_SECONDS},
    "apply-retention": {"task": "alerts.tasks.apply_retention", "schedule": CLIP_RETENTION_INTERVAL_SECONDS},
}

# --- Notifications (alerts/notify.py) -------------------------------------------------------------
def _mqtt_url(raw: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
        raise ValueError("not an mqtt:// or mqtts:// URL")
    parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    return raw


# Links in messages go to the dashboard's permission-checked pages at this address.
DASHBOARD_URL = _read("DASHBOARD_URL", _web_url, "http://127.0.0.1:8000", "the dashboard's address as staff reach it, "
                      "such as https://cctv.example.com")
NOTIFY_WEBHOOK_URL = _read_masked("NOTIFY_WEBHOOK_URL", _web_url, "", "an http:// or https:// URL (empty: none)")
NOTIFY_WEBHOOK_SECRET = _read("NOTIFY_WEBHOOK_SECRET", str, "", "the secret that signs each webhook body")
if NOTIFY_WEBHOOK_URL and len(NOTIFY_WEBHOOK_SECRET) < 16:
    raise ImproperlyConfigured("NOTIFY_WEBHOOK_SECRET must be at least 16 characters when NOTIFY_WEBHOOK_URL is set: "
                               "receivers check each body's signature with it.")
NOTIFY_MQTT_URL = _read_masked("NOTIFY_MQTT_URL", _mqtt_url, "", "an mqtt://[user:password@]host[:port] URL (empty: none)")
NOTIFY_COOLDOWN_SECONDS = _read("NOTIFY_COOLDOWN_SECONDS", _ranged(0.0), 60.0,
                                "seconds, 0 or more: per channel, camera and zone, alerts inside it send nothing")
NOTIFY_MAX_ATTEMPTS = _read("NOTIFY_MAX_ATTEMPTS", _positive_int, 6, "a positive integer")
NOTIFY_RETRY_BACKOFF_SECONDS = _read("NOTIFY_RETRY_BACKOFF_SECONDS", _ranged(0.0, 3600.0), 5.0,
                                     "seconds before the first retry (it doubles), from 0 to 3600")
NOTIFY_TIMEOUT_SECONDS = _read("NOTIFY_TIMEOUT_SECONDS", _ranged(0.5, 120.0), 10.0, "seconds per delivery, 0.5 to 120")
# E-mail goes through Django's SMTP backend: EMAIL_URL such as smtp+tls://user:password@mail.example.com:587
# (django-environ's form; empty: localhost:25).
EMAIL_URL = _read_masked("EMAIL_URL", str, "", "an smtp:// (or smtp+tls://, smtp+ssl://) URL")
if EMAIL_URL:
    _email: dict[str, Any] = environ.Env.email_url_config(EMAIL_URL)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST, EMAIL_PORT = _email.get("EMAIL_HOST", "localhost"), int(_email.get("EMAIL_PORT") or 25)
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_USER", ""), _email.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS, EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_TLS")), bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = NOTIFY_TIMEOUT_SECONDS
DEFAULT_FROM_EMAIL = _read("DEFAULT_FROM_EMAIL", str, "shoplift@localhost", "the sender address of alert e-mails")

# --- Web Push (alerts/push.py, alerts/notify.py) -------------------------------------------------
# The VAPID key pair identifies this server to the browsers' push services; `manage.py
# generate_vapid_keys` prints one in this form. Both empty: Web Push is off.
def _b64url(raw: str, size: int) -> bytes:
    import base64
    import binascii

    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if len(data) != size:
        raise ValueError(f"{len(data)} bytes, not {size}")
    return data


def _vapid_public_key(raw: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(raw, 65))  # a point on P-256
    return raw.rstrip("=")


def _vapid_private_key(raw: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec.derive_private_key(int.from_bytes(_b64url(raw, 32), "big"), ec.SECP256R1())  # in range for P-256
    return raw.rstrip("=")


def _vapid_subject(raw: str) -> str:
    import re

    # What push services accept (and py_vapid checks): a mailto: address, or an https:// origin without a path.
    host = r"(localhost|[\w-]+(\.[\w-]+)+)"
    if not re.fullmatch(rf"mailto:[^@\s/]+@{host}|https://{host}", raw, re.IGNORECASE):
        raise ValueError("not a mailto: address or an https:// address without a path")
    return raw


def _read_secret(name: str, cast: Callable[[str], T], default: T, expects: str) -> T:
    """_read for a secret: the message says what is wrong, never the value."""
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is invalid: expected {expects} ({exc}); its value is not shown.") from None


VAPID_PUBLIC_KEY = _read("VAPID_PUBLIC_KEY", _vapid_public_key, "", "the public key that `manage.py "
                         "generate_vapid_keys` prints (base64url, 87 characters)")
VAPID_PRIVATE_KEY = _read_secret("VAPID_PRIVATE_KEY", _vapid_private_key, "", "the private key that `manage.py "
                                 "generate_vapid_keys` prints (base64url, 43 characters)")
VAPID_SUBJECT = _read("VAPID_SUBJECT", _vapid_subject, "", "a contact for the push services, such as "
                      "mailto:ops@example.com or https://cctv.example.com")
if bool(VAPID_PUBLIC_KEY) != bool(VAPID_PRIVATE_KEY):
    raise ImproperlyConfigured(f"{'VAPID_PRIVATE_KEY' if VAPID_PUBLIC_KEY else 'VAPID_PUBLIC_KEY'} is not set: set "
                               "VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY together, both from one run of `manage.py "
                               "generate_vapid_keys` (or neither, to turn Web Push off).")
if VAPID_PRIVATE_KEY:
    def _vapid_public_of(private: str) -> str:
        import base64

        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        key = ec.derive_private_key(int.from_bytes(_b64url(private, 32), "big"), ec.SECP256R1())
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(point).decode().rstrip("=")

    if _vapid_public_of(VAPID_PRIVATE_KEY) != VAPID_PUBLIC_KEY:
        raise ImproperlyConfigured("VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY: set both from one run "
                                   "of `manage.py generate_vapid_keys`.")
    if not VAPID_SUBJECT:
        raise ImproperlyConfigured("VAPID_SUBJECT is not set: expected a contact for the push services, such as "
                                   "mailto:ops@example.com (required with the VAPID keys).")

# --- Police export (alerts/export.py) --------------------------------------------------------------
# The Ed25519 private key that signs each export's manifest: base64 of its 32 raw bytes, as
# `manage.py generate_signing_key` prints it. Empty: exports are made but marked unsigned.
def _ed25519_private_key(raw: str) -> str:
    import base64
    import binascii

    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(data) != 32:
        raise ValueError(f"{len(data)} bytes, not 32")
    return raw


EVIDENCE_SIGNING_KEY = _read_secret("EVIDENCE_SIGNING_KEY", _ed25519_private_key, "",
                                    "an Ed25519 private key as base64 of its 32 bytes, as `manage.py "
                                    "generate_signing_key` prints it")

# --- Security ----------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = _read("SESSION_COOKIE_AGE", _positive_int, 12 * 3600, "seconds, a positive integer")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = _read("SECURE_SSL_REDIRECT", _bool, False, "true or false")
SECURE_HSTS_SECONDS = _read("SECURE_HSTS_SECONDS", int, 0, "seconds, an integer")
SECURE_HSTS_INCLUDE_SUBDOMAINS = _read("SECURE_HSTS_INCLUDE_SUBDOMAINS", _bool, False,
                                       "true or false (true when every subdomain is served over HTTPS)")
SECURE_HSTS_PRELOAD = _read("SECURE_HSTS_PRELOAD", _bool, False, "true or false")
if _read("SECURE_PROXY_SSL_HEADER", _bool, False, "true or false (true behind a proxy that sets X-Forwarded-Proto)"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Logging -----------------------------------------------------------------------------------
LOG_LEVEL = _read("LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", "DEBUG, INFO, WARNING or ERROR")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_credentials": {"()": "shoplift.logs.MaskCredentialsFilter"}},
    "formatters": {"key_value": {"()": "shoplift.logs.KeyValueFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "key_value", "filters": ["mask_credentials"]},
        # LOG_DIR/<web|worker|detectors|manage>.log, rotated and gzipped, written through a queue.
        "file": {"()": "shoplift.logs.file_handler", "log_dir": str(LOG_DIR), "filters": ["mask_credentials"]},
    },
    "root": {"handlers": ["console", "file"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the handlers above in the worker

# --- Dashboard (issue 6): login rate limit, live-update interval ------------------------------
# Failed logins are counted in the database (alerts.LoginFailure), so the limit holds across workers.
LOGIN_FAILURE_LIMIT = _read("LOGIN_FAILURE_LIMIT", _positive_int, 5, "failed logins per user name, a positive integer")
LOGIN_FAILURE_IP_LIMIT = _read("LOGIN_FAILURE_IP_LIMIT", _positive_int, 20, "failed logins per client address, a positive integer")
LOGIN_FAILURE_WINDOW_SECONDS = _read("LOGIN_FAILURE_WINDOW_SECONDS", _positive_int, 900, "seconds, a positive integer")
# Behind a reverse proxy every request comes from the proxy: take the client address it appends
# to X-Forwarded-For instead (only turn on when such a proxy always sets the header).
LOGIN_TRUST_X_FORWARDED_FOR = _read("LOGIN_TRUST_X_FORWARDED_FOR", _bool, False, "true or false")
DASHBOARD_POLL_SECONDS = _read("DASHBOARD_POLL_SECONDS", _ranged(0.2, 300.0), 0.5, "seconds, from 0.2 to 300")
CSRF_COOKIE_HTTPONLY = True  # no script reads the token from the cookie; forms carry it

# --- Detection rules and detectors (issue 4) ---------------------------------------------------
def _thresholds_by_event_type(raw: str) -> dict[str, float]:
    import re

    result: dict[str, float] = {}
    for item in _list(raw):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            raise ValueError(f"{item!r} is not event_type=score")
        result[name] = _ranged(0.0, 1.0)(value.strip())
    return result


def _size(raw: str) -> tuple[int, int]:
    width, sep, height = raw.lower().partition("x")
    if not sep:
        raise ValueError("not WIDTHxHEIGHT")
    size = (_positive_int(width), _positive_int(height))
    if min(size) < 16:
        raise ValueError(f"{size[0]}x{size[1]} is too small")
    return size


# Deployment default per event type, used below a zone's and a camera's own threshold.
DETECTION_THRESHOLDS = _read("DETECTION_THRESHOLDS", _thresholds_by_event_type, {},
                             "comma-separated event_type=score pairs such as loitering=0.6,zone_activity=0.4")
DETECTION_DISABLED_EVENT_TYPES = _read("DETECTION_DISABLED_EVENT_TYPES", _list, [],
                                       "a comma-separated list of event types to ignore")
# An event starts when the score reaches the threshold in K of the last N samples (no one-frame spikes).
DETECTION_SMOOTHING_K = _read("DETECTION_SMOOTHING_K", _positive_int, 3, "samples, a positive integer")
DETECTION_SMOOTHING_N = _read("DETECTION_SMOOTHING_N", _positive_int, 5, "samples, a positive integer")
if DETECTION_SMOOTHING_K > DETECTION_SMOOTHING_N:
    raise ImproperlyConfigured(
        f"DETECTION_SMOOTHING_K ({DETECTION_SMOOTHING_K}) must not exceed DETECTION_SMOOTHING_N "
        f"({DETECTION_SMOOTHING_N}): an event needs K high samples among the last N."
    )
EVENT_QUIET_SECONDS = _read("EVENT_QUIET_SECONDS", _ranged(0.0, 3600.0), 5.0,
                            "seconds without a high score before an event ends, from 0 to 3600")
CLIP_MAX_SECONDS = _read("CLIP_MAX_SECONDS", _ranged(1.0, 3600.0), 30.0, "seconds, from 1 to 3600")
if CLIP_MAX_SECONDS < CLIP_PRE_SECONDS + CLIP_DURING_SECONDS + CLIP_POST_SECONDS:
    raise ImproperlyConfigured(
        f"CLIP_MAX_SECONDS ({CLIP_MAX_SECONDS}) must be at least CLIP_PRE_SECONDS + CLIP_DURING_SECONDS + "
        f"CLIP_POST_SECONDS ({CLIP_PRE_SECONDS + CLIP_DURING_SECONDS + CLIP_POST_SECONDS})."
    )
LOITERING_DWELL_SECONDS = _read("LOITERING_DWELL_SECONDS", _ranged(0.0, 3600.0), 20.0,
                                "seconds of presence in a zone before loitering, from 0 to 3600")
# Motion baseline: frames are downscaled to this size; a pixel is moving when it differs from the
# background by more than MOTION_PIXEL_THRESHOLD grey levels; a zone scores 1.0 when
# MOTION_FULL_ACTIVITY of its area moves; the background adapts over MOTION_BACKGROUND_SECONDS.
MOTION_INPUT_SIZE = _read("MOTION_INPUT_SIZE", _size, (320, 180), "WIDTHxHEIGHT in pixels such as 320x180")
MOTION_PIXEL_THRESHOLD = _read("MOTION_PIXEL_THRESHOLD", _ranged(1.0, 255.0), 25.0, "grey levels, from 1 to 255")
MOTION_FULL_ACTIVITY = _read("MOTION_FULL_ACTIVITY", _ranged(0.001, 1.0), 0.25,
                             "the fraction of a zone that must move for a score of 1, from 0.001 to 1")
MOTION_BACKGROUND_SECONDS = _read("MOTION_BACKGROUND_SECONDS", _ranged(0.5, 3600.0), 60.0,
                                  "seconds, from 0.5 to 3600")
MOTION_PRESENCE_SCORE = _read("MOTION_PRESENCE_SCORE", _ranged(0.0, 1.0), 0.2,
                              "the activity score that counts as presence for loitering, from 0 to 1")
# Person detector (detection/detectors/person): NanoDet people, tracking, BlazePose keypoints for
# people at shelves, and the behaviour rules of detection/behaviour/rules.py.
PERSON_INPUT_SIZE = _read("PERSON_INPUT_SIZE", _size, (960, 540),
                          "WIDTHxHEIGHT in pixels such as 960x540 (sampled frames given to the person detector)")
PERSON_MIN_SCORE = _read("PERSON_MIN_SCORE", _ranged(0.05, 1.0), 0.4,
                         "the person model's confidence that counts as a person, from 0.05 to 1")
PERSON_MOTION_GATE = _read("PERSON_MOTION_GATE", _bool, True,
                           "true or false: skip the person model on frames of a camera where nothing moves")
PERSON_STATIONARY_SECONDS = _read("PERSON_STATIONARY_SECONDS", _ranged(0.0, 60.0), 1.0,
                                  "seconds between model runs on still people when nothing moves, from 0 to 60")
PERSON_TRACK_MAX_AGE_SECONDS = _read("PERSON_TRACK_MAX_AGE_SECONDS", _ranged(0.1, 30.0), 2.0,
                                     "seconds a person may be hidden and keep their track, from 0.1 to 30")
PERSON_POSE_MODEL = _read("PERSON_POSE_MODEL", lambda raw: _choice("FULL", "LITE")(raw).lower(), "full",
                          "full or lite (BlazePose lite: about half the time per person, less precise hands)")
PERSON_MODELS_DIR = _read("PERSON_MODELS_DIR", Path, None,
                          "a folder holding the person detector's model files and PROVENANCE.json")
PERSON_DWELL_SECONDS = _read("PERSON_DWELL_SECONDS", _ranged(0.0, 3600.0), 20.0,
                             "seconds at a shelf before person_dwell, from 0 to 3600")
SHELF_VISIT_SECONDS = _read("SHELF_VISIT_SECONDS", _ranged(0.0, 3600.0), 1.0,
                            "seconds at shelves before an exit counts as exit_without_checkout, from 0 to 3600")
CONCEALMENT_WINDOW_SECONDS = _read("CONCEALMENT_WINDOW_SECONDS", _ranged(0.1, 60.0), 3.0,
                                   "seconds from a reach into a shelf to the hand at the body, from 0.1 to 60")
CONCEALMENT_HOLD_SECONDS = _read("CONCEALMENT_HOLD_SECONDS", _ranged(0.0, 60.0), 1.0,
                                 "seconds at the body for a full concealment score, from 0 to 60")
RESTRICTED_SECONDS = _read("RESTRICTED_SECONDS", _ranged(0.0, 3600.0), 2.0,
                           "seconds in a restricted zone for a full restricted_entry score, from 0 to 3600")
INFERENCE_THREADS = _read("INFERENCE_THREADS", _positive_int, 2,
                          "threads for the person detector's models (ONNX Runtime), a positive integer")
TORCHSCRIPT_MODEL_PATH = _read("TORCHSCRIPT_MODEL_PATH", Path, None, "the path of a TorchScript model file (.pt)")
TORCH_THREADS = _read("TORCH_THREADS", _positive_int, 2, "threads for torch inference, a positive integer")
# The per-site models train_detector learns from reviewed alerts (detection/learning), each with its
# metadata and report beside it; the database records each file's SHA-256, checked when loaded.
LEARNED_MODELS_DIR = _read("LEARNED_MODELS_DIR", Path, DATA_DIR / "models", "a folder path for learned per-site models")
