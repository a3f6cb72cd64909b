"""Celery tasks. Each takes ids, calls one service, and owns its retries and time limits."""
from __future__ import annotations

from celery import shared_task
from celery.app.task import Task
from celery.signals import worker_ready

from alerts.clip_jobs import clip_job_run
from alerts.emitter import alerts_sweep
from alerts.metrics import serve_if_configured

worker_ready.connect(serve_if_configured)

BUSY_RETRIES = 20  # a redelivered job waits for a live claim's lease at most this many times


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
