"""Celery tasks. Each takes ids, calls one service, and owns its retries and time limits."""
from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.app.task import Task
from celery.signals import worker_ready
from django.conf import settings

from alerts.clip_jobs import clip_job_run
from alerts.emitter import alerts_sweep
from alerts.metrics import serve_if_configured
from alerts.notify import delivery_send
from alerts.retention import retention_apply

logger = logging.getLogger(__name__)

worker_ready.connect(serve_if_configured)

BUSY_RETRIES = 20  # a redelivered job waits for a live claim's lease at most this many times
ENQUEUE_CONNECT_TIMEOUT_SECONDS = 1.0


def enqueue_now(task: Task[Any, Any], *args: object) -> bool:
    """Send a task on a connection of its own that gives up at the first refusal. The shared one
    retries its connect with sleeps (about 6 s against a dead broker), which would hold the caller
    (the detector's spooler thread, and every alert behind it) for that long per message. The
    callers keep their job in the database, so a message that is not sent is sent by a sweeper."""
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "max_retries": 0,
               "socket_connect_timeout": ENQUEUE_CONNECT_TIMEOUT_SECONDS}
    try:
        with task.app.connection_for_write(transport_options=options) as connection:
            # celery-types omits apply_async's connection= (passed on to Celery.send_task, which takes it)
            task.apply_async(args, retry=False, connection=connection)  # type: ignore[call-arg]
    except Exception as exc:  # kombu/redis raise several types for an unreachable broker
        logger.warning("task not enqueued task=%s args=%s error=%s; the sweeper will send it", task.name, args, exc)
        return False
    return True


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def build_clip(self: Task[[int, str], str], alert_id: int, part: str = "first") -> str:
    # A soft time limit leaves the claim to expire; the sweeper then sends the job again.
    outcome = clip_job_run(alert_id=alert_id, task_id=str(self.request.id), part=part)
    if outcome.retry_in is not None and not (outcome.status == "busy" and self.request.retries >= BUSY_RETRIES):
        raise self.retry(countdown=outcome.retry_in)  # failed attempts are bounded by CLIP_BUILD_MAX_ATTEMPTS
    return outcome.status


@shared_task(acks_late=True)
def sweep_clip_jobs() -> int:
    return alerts_sweep()


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_notification(self: Task[[int], str], delivery_id: int) -> str:
    outcome = delivery_send(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)  # bounded by NOTIFY_MAX_ATTEMPTS
    return outcome.status


# Longer than the default limits: a first run over a long backlog may take minutes. A run cut short
# loses nothing (each alert is its own transaction); the next one goes on from there.
@shared_task(acks_late=True, soft_time_limit=900, time_limit=960)
def apply_retention() -> str:
    return retention_apply().summary()
