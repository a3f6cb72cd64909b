"""Prometheus metrics of a detector supervisor, read from its counters at scrape time.

Counters (use rate() for frames per second) and gauges per camera: packets in, frames sampled
for detection, reconnects, ring bytes, dropped frames, inference latency, events, suppressed
events (duplicates) and events a learned model suppressed; for the process, live pictures published and dropped (Redis down). Nothing here runs in
the frame loop.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from detection.supervisor import Supervisor


class SupervisorCollector:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        labels = ["camera"]
        packets = CounterMetricFamily("shoplift_camera_packets", "Video packets received (evidence stream); rate() is fps in", labels=labels)
        sampled = CounterMetricFamily("shoplift_camera_frames_sampled", "Frames handed to detection; rate() is fps out", labels=labels)
        inferred = CounterMetricFamily("shoplift_camera_frames_inferred", "Frames that went through a detector", labels=labels)
        dropped = CounterMetricFamily("shoplift_camera_frames_dropped", "Sampled frames replaced before detection took them", labels=labels)
        reconnects = CounterMetricFamily("shoplift_camera_reconnects", "Reconnection attempts", labels=labels)
        online = GaugeMetricFamily("shoplift_camera_online", "1 while the evidence stream is connected", labels=labels)
        ring = GaugeMetricFamily("shoplift_camera_ring_bytes", "Compressed pre-roll held in memory", labels=labels)
        ring_seconds = GaugeMetricFamily("shoplift_camera_ring_seconds", "Seconds of video held in the ring", labels=labels)
        latency = GaugeMetricFamily("shoplift_camera_inference_latency_seconds", "Capture to detection result, last frame", labels=labels)
        events = CounterMetricFamily("shoplift_camera_events", "Alerts raised", labels=labels)
        suppressed = CounterMetricFamily("shoplift_camera_suppressed_events", "Events suppressed as duplicates", labels=labels)
        model_suppressed = CounterMetricFamily("shoplift_camera_model_suppressed_events",
                                               "Events the site's learned model scored below its threshold", labels=labels)
        inference = self.supervisor.inference
        for camera_id, running in list(self.supervisor.streams.items()):
            name = [running.spec.name]
            counters = running.stream.counters()
            stats = running.stream.ring.stats()
            packets.add_metric(name, counters.packets)
            sampled.add_metric(name, counters.frames_sampled)
            dropped.add_metric(name, counters.frames_dropped)
            reconnects.add_metric(name, counters.reconnects)
            online.add_metric(name, 1.0 if counters.online else 0.0)
            ring.add_metric(name, stats.bytes)
            ring_seconds.add_metric(name, stats.seconds)
            camera_stats = inference.stats.cameras.get(camera_id) if inference is not None else None
            inferred.add_metric(name, camera_stats.frames if camera_stats else 0)
            latency.add_metric(name, camera_stats.last_latency if camera_stats else 0.0)
            by_camera: Mapping[str, int] = self.supervisor.spooler.by_camera.get(camera_id, {})
            events.add_metric(name, by_camera.get("events", 0))
            suppressed.add_metric(name, by_camera.get("suppressed", 0))
            model_suppressed.add_metric(name, by_camera.get("model_suppressed", 0))
        yield from (packets, sampled, inferred, dropped, reconnects, online, ring, ring_seconds, latency, events, suppressed,
                    model_suppressed)
        recording = GaugeMetricFamily("shoplift_clips_recording", "Clips whose window is still being recorded")
        recording.add_metric([], self.supervisor.recorder.recording)
        yield recording
        live = self.supervisor.live
        if live is not None:
            published = CounterMetricFamily("shoplift_live_frames_published", "Live pictures written to Redis for the Cameras page")
            published.add_metric([], live.stats.published)
            dropped = CounterMetricFamily("shoplift_live_frames_dropped", "Live pictures dropped because Redis did not answer")
            dropped.add_metric([], live.stats.dropped)
            yield from (published, dropped)


def serve_metrics(supervisor: Supervisor, *, port: int, addr: str = "127.0.0.1") -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SupervisorCollector(supervisor))
    start_http_server(port, addr=addr, registry=registry)
    return registry
