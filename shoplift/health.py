"""GET /healthz: is this web process able to serve? Checks the database and the Celery broker.

No login: load balancers and monitoring call it, so it says only "ok" or "failing" per
component. The reason (which host, what error) goes to the log, never to an anonymous caller.
"""
from __future__ import annotations

import logging
import time

import redis
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from shoplift.masking import mask_text

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 1.0


def _check_database() -> str:
    try:
        ContentType.objects.exists()  # a real query, through the ORM so it works on every backend
    except DatabaseError as exc:
        logger.error("health check: database failing: %s", mask_text(str(exc)).splitlines()[0][:200])
        return "failing"
    return "ok"


def _check_broker() -> str:
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                                      socket_timeout=BROKER_TIMEOUT_SECONDS)
        client.ping()
    except redis.RedisError as exc:
        logger.error("health check: broker failing: %s", mask_text(str(exc))[:200])
        return "failing"
    return "ok"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "error", **checks, "seconds": round(time.perf_counter() - started, 3)}
    return JsonResponse(body, status=200 if healthy else 503)
