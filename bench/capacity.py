"""Figure 4: how many 720p25 cameras one machine sustains with motion detection at 5 fps.

    .venv/bin/python -m bench.capacity [--quick] [--designs ours,naive] [--steps 2,4,8]

Cameras are real RTSP/TCP clients of GStreamer's RTSP server (subprocesses on this machine,
each serving up to 8 clients a pre-encoded 720p25 H.264 file: 2 Mbit/s, keyframe every 2 s, so
the server only packetizes). The camera count is stepped up; each step runs in a fresh child
process that warms up, then measures a window. A step is sustained when, over the window:

  packets    every camera received at least 98 % of the 25 packets/s the server sent
  ring       every camera's pre-roll holds at least 10 s, with no gap (>1 s) and no hole in the
             packet times (a pts step over 1.5 frames)
  lag        neither the RTSP receive lag (receive time minus media time) nor the age of the
             sampled frame when inference finished with it rose by more than 0.5 s
  detection  every camera got at least 95 % of 5 detector frames/s, and no packet was skipped
             by a decoder that fell behind
  memory     (the naive design) the decoded frames fit under this benchmark's memory cap

Designs, each measured the same way:
  ours   as run_detectors runs it: a CameraStream per camera (capture thread into the packet
         ring, decode thread sampling 5 fps at the motion detector's 320x180 into a latest-frame
         slot) and one InferenceLoop batching every camera through the motion detector and rules
  naive  a thread per camera that decodes every frame to a full-size BGR array, keeps the last
         10 s of them in a deque (the pre-roll), and runs the motion detector at 5 fps inline

The machine is shared with other work: the child's CPU by thread (from /proc/self/task), the RTSP
servers' CPU and the rest of the machine's are reported separately, for the largest sustained
step and the step that failed, and the limiting factor is derived from them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench._support import (
    PYTHON,
    ROOT,
    machine_cpu,
    mem_available_bytes,
    process_cpu,
    rss_bytes,
    sigterm_cleans_up,
    thread_cpu,
)

FPS = 25
DETECTION_FPS = 5.0
RING_SECONDS = 10.0
WIDTH, HEIGHT = 1280, 720
# Camera counts tried, in order, until one fails (the naive design in finer steps: it fails early).
STEPS = {"ours": (8, 12, 16, 20, 24, 28, 32, 36, 40, 48), "naive": (2, 4, 6, 8, 10, 12, 16)}
QUICK_STEPS = {"ours": (2, 6, 12), "naive": (2, 4, 6)}
CAMERAS_PER_SERVER = 8
# Criteria (see the module docstring).
MIN_PACKET_RATIO = 0.98
MIN_DETECT_RATIO = 0.95
MAX_LAG_GROWTH = 0.5
RING_TOLERANCE = 0.25
GOAL_CAMERAS = 16
SHELF = ((0.6, 0.3), (0.95, 0.3), (0.95, 0.9), (0.6, 0.9))
FRAME_BYTES = WIDTH * HEIGHT * 3


def memory_cap() -> int:
    """What the naive design may hold in decoded frames here: the machine is shared with other work."""
    return int(min(8 * 2**30, 0.4 * mem_available_bytes()))


# =================================================================================================
# The child: one step (one design, N cameras), measured from inside.
# =================================================================================================

@dataclass
class Probe:
    """Per-camera figures, read once a second by the sampler."""

    packets: Callable[[], int]
    detected: Callable[[], tuple[int, float]]  # (frames through the detector, sum of their ages)
    recv_lag: Callable[[], float | None]  # receive time minus media time of the newest packet
    ring: Callable[[], tuple[float, int]]  # (seconds held, gaps > 1 s)
    skipped: Callable[[], int] = lambda: 0
    connected: Callable[[], bool] = lambda: True
    holes: list[int] = field(default_factory=lambda: [0])


class PtsChecker:
    """Counts holes in a camera's packet times (a step over 1.5 frames) and tracks its receive lag."""

    def __init__(self) -> None:
        self.last_pts: int | None = None
        self.holes = 0
        self.lag: float | None = None

    def see(self, pts: int | None, time_base: Any, recv_time: float) -> None:
        if pts is None:
            return
        if self.last_pts is not None:
            if pts <= self.last_pts:
                return
            if (pts - self.last_pts) * time_base > 1.5 / FPS:
                self.holes += 1
        self.last_pts = pts
        self.lag = recv_time - float(pts * time_base)


def start_ours(urls: list[str], stop: threading.Event, *, detector: Any = None, rules: dict[int, Any] | None = None,
               detect_urls: list[str] | None = None, detection_fps: float = DETECTION_FPS,
               ) -> tuple[list[Probe], Callable[[], dict[str, Any]]]:
    """Our design with the motion detector; bench.person_capacity passes the person detector, its
    rules, detection substreams and its sampling rate."""
    from detection.capture.stream import CameraStream, StreamSpec
    from detection.detectors.motion import MotionDetector
    from detection.inference.events import CameraRules, RuleConfig, RuleEngine, ZoneRule
    from detection.inference.loop import InferenceLoop

    if detector is None:
        detector = MotionDetector()  # the settings' defaults: 320x180, as create_configured_detector("motion")
    if rules is None:
        rules = {
            n: CameraRules(camera_id=n, name=f"cam{n}", detector="motion",
                           zones=(ZoneRule(id=1000 + n, name="Shelf", polygon=SHELF),))
            for n in range(len(urls))
        }
    # As Supervisor._specs: the detector's input size is the sampled frame size.
    streams = {
        n: CameraStream(StreamSpec(camera_id=n, name=f"cam{n}", url=url, detection_fps=detection_fps,
                                   detect_url=detect_urls[n] if detect_urls else None,
                                   ring_seconds=RING_SECONDS, frame_size=detector.input_size), stop=stop).start()
        for n, url in enumerate(urls)
    }
    events = [0]

    def on_event(event: Any) -> None:  # the recorder's on_event is a put_nowait on its queue
        events[0] += 1

    loop = InferenceLoop(engine=RuleEngine(RuleConfig(), rules), detectors={detector.name: detector},
                         streams=lambda: streams, on_event=on_event, stop=stop).start()
    checkers = {n: PtsChecker() for n in streams}

    def recv_lag(n: int) -> float | None:
        # Read the packets that arrived since the last look out of the ring (it holds 10 s; we look each second).
        checker = checkers[n]
        snapshot = streams[n].ring.snapshot(time.time() - 3.0, time.time() + 1.0)
        for packet in snapshot.packets:
            checker.see(packet.pts, packet.time_base, packet.recv_time)
        probes[n].holes[0] = checker.holes
        return checker.lag

    def ring(n: int) -> tuple[float, int]:
        stats = streams[n].ring.stats()
        return stats.seconds, len(stats.gaps)

    def detected(n: int) -> tuple[int, float]:
        stats = loop.stats.cameras[n]
        return stats.frames, stats.latency_sum

    probes = [
        Probe(packets=lambda n=n: streams[n].counters().packets, detected=lambda n=n: detected(n),
              recv_lag=lambda n=n: recv_lag(n), ring=lambda n=n: ring(n),
              skipped=lambda n=n: streams[n].counters().decode_skipped,
              connected=lambda n=n: streams[n].counters().connects > 0)
        for n in streams
    ]

    def finish() -> dict[str, Any]:
        for stream in streams.values():
            stream.join(3.0)
        loop.join(3.0)
        return {"events": events[0]}

    return probes, finish


class NaiveCamera:
    """Decode every frame to full-size BGR, keep 10 s of them, detect at 5 fps in the same thread."""

    def __init__(self, n: int, url: str, stop: threading.Event) -> None:
        from detection.detectors.motion import MotionDetector
        from detection.inference.events import CameraRules, RuleConfig, RuleEngine, ZoneRule

        self.n, self.url, self.stop = n, url, stop
        self.detector = MotionDetector()
        self.rules = {n: CameraRules(camera_id=n, name=f"cam{n}", detector="motion",
                                     zones=(ZoneRule(id=1000 + n, name="Shelf", polygon=SHELF),))}
        self.engine = RuleEngine(RuleConfig(), self.rules)
        self.frames: deque[tuple[float, float, Any]] = deque(maxlen=int(RING_SECONDS * FPS) + 1)
        self.checker = PtsChecker()
        self.packets = self.detected = self.events = 0
        self.age_sum = 0.0
        self.connected = False
        self.thread = threading.Thread(target=self._run, name=f"naive-cam{n}", daemon=True)

    def ring(self) -> tuple[float, int]:
        """(seconds of video held, by media time: the frames are kept by count, 10 s of them;
        receive-time gaps over 1 s)."""
        frames = list(self.frames)
        if len(frames) < 2:
            return 0.0, 0
        gaps = sum(1 for a, b in zip(frames, frames[1:]) if b[0] - a[0] > 1.0)
        return frames[-1][1] - frames[0][1], gaps

    def _run(self) -> None:
        import av.error

        from detection.capture.probe import open_input
        from detection.capture.stream import SampledFrame

        container = open_input(self.url, open_timeout=5.0, watchdog_seconds=10.0)
        self.connected = True
        next_due: float | None = None
        try:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            while not self.stop.is_set():
                try:
                    for packet in container.demux(stream):
                        if packet.size == 0 or self.stop.is_set():
                            return
                        recv = time.time()
                        self.packets += 1
                        self.checker.see(packet.pts, packet.time_base, recv)
                        for frame in packet.decode():
                            image = frame.to_ndarray(format="bgr24")
                            media = frame.time
                            if media is None:
                                continue
                            self.frames.append((recv, media, image))
                            if next_due is not None and media < next_due:
                                continue
                            next_due = (media if next_due is None or media - next_due > 1 / DETECTION_FPS
                                        else next_due) + 1 / DETECTION_FPS
                            sampled = SampledFrame(camera_id=self.n, image=image, captured_at=recv,
                                                   source_width=frame.width, source_height=frame.height)
                            detections = self.detector.detect([sampled], self.rules)
                            self.events += len(self.engine.process(self.n, recv, detections, image=image))
                            self.detected += 1
                            self.age_sum += time.time() - recv
                except av.error.ExitError:
                    continue
        finally:
            container.close()


def start_naive(urls: list[str], stop: threading.Event) -> tuple[list[Probe], Callable[[], dict[str, Any]]]:
    cameras = [NaiveCamera(n, url, stop) for n, url in enumerate(urls)]
    for camera in cameras:
        camera.thread.start()

    def probe(c: NaiveCamera) -> Probe:
        p = Probe(packets=lambda: c.packets, detected=lambda: (c.detected, c.age_sum),
                  recv_lag=lambda: c.checker.lag, ring=c.ring, connected=lambda: c.connected)
        p.holes = _HolesView(c.checker)  # type: ignore[assignment]
        return p

    def finish() -> dict[str, Any]:
        for camera in cameras:
            camera.thread.join(3.0)
        return {"events": sum(c.events for c in cameras)}

    return [probe(c) for c in cameras], finish


class _HolesView(list):  # type: ignore[type-arg]
    """probe.holes[0] reads the naive camera's live hole count."""

    def __init__(self, checker: PtsChecker) -> None:
        super().__init__([0])
        self._checker = checker

    def __getitem__(self, index: Any) -> Any:
        return self._checker.holes


def thread_groups() -> dict[str, float]:
    """CPU seconds so far per kind of thread: capture, decode, inference, naive, open, main,
    native (threads Python did not start), and exited (threads that ended: the whole process's
    CPU time minus the live threads'; FFmpeg's swscale starts a short-lived pool per reformat)."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    groups: dict[str, float] = {}
    for entry in os.listdir("/proc/self/task"):
        tid = int(entry)
        name = names.get(tid, "native")
        group = "main" if name == "MainThread" else name.split("-", 1)[0]
        groups[group] = groups.get(group, 0.0) + thread_cpu(tid)
    groups["exited"] = time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID) - sum(groups.values())
    return groups


def growth(series: list[float]) -> float:
    """How much a per-second series rose over the window: median of its last 3 minus its first 3."""
    values = [v for v in series if v is not None and math.isfinite(v)]
    if len(values) < 4:
        return 0.0
    k = min(3, len(values) // 2)
    return statistics.median(values[-k:]) - statistics.median(values[:k])


Starter = Callable[[list[str], threading.Event], tuple[list[Probe], Callable[[], dict[str, Any]]]]


def child_step(design: str, urls: list[str], warmup: float, seconds: float, mem_cap: int, *,
               starter: Starter | None = None, detection_fps: float = DETECTION_FPS) -> dict[str, Any]:
    """One step, measured from inside; `starter` and `detection_fps` let bench.person_capacity reuse it."""
    stop = threading.Event()
    starter = starter or (start_ours if design == "ours" else start_naive)
    probes, finish = starter(urls, stop)
    memory_exceeded = False
    try:
        time.sleep(warmup)
        for p in probes:
            p.recv_lag()  # read the packets that came during the warm-up
        print("WINDOW start", flush=True)
        t0, cpu0, groups0 = time.time(), os.times(), thread_groups()
        start = [(p.packets(), *p.detected(), p.skipped(), p.holes[0]) for p in probes]
        lags: list[list[float | None]] = [[] for _ in probes]
        ages: list[float] = []
        last = [p.detected() for p in probes]
        peak_rss = 0
        while time.time() - t0 < seconds:
            time.sleep(max(0.0, min(1.0, t0 + seconds - time.time())))
            frames = age = 0.0
            for i, p in enumerate(probes):
                lags[i].append(p.recv_lag())
                count, total = p.detected()
                frames += count - last[i][0]
                age += total - last[i][1]
                last[i] = (count, total)
            ages.append(age / frames if frames else math.nan)
            peak_rss = max(peak_rss, rss_bytes())
            if peak_rss > mem_cap:
                memory_exceeded = True
                break
        t1, cpu1, groups1 = time.time(), os.times(), thread_groups()
        print("WINDOW end", flush=True)
        end = [(p.packets(), *p.detected(), p.skipped(), p.holes[0]) for p in probes]
        rings = [p.ring() for p in probes]
        connected = sum(1 for p in probes if p.connected())
    finally:
        stop.set()
    extra = finish()
    window = t1 - t0
    per_cam = [(e[0] - s[0], e[1] - s[1], e[3] - s[3], e[4] - s[4]) for s, e in zip(start, end)]
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    finite_ages = [a for a in ages if math.isfinite(a)]
    return {
        "cameras": len(urls),
        "connected": connected,
        "window_s": round(window, 2),
        "packet_ratio_min": round(min(p for p, *_ in per_cam) / (FPS * window), 4),
        "detection_fps": detection_fps,
        "detect_ratio_min": round(min(d for _, d, *_ in per_cam) / (detection_fps * window), 4),
        "decode_skipped": sum(s for *_, s, _ in per_cam),
        "pts_holes": sum(h for *_, h in per_cam),
        "ring_seconds_min": round(min(r[0] for r in rings), 2),
        "ring_gaps": sum(r[1] for r in rings),
        "recv_lag_growth_s": round(max(growth(series) for series in lags), 3),  # type: ignore[arg-type]
        "frame_age_growth_s": round(growth(ages), 3),
        "frame_age_mean_s": round(statistics.fmean(finite_ages), 3) if finite_ages else math.nan,
        "process_cores": round(cpu / window, 3),
        "threads_cores": {k: round((groups1.get(k, 0.0) - groups0.get(k, 0.0)) / window, 3)
                          for k in sorted(groups1) if groups1.get(k, 0.0) - groups0.get(k, 0.0) > 0.005},
        "rss_mib": round(peak_rss / 2**20),
        "memory_exceeded": memory_exceeded,
        **extra,
    }


# =================================================================================================
# The parent: RTSP servers, stepping, criteria, and the figures.
# =================================================================================================

def failures(r: dict[str, Any]) -> list[str]:
    """The criteria a step missed, each with its number; [] when it was sustained."""
    out = []
    n = r["cameras"]
    if r.get("memory_exceeded") or r.get("memory_predicted"):
        out.append(f"memory: {r['rss_mib']} MiB of decoded frames over the {r['mem_cap_mib']} MiB cap")
    if r["connected"] < n:
        out.append(f"connect: {r['connected']}/{n} cameras connected")
    if r["packet_ratio_min"] < MIN_PACKET_RATIO:
        out.append(f"packets: worst camera received {r['packet_ratio_min']:.2%} of those sent")
    if r["ring_seconds_min"] < RING_SECONDS - RING_TOLERANCE or r["ring_gaps"] or r["pts_holes"]:
        out.append(f"ring: {r['ring_seconds_min']:.2f} s held, {r['ring_gaps']} gaps, {r['pts_holes']} holes")
    if r["recv_lag_growth_s"] > MAX_LAG_GROWTH or r["frame_age_growth_s"] > MAX_LAG_GROWTH:
        out.append(f"lag: receive lag +{r['recv_lag_growth_s']:.2f} s, frame age +{r['frame_age_growth_s']:.2f} s "
                   f"over the window")
    if r["detect_ratio_min"] < MIN_DETECT_RATIO or r["decode_skipped"]:
        fps = r.get("detection_fps", DETECTION_FPS)
        out.append(f"detection: worst camera {r['detect_ratio_min'] * fps:.2f} of {fps:g} fps, "
                   f"{r['decode_skipped']} packets skipped by the decoder")
    return out


class Servers:
    """GStreamer RTSP servers, each serving the 720p file to at most CAMERAS_PER_SERVER clients."""

    def __init__(self, video: Any) -> None:
        from tests.support.rtsp import RtspServer, file_mount

        self._make = lambda: RtspServer([file_mount("/cam", video)])
        self.running: list[Any] = []

    def urls(self, n: int) -> list[str]:
        while len(self.running) * CAMERAS_PER_SERVER < n:
            self.running.append(self._make().start())
        servers = math.ceil(n / CAMERAS_PER_SERVER)
        return [self.running[i % servers].url("/cam") for i in range(n)]

    def cpu(self) -> float:
        return sum(process_cpu(s.process.pid) for s in self.running if s.process is not None)

    def stop(self) -> None:
        for server in self.running:
            server.stop()
        self.running.clear()


def measure_step(servers: Servers, design: str, n: int, warmup: float, seconds: float,
                 module: str = "bench.capacity") -> dict[str, Any]:
    cap = memory_cap()
    if design == "naive" and n * RING_SECONDS * FPS * FRAME_BYTES > cap:
        # Not run: it would take more of this shared machine's memory than the cap allows.
        return {"cameras": n, "memory_predicted": True, "rss_mib": round(n * RING_SECONDS * FPS * FRAME_BYTES / 2**20),
                "mem_cap_mib": cap // 2**20}
    urls = servers.urls(n)
    command = [PYTHON, "-m", module, "--step", "--design", design, "--urls", ",".join(urls),
               "--warmup", str(warmup), "--seconds", str(seconds), "--mem-cap", str(cap)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    marks: dict[str, tuple[float, float, float, float]] = {}
    result: dict[str, Any] | None = None
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("WINDOW "):
                busy, total = machine_cpu()
                marks[line.split()[1]] = (time.monotonic(), servers.cpu(), busy, total)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            else:
                lines.append(line.rstrip())
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    if result is None or "start" not in marks or "end" not in marks:
        raise RuntimeError(f"capacity step {design} x{n} failed (exit {child.returncode}):\n" + "\n".join(lines[-30:]))
    (w0, s0, b0, t0), (w1, s1, b1, t1) = marks["start"], marks["end"]
    wall = w1 - w0
    result["server_cores"] = round((s1 - s0) / wall, 3)
    result["machine_cores"] = round((b1 - b0) / (t1 - t0) * (os.cpu_count() or 2), 3)
    result["other_cores"] = round(max(0.0, result["machine_cores"] - result["process_cores"] - result["server_cores"]), 3)
    result["mem_cap_mib"] = memory_cap() // 2**20
    time.sleep(2.5)  # let the servers drop the sessions (they clean up every 2 s)
    return result


def threads_text(r: dict[str, Any]) -> str:
    groups = r.get("threads_cores", {})
    n = max(1, r["cameras"])
    return ", ".join(f"{name} {cores:.2f} ({1000 * cores / n:.0f} ms/s per camera)"
                     for name, cores in sorted(groups.items(), key=lambda kv: -kv[1]))


WHAT = {
    "decode": "H.264 decoding of every frame in the decode threads (P-frames need every packet to sample 5 fps)",
    "naive": "decoding + full-size BGR conversion + inline detection in the camera threads",
    "exited": "FFmpeg swscale's short-lived thread pools (to_ndarray with the default threads=auto)",
    "inference": "the motion detector and rules in the inference thread",
    "capture": "RTSP demux and the packet ring in the capture threads",
}


def limiting_factor(design: str, stop: dict[str, Any] | None, problems: list[str]) -> str:
    """What stopped the design, from the step that failed: its criterion and where the CPU went."""
    if stop is None:
        return f"{design}: nothing failed up to the largest step tried"
    if stop.get("memory_predicted") or stop.get("memory_exceeded"):
        return (f"{design} at {stop['cameras']} cameras: memory, 10 s of decoded 720p BGR is "
                f"{RING_SECONDS * FPS * FRAME_BYTES / 2**20:.0f} MiB per camera ({stop['rss_mib']} MiB in all, cap "
                f"{stop['mem_cap_mib']} MiB on this shared machine)")
    cores = os.cpu_count() or 2
    busy = stop["machine_cores"] / cores
    head = f"{design} at {stop['cameras']} cameras: {problems[0].split(':')[0]}"
    cpu = (f"machine CPU {busy:.0%} of {cores} cores (detector process {stop['process_cores']:.2f} cores, "
           f"RTSP servers {stop['server_cores']:.2f}, other processes {stop['other_cores']:.2f})")
    groups = stop.get("threads_cores", {})
    top = max(groups.items(), key=lambda kv: kv[1]) if groups else ("?", 0.0)
    share = f"{top[1] / stop['process_cores']:.0%}" if stop["process_cores"] else "?"
    where = f"the biggest part is {WHAT.get(top[0], top[0] + ' threads')} ({top[1]:.2f} cores, {share} of the process)"
    if top[0] == "inference" and top[1] >= 0.85:
        verdict = "the single inference thread is saturated"
    elif busy >= 0.9:
        verdict = "the CPU is saturated"
        if stop["server_cores"] > 0.5 * stop["process_cores"]:
            verdict += ", much of it by the RTSP servers"
        if stop["other_cores"] > 0.3:
            verdict += ", with other work on the shared machine"
        verdict += f"; {where}"
    else:
        verdict = (f"the machine still had idle CPU ({busy:.0%} busy): the camera threads delay each other "
                   f"(likely the GIL around the Python work between FFmpeg calls); {where}")
    return f"{head}; {verdict}; {cpu}; threads: {threads_text(stop)}"


def run_design(servers: Servers, design: str, steps: tuple[int, ...], warmup: float, seconds: float,
               retry: bool) -> dict[str, Any]:
    ok: dict[str, Any] | None = None
    stop: dict[str, Any] | None = None
    problems: list[str] = []
    log = []
    for n in steps:
        r = measure_step(servers, design, n, warmup, seconds)
        problems = failures(r)
        if problems and retry and not r.get("memory_predicted"):
            print(f"   {design} x{n}: {'; '.join(problems)}: once more", flush=True)
            log.append(f"{n}:retry")
            r = measure_step(servers, design, n, warmup, seconds)
            problems = failures(r)
        status = "ok" if not problems else problems[0].split(":")[0]
        log.append(f"{n}:{status}")
        print(f"   {design} x{n}: {status}; process {r.get('process_cores', 0):.2f} cores, servers "
              f"{r.get('server_cores', 0):.2f}, machine {r.get('machine_cores', 0):.2f}; "
              f"{'; '.join(problems) or 'all criteria met'}", flush=True)
        if problems:
            stop = r
            break
        ok = r
    out: dict[str, Any] = {
        f"{design}_max_cameras": ok["cameras"] if ok else 0,
        f"{design}_stopped_by": "; ".join(problems) if stop else "none: every step tried was sustained",
        f"{design}_stop_cameras": stop["cameras"] if stop else 0,
        f"{design}_steps": " ".join(log),
        f"{design}_limiting_factor": limiting_factor(design, stop, problems),
    }
    if ok:
        out.update({
            f"{design}_process_cores_at_max": ok["process_cores"],
            f"{design}_server_cores_at_max": ok["server_cores"],
            f"{design}_machine_cores_at_max": ok["machine_cores"],
            f"{design}_other_cores_at_max": ok["other_cores"],
            f"{design}_core_ms_per_camera_s_at_max": round(1000 * ok["process_cores"] / ok["cameras"], 1),
            f"{design}_server_core_ms_per_camera_s": round(1000 * ok["server_cores"] / ok["cameras"], 1),
            f"{design}_frame_age_mean_s_at_max": ok["frame_age_mean_s"],
            f"{design}_rss_mib_at_max": ok["rss_mib"],
            f"{design}_threads_at_max": threads_text(ok),
        })
    return out


def run(quick: bool = False) -> dict[str, float | int | str]:
    from bench.common import bench_video

    steps = QUICK_STEPS if quick else STEPS
    # The warm-up plus the window must fill the 10 s ring after the ~1.5 s it takes to connect.
    warmup, seconds = (6.0, 6.0) if quick else (5.0, 15.0)
    video = bench_video("720p")
    servers = Servers(video)
    results: dict[str, Any] = {"window_s": seconds, "warmup_s": warmup, "memory_cap_mib": memory_cap() // 2**20}
    with sigterm_cleans_up():
        try:
            for design in ("ours", "naive"):
                results.update(run_design(servers, design, steps[design], warmup, seconds, retry=not quick))
        finally:
            servers.stop()
    naive = results["naive_max_cameras"]
    results["ratio"] = round(results["ours_max_cameras"] / naive, 2) if naive else math.nan
    results["limiting_factor"] = results["ours_limiting_factor"]
    return results


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    ours, naive = results.get("ours_max_cameras", 0), results.get("naive_max_cameras", 0)
    ratio = results.get("ratio", math.nan)
    at_max = (f"; at {ours}: detectors {results.get('ours_process_cores_at_max', math.nan):.2f} cores, RTSP server "
              f"{results.get('ours_server_cores_at_max', math.nan):.2f}") if ours else ""
    return [
        {"figure": "4", "name": "720p25 cameras sustained, motion detection at 5 fps, no gaps or lag (2 cores)",
         "measured": f"{ours} (ours; stopped at {results.get('ours_stop_cameras') or '-'}: "
                     f"{results.get('ours_stopped_by', '')}{at_max})",
         "baseline": f"{naive} (decode all to BGR, 10 s frame deque; stopped at "
                     f"{results.get('naive_stop_cameras') or '-'}: {results.get('naive_stopped_by', '')})",
         "ratio": f"{ratio:.1f}x more" if isinstance(ratio, (int, float)) and math.isfinite(ratio) else "n/a",
         "goal": f">= {GOAL_CAMERAS} cameras",
         "met": ours >= GOAL_CAMERAS},
        {"figure": "4", "name": "What limits capacity", "measured": str(results.get("limiting_factor", "")),
         "baseline": str(results.get("naive_limiting_factor", "")), "ratio": "", "goal": "", "met": None},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument("--step", action="store_true", help=argparse.SUPPRESS)  # the child of one step
    parser.add_argument("--design", default="ours")
    parser.add_argument("--urls", default="")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--mem-cap", type=int, default=8 * 2**30)
    args = parser.parse_args()
    if args.step:
        result = child_step(args.design, args.urls.split(","), args.warmup, args.seconds, args.mem_cap)
        print("RESULT " + json.dumps(result), flush=True)
        os._exit(0)  # daemon threads blocked in FFmpeg calls must not hold the exit
    figures = run(quick=args.quick)
    if args.json:
        from bench._support import print_result

        print_result(figures)
    else:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
