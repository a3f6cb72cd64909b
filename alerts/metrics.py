"""Prometheus metrics of the clip worker, read from the database and the broker at scrape time.

The worker's prefork children build the clips, so in-process counters would be scattered over
processes that come and go. The alert rows already hold every figure: what they say is the same
from any worker, survives restarts, and costs nothing while no one scrapes. Served from the
worker's main process on WORKER_METRICS_PORT (0 = off).

  shoplift_clip_build_seconds     histogram of build time (copy spool, remux, verify, hash) of ready clips
  shoplift_clip_build_failures    counter of build attempts that did not end ready
  shoplift_clips                  gauge of alerts per clip status (queued = waiting for a worker)
  shoplift_clip_broker_queue      gauge of build jobs waiting in the broker's queue
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count, Q, Sum
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from alerts.models import Alert, ClipStatus

log = logging.getLogger(__name__)

BUILD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ClipWorkerCollector:
    def collect(self) -> Iterator[Metric]:
        close_old_connections()
        try:
            yield from self._from_database()
        finally:
            connection.close()  # the scrape thread must not keep a connection open between scrapes
        depth = self._broker_queue_depth()
        if depth is not None:
            broker = GaugeMetricFamily("shoplift_clip_broker_queue", "Build jobs waiting in the broker's queue")
            broker.add_metric([], depth)
            yield broker

    def _from_database(self) -> Iterator[Metric]:
        ready = Q(clip_status=ClipStatus.READY, clip_build_seconds__isnull=False)
        buckets = {f"le_{i}": Count("pk", filter=ready & Q(clip_build_seconds__lte=b)) for i, b in enumerate(BUILD_BUCKETS)}
        row = Alert.objects.aggregate(
            count=Count("pk", filter=ready), total=Sum("clip_build_seconds", filter=ready),
            attempts=Sum("clip_attempts"), **buckets,
        )
        histogram = HistogramMetricFamily("shoplift_clip_build_seconds", "Time to build and verify a clip")
        histogram.add_metric(
            [], [(str(b), row[f"le_{i}"]) for i, b in enumerate(BUILD_BUCKETS)] + [("+Inf", row["count"])],
            sum_value=row["total"] or 0.0,
        )
        yield histogram
        by_status = dict(Alert.objects.values_list("clip_status").annotate(n=Count("pk")).order_by())
        statuses = GaugeMetricFamily("shoplift_clips", "Alerts per clip status", labels=["status"])
        for status in ClipStatus.values:
            statuses.add_metric([status], by_status.get(status, 0))
        yield statuses
        # Every claim adds an attempt; an attempt ends ready, is still building, or failed.
        failures = (row["attempts"] or 0) - by_status.get(ClipStatus.READY, 0) - by_status.get(ClipStatus.BUILDING, 0)
        failed = CounterMetricFamily("shoplift_clip_build_failures", "Build attempts that did not end ready")
        failed.add_metric([], max(failures, 0))
        yield failed

    def _broker_queue_depth(self) -> int | None:
        try:
            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
            with client:
                return int(client.llen(settings.CELERY_TASK_DEFAULT_QUEUE))
        except redis.RedisError as exc:  # a broker that is down: the database figures still count
            log.warning("metrics: broker queue depth unavailable error=%s", exc)
            return None


def serve_worker_metrics(*, port: int, addr: str = "127.0.0.1") -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ClipWorkerCollector())
    start_http_server(port, addr=addr, registry=registry)
    log.info("worker metrics on http://%s:%s/metrics", addr, port)
    return registry


def serve_if_configured(**_: object) -> None:
    """Celery's worker_ready signal: runs once, in the worker's main process."""
    if settings.WORKER_METRICS_PORT:
        serve_worker_metrics(port=settings.WORKER_METRICS_PORT)
