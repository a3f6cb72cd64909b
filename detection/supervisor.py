"""The detector supervisor: capture, inference, clip recording and sweeping for a set of cameras.

`python manage.py run_detectors` is a thin command over `Supervisor.run()`. Start-up runs in a
fixed order (load cameras, start captures, start inference, start the live picture publisher,
start the writer, recorder and spooler); the stop event (SIGTERM) ends the supervisor's loop, and
`shutdown` then stops the stages in the order that loses nothing: captures and inference (whose
last events end every open event), the live picture publisher (fed by inference), then the
recorder (which finishes every clip window with what the rings hold), then the spooler (which
stores those spools, within its flush time), then the status writer. Camera and zone changes are picked up every
DETECTOR_RELOAD_SECONDS without a restart, and so are the sites' learned models
(detection.learning.rescoring), which the spooler asks to re-score each event before its alert is
raised. Cameras are split between processes and machines with a shard (camera id modulo the shard
count); deduplication is atomic in the database, so overlapping supervisors still raise each alert
once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import av
import av.error
import cv2
from django.conf import settings
from django.db import close_old_connections, connection

from alerts.emitter import alerts_sweep
from cameras.models import Camera
from cameras.snapshots import camera_snapshot_save
from detection.capture.ring import CodecParams, PacketRing, RingPacket
from detection.capture.stream import CameraStream, StreamSpec
from detection.detectors.base import Detector, DetectorConfigError
from detection.detectors.registry import create_configured_detector
from detection.inference.events import CameraRules, RuleConfig, RuleEngine
from detection.inference.loop import InferenceLoop
from detection.learning.rescoring import Rescorer
from detection.live import LivePublisher
from detection.recording.recorder import ClipRecorder
from detection.recording.spooler import Spooler
from detection.selectors import camera_rules_list
from detection.status_writer import Writer

logger = logging.getLogger(__name__)

JOIN_SECONDS = 2.0
SNAPSHOT_SECONDS = 60.0  # how often each camera's picture in the zone editor is refreshed


@dataclass(frozen=True)
class Selection:
    """Which cameras this supervisor owns."""

    site: str | None = None
    cameras: tuple[str, ...] = ()
    shard: int = 0
    shards: int = 1

    def camera_ids(self) -> list[int]:
        qs = Camera.objects.filter(enabled=True)
        if self.site:
            qs = qs.filter(site__name=self.site)
        if self.cameras:
            qs = qs.filter(name__in=self.cameras)
        return [pk for pk in qs.order_by("pk").values_list("pk", flat=True) if pk % self.shards == self.shard]


@dataclass
class _Running:
    stream: CameraStream
    stop: threading.Event
    spec: StreamSpec


class Supervisor:
    def __init__(self, selection: Selection, *, stop: threading.Event, sweep: bool = True,
                 reload_seconds: float | None = None) -> None:
        self.selection = selection
        self.stop = stop
        self.sweep = sweep
        self.reload_seconds = float(settings.DETECTOR_RELOAD_SECONDS if reload_seconds is None else reload_seconds)
        self.streams: dict[int, _Running] = {}
        self.rules: dict[int, CameraRules] = {}
        self.detectors: dict[str, Detector] = {}
        # Each stage has its own stop, so shutdown can end them one after the other.
        self._stops = {stage: threading.Event() for stage in ("inference", "live", "recorder", "spooler", "writer")}
        self.writer = Writer(stop=self._stops["writer"], name="detectors")
        live_seconds = float(settings.LIVE_FRAME_SECONDS)
        self.live: LivePublisher | None = LivePublisher(
            stop=self._stops["live"], redis_url=settings.REDIS_URL, interval=live_seconds,
            width=int(settings.LIVE_FRAME_WIDTH)) if live_seconds > 0 else None
        self.rescorer = Rescorer()  # each site's learned model, re-scoring events in the spooler
        self.spooler = Spooler(stop=self._stops["spooler"], rescorer=self.rescorer)
        self.recorder = ClipRecorder(stop=self._stops["recorder"], rings=self._ring, spooler=self.spooler)
        self.inference: InferenceLoop | None = None
        self._snapshot_at: dict[int, float] = {}

    # --- start-up, in order ------------------------------------------------------------------------

    def load_cameras(self) -> None:
        self.rules = camera_rules_list(camera_ids=self.selection.camera_ids())
        for name in sorted({rules.detector for rules in self.rules.values()}):
            # At start-up a bad detector (missing or corrupt model file) stops everything, loudly.
            self.detectors[name] = create_configured_detector(name)
        logger.info("cameras loaded count=%s detectors=%s shard=%s/%s", len(self.rules), ",".join(self.detectors),
                    self.selection.shard, self.selection.shards)
        self.rescorer.reload(self.rules)
        self._warn_unzoned(self.rules)

    def start_captures(self) -> None:
        specs = self._specs(self.rules)
        for spec in specs.values():
            self._start_stream(spec)

    def start_inference(self) -> None:
        engine = RuleEngine(RuleConfig.from_settings(), self.rules)
        self.inference = InferenceLoop(engine=engine, detectors=self.detectors, streams=self.live_streams,
                                       on_event=self.recorder.on_event, stop=self._stops["inference"],
                                       on_frame=self.live.offer if self.live is not None else None).start()

    def start_live(self) -> None:
        """The Cameras page's live pictures, from the frames inference has just processed."""
        if self.live is not None:
            self.live.start()
            logger.info("live pictures every %.1f s width=%s", self.live.interval, self.live.width)

    def start_writers(self) -> None:
        self.writer.start()
        self.spooler.start()
        self.recorder.start()

    # --- running -----------------------------------------------------------------------------------

    def run(self, *, duration: float | None = None) -> None:
        started = time.monotonic()
        try:
            self.load_cameras()
            self.start_captures()
            self.start_inference()
            self.start_live()
            self.start_writers()
            next_reload = time.monotonic() + self.reload_seconds
            next_sweep = next_snapshots = time.monotonic()
            while not self.stop.wait(0.25):
                now = time.monotonic()
                if duration is not None and now - started >= duration:
                    logger.info("duration reached seconds=%.0f: stopping", duration)
                    break
                if now >= next_reload:
                    next_reload = now + self.reload_seconds
                    self._guarded(self.reload)
                if now >= next_snapshots:  # each camera's first frame soon, then every SNAPSHOT_SECONDS
                    next_snapshots = now + 1.0
                    self._guarded(self.save_snapshots)
                if self.sweep and now >= next_sweep:
                    next_sweep = now + float(settings.CLIP_SWEEP_INTERVAL_SECONDS)
                    self._guarded(alerts_sweep)
        finally:
            self.shutdown()

    def _guarded(self, job: Callable[[], object]) -> None:
        close_old_connections()
        try:
            job()
        except Exception:  # loop top: a failed reload or sweep is retried next round
            logger.exception("supervisor step failed step=%s", getattr(job, "__name__", job))

    def reload(self) -> None:
        """Apply camera and zone changes made in the admin: added, removed, disabled, edited."""
        rules = camera_rules_list(camera_ids=self.selection.camera_ids())
        for name in sorted({r.detector for r in rules.values()} - set(self.detectors)):
            try:
                self.detectors[name] = create_configured_detector(name)
            except DetectorConfigError as exc:
                logger.error("detector not loaded detector=%s: %s; its cameras are skipped", name, exc)
        specs = self._specs(rules)
        for camera_id in [cid for cid in self.streams if cid not in specs or specs[cid] != self.streams[cid].spec]:
            self._stop_stream(camera_id)
        for camera_id, spec in specs.items():
            if camera_id not in self.streams:
                self._start_stream(spec)
        if rules != self.rules:
            logger.info("rules reloaded cameras=%s", len(rules))
            self._warn_unzoned({k: r for k, r in rules.items() if self.rules.get(k) != r})
            self.rules = rules
            if self.inference is not None:
                self.inference.replace_rules(rules)
        self.rescorer.reload(self.rules)  # learned models deployed, replaced or switched off in the meantime

    def _warn_unzoned(self, rules: Mapping[int, CameraRules]) -> None:
        for camera in rules.values():
            detector = self.detectors.get(camera.detector)
            if detector is not None and detector.needs_zones and not any(z.enabled for z in camera.zones):
                logger.warning("camera '%s' has no zones: the %s detector watches it but raises no alert there; draw "
                               "shelf, checkout and exit zones in the admin (Cameras > %s > Zones)", camera.name,
                               detector.name, camera.name)

    def save_snapshots(self) -> None:
        """Give the zone editor each camera's picture: its newest keyframe from the ring, at the
        camera's full resolution, first as soon as there is one, then every SNAPSHOT_SECONDS.
        Decoding and storing run on the writer thread, never in capture or inference."""
        now = time.monotonic()
        for camera_id, running in list(self.streams.items()):
            if now - self._snapshot_at.get(camera_id, -SNAPSHOT_SECONDS) < SNAPSHOT_SECONDS:
                continue
            latest = running.stream.ring.snapshot(time.time(), time.time())  # snaps back to the last keyframe
            if not latest.packets or latest.codec is None:
                continue
            self._snapshot_at[camera_id] = now
            self.writer.submit(partial(_save_snapshot, camera_id, latest.packets[0], latest.codec), label="snapshot")

    def live_streams(self) -> Mapping[int, CameraStream]:
        return {camera_id: running.stream for camera_id, running in list(self.streams.items())}

    def _ring(self, camera_id: int) -> PacketRing | None:
        running = self.streams.get(camera_id)
        return running.stream.ring if running is not None else None

    def _specs(self, rules: Mapping[int, CameraRules]) -> dict[int, StreamSpec]:
        cameras = Camera.objects.filter(pk__in=list(rules))
        specs = {}
        for camera in cameras:
            detector = self.detectors.get(rules[camera.pk].detector)
            size = detector.input_size if detector is not None and detector.input_size else None
            specs[camera.pk] = StreamSpec.from_camera(camera, **({"frame_size": size} if size else {}))
        return specs

    def _start_stream(self, spec: StreamSpec) -> None:
        camera_stop = threading.Event()
        stream = CameraStream(spec, stop=camera_stop, on_status=self.writer.submit_status).start()
        self.streams[spec.camera_id] = _Running(stream=stream, stop=camera_stop, spec=spec)
        logger.info("capture started camera=%s url=%s", spec.name, spec.masked_url)

    def _stop_stream(self, camera_id: int) -> None:
        running = self.streams.pop(camera_id)
        running.stop.set()
        if not running.stream.join(JOIN_SECONDS):
            logger.warning("capture did not stop in time camera=%s", running.spec.name)
        for detector in self.detectors.values():
            detector.forget(camera_id)
        logger.info("capture stopped camera=%s", running.spec.name)

    # --- stopping ----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the stages in order, each once the one feeding it has ended: captures and inference,
        then the live picture publisher, the recorder, the spooler (up to its flush time), and the
        writer. A stage that does not end in time is logged; the ones after it still get their turn."""
        self.stop.set()
        self._stops["inference"].set()
        for running in self.streams.values():
            running.stop.set()
        deadline = time.monotonic() + JOIN_SECONDS
        for running in self.streams.values():
            if not running.stream.join(max(0.0, deadline - time.monotonic())):
                logger.warning("shutdown: capture did not stop in time camera=%s", running.spec.name)
        if self.inference is not None and not self.inference.join(JOIN_SECONDS):
            logger.error("shutdown: the inference loop did not stop in %.0f s; its last events may be missing",
                         JOIN_SECONDS)
        self._stops["live"].set()
        if self.live is not None and not self.live.join(JOIN_SECONDS):
            logger.warning("shutdown: the live picture publisher did not stop in %.0f s", JOIN_SECONDS)
        self._stops["recorder"].set()
        if not self.recorder.join(JOIN_SECONDS):
            logger.error("shutdown: the recorder did not finish its clip windows in %.0f s", JOIN_SECONDS)
        self._stops["spooler"].set()
        if not self.spooler.join(self.spooler.flush_seconds + JOIN_SECONDS):
            logger.error("shutdown: the spooler did not stop; clip jobs left: %s", self.spooler.pending)
        self._stops["writer"].set()
        if not self.writer.join(JOIN_SECONDS):
            logger.warning("shutdown: the status writer did not drain in %.0f s", JOIN_SECONDS)
        for detector in self.detectors.values():
            detector.close()
        live = self.live.stats if self.live is not None else None
        logger.info("supervisor stopped cameras=%s alerts=%s suppressed=%s spooled=%s live_published=%s "
                    "live_dropped=%s model_suppressed=%s", len(self.streams), self.spooler.raised,
                    self.spooler.suppressed, self.spooler.spooled, live.published if live else 0,
                    live.dropped if live else 0, self.spooler.model_suppressed)
        connection.close()  # this thread's; the supervisor may run in a thread of its own (tests)


def _save_snapshot(camera_id: int, keyframe: RingPacket, codec: CodecParams) -> None:
    decoder = codec.decoder()
    try:
        frames = [*decoder.decode(av.Packet(keyframe.data)), *decoder.decode(None)]
    except av.error.FFmpegError as exc:
        logger.warning("snapshot not decoded camera_id=%s error=%s", camera_id, exc)
        return
    if frames:
        ok, jpeg = cv2.imencode(".jpg", frames[0].to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            camera_snapshot_save(camera_id, jpeg.tobytes())
