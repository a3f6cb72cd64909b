"""The live camera wall: the detectors' latest frame of each camera, with the people they track
drawn, as JPEG in the test run's own Redis, served by a permission-checked view to a grid of tiles
that refresh, flash on a new alert and fill the screen in wall mode."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import redis
from django.test import Client
from pytest_django.fixtures import Settings

import cameras.views
from cameras.demo import scene
from cameras.live import LiveFrame, live_client, live_frame_get, live_frame_key, live_frames_store
from cameras.models import Zone
from detection.capture.stream import CameraStream, SampledFrame, StreamSpec
from detection.detectors.registry import create_detector
from detection.inference.events import CameraRules, Event, RuleConfig, RuleEngine, ZoneRule
from detection.inference.loop import InferenceLoop
from detection.live import LivePerson, LivePublisher
from detection.metrics import SupervisorCollector
from detection.supervisor import Selection, Supervisor
from detection.tracking.drawing import BOX_COLOUR
from tests.support.browser import DESKTOP, log_in, screenshot
from tests.support.clips import World
from tests.support.factories import PASSWORD, make_alert, make_camera, make_site, make_zone
from tests.support.processes import ROOT, RedisServer
from tests.support.rtsp import live_mount, wait_until
from tests.support.video import demo_scene_frame

CAMERA_ID = 1
SIZE = (960, 540)  # the person detector's input


def demo_frame(t: float) -> np.ndarray:
    return demo_scene_frame(t, size=SIZE)


def demo_rules(camera_id: int) -> CameraRules:
    zones = tuple(ZoneRule(id=n, name=name, kind=kind, polygon=tuple((x, y) for x, y in polygon))
                  for n, (name, kind, polygon) in enumerate(scene.ZONES, start=1))
    return CameraRules(camera_id=camera_id, name="Demo", zones=zones, detector="person")


@pytest.fixture
def live_redis(settings: Settings, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """REDIS_URL on the test run's own Redis (never the machine's 6379), without live pictures in it."""
    settings.REDIS_URL = settings.CELERY_BROKER_URL
    cameras.views._redis_paused_until = 0.0
    client = live_client(settings.REDIS_URL)
    for key in client.scan_iter("shoplift:live:*"):
        client.delete(key)
    yield client
    cameras.views._redis_paused_until = 0.0


def yellow(pixel: np.ndarray) -> bool:
    """The box colour (BGR yellow), give or take what JPEG does to a 2-pixel line."""
    return all(abs(int(value) - target) < 100 for value, target in zip(pixel, BOX_COLOUR, strict=True))


def jpeg_image(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def edge_hits(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """The share of points along the box's top and left edges that are the box colour."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height)
    points = [(x, y1) for x in np.linspace(x1 + 4, x2 - 4, 20).astype(int)]
    points += [(x1, y) for y in np.linspace(y1 + 4, y2 - 4, 20).astype(int)]
    return sum(yellow(image[y, x]) for x, y in points) / len(points)


# --- The publisher ---------------------------------------------------------------------------------

def test_it_publishes_the_frame_inference_saw_with_the_persons_box_drawn(live_redis: redis.Redis,
                                                                          settings: Settings) -> None:
    # The real person detector in the real inference loop, on a photograph of a person in the demo shop.
    detector = create_detector("person", input_size=SIZE, threads=2)
    stream = CameraStream(StreamSpec(camera_id=CAMERA_ID, name="Demo", url="rtsp://127.0.0.1:1/unused"),
                          stop=threading.Event())
    publisher = LivePublisher(stop=threading.Event(), redis_url=settings.REDIS_URL, interval=1.0, width=640)
    events: list[Event] = []
    loop = InferenceLoop(engine=RuleEngine(RuleConfig.from_settings(), {CAMERA_ID: demo_rules(CAMERA_ID)}),
                         detectors={"person": detector}, streams=lambda: {CAMERA_ID: stream},
                         on_event=events.append, stop=threading.Event(), on_frame=publisher.offer)
    for n in range(3):  # a new person's track is confirmed on its second sighting
        stream.frames.put(SampledFrame(camera_id=CAMERA_ID, image=demo_frame(8.0), captured_at=1_000.0 + n / 5,
                                       source_width=SIZE[0], source_height=SIZE[1]))
        assert loop.step()
    [person] = detector.people(CAMERA_ID)

    assert publisher.publish_once() == 1
    frame = live_frame_get(live_redis, CAMERA_ID)
    assert frame is not None and frame.captured_at == pytest.approx(1_000.4)
    image = jpeg_image(frame.jpeg)
    assert image.shape[:2] == (360, 640)  # the 960x540 detection frame, scaled to LIVE_FRAME_WIDTH
    assert edge_hits(image, person.box) >= 0.9
    bare = cv2.resize(demo_frame(8.0), (640, 360), interpolation=cv2.INTER_AREA)
    assert edge_hits(bare, person.box) <= 0.3  # the yellow is the drawn box, not the picture
    assert 0 < live_redis.pttl(live_frame_key(CAMERA_ID)) <= 5000  # a few seconds, then the tile goes blank
    assert publisher.publish_once() == 0  # nothing new since: nothing written
    assert (publisher.stats.published, publisher.stats.dropped) == (1, 0)


def test_it_publishes_each_camera_once_per_round_at_most_the_width_and_never_enlarged(live_redis: redis.Redis) -> None:
    publisher = LivePublisher(stop=threading.Event(), redis_url="unused", interval=1.0, width=640, client=live_redis)
    small = np.full((180, 320, 3), 90, np.uint8)
    for n in range(5):  # five frames of camera 2 in one second: the newest one goes out
        publisher.offer(SampledFrame(camera_id=2, image=small, captured_at=2_000.0 + n, source_width=320,
                                     source_height=180))
    publisher.offer(SampledFrame(camera_id=3, image=np.zeros((1080, 1920, 3), np.uint8), captured_at=3_000.0,
                                 source_width=1920, source_height=1080), (LivePerson((0.1, 0.1, 0.5, 0.9)),))

    assert publisher.publish_once() == 2
    two, three = live_frame_get(live_redis, 2), live_frame_get(live_redis, 3)
    assert two is not None and two.captured_at == 2_004.0 and jpeg_image(two.jpeg).shape[:2] == (180, 320)
    assert three is not None and jpeg_image(three.jpeg).shape[:2] == (360, 640)
    assert small.max() == 90  # the shared frame was copied before drawing, never drawn on


# --- The view ----------------------------------------------------------------------------------------

def _client(world: World, persona: str) -> Client:
    client = Client()
    user = world.users[persona]
    assert user is not None
    client.force_login(user)
    return client


def _store(client: redis.Redis, camera_id: int, *, ttl: float = 10.0) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((36, 64, 3), 128, np.uint8))
    assert ok
    jpeg = encoded.tobytes()
    live_frames_store(client, [LiveFrame(camera_id=camera_id, jpeg=jpeg, captured_at=1_700_000_000.25)], ttl_seconds=ttl)
    return jpeg


def test_it_serves_the_picture_to_a_user_of_the_cameras_site_and_to_no_one_else(world: World,
                                                                                 live_redis: redis.Redis) -> None:
    jpeg = _store(live_redis, world.camera_a.pk)
    _store(live_redis, world.camera_b.pk)
    url = f"/cameras/{world.camera_a.pk}/live.jpg"

    for persona in ("viewer", "reviewer", "manager", "superuser"):
        response = _client(world, persona).get(url)
        assert response.status_code == 200, persona
        assert response["Content-Type"] == "image/jpeg" and response.content == jpeg
        assert response["Cache-Control"] == "no-store"
        assert response["X-Captured-At"] == "1700000000.250"

    other = _client(world, "other_site")
    refused, missing = other.get(url), other.get("/cameras/999999/live.jpg")
    assert refused.status_code == missing.status_code == 404
    without_token = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')
    assert without_token.sub(b"", refused.content) == without_token.sub(b"", missing.content)  # alike
    assert other.get(f"/cameras/{world.camera_b.pk}/live.jpg").status_code == 200  # their own site's
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"] == f"/login/?next={url}"


def test_a_camera_without_a_fresh_picture_answers_no_content(world: World, live_redis: redis.Redis) -> None:
    url = f"/cameras/{world.camera_a.pk}/live.jpg"
    client = _client(world, "viewer")

    never = client.get(url)
    _store(live_redis, world.camera_a.pk, ttl=0.3)
    fresh = client.get(url)
    wait_until(lambda: not live_redis.exists(live_frame_key(world.camera_a.pk)), 5, message="the picture expired")
    expired = client.get(url)

    assert (never.status_code, fresh.status_code, expired.status_code) == (204, 200, 204)
    assert never.content == expired.content == b"" and expired["Cache-Control"] == "no-store"


def test_the_poll_names_each_cameras_state_and_its_new_alert_for_the_users_sites_only(world: World,
                                                                                       live_redis: redis.Redis) -> None:
    after = max(world.alert_a.pk, world.alert_b.pk)
    newer = make_alert(world.camera_a, event_type="exit_without_checkout")
    make_alert(world.camera_b, event_type="concealment")  # the other site's

    body = _client(world, "viewer").get("/cameras/poll/", {"after": after}).json()

    assert body["cameras"] == {str(world.camera_a.pk): {"state": "offline", "label": "Offline",
                                                       "badge": "badge badge-red"}}
    assert body["alerts"] == {str(world.camera_a.pk): {"id": newer.pk, "url": f"/alerts/{newer.pk}/",
                                                      "event": "Exit without checkout"}}
    assert _client(world, "viewer").get("/cameras/poll/", {"after": newer.pk}).json()["alerts"] == {}
    assert Client().get("/cameras/poll/")["Location"].startswith("/login/?next=")


def test_the_page_gives_each_tile_its_picture_url_and_zones_and_keeps_the_status_table(world: World,
                                                                                        live_redis: redis.Redis) -> None:
    html = _client(world, "viewer").get("/cameras/").content.decode()

    assert f'data-live-url="/cameras/{world.camera_a.pk}/live.jpg"' in html
    assert f"/cameras/{world.camera_b.pk}/" not in html and "Entrance" not in html
    assert '<script id="camera-wall-data" type="application/json">' in html
    assert '"Spirits shelf"' in html and f'"after": {world.alert_a.pk}' in html  # zones, and the alert baseline
    assert 'src="/static/js/wall.js"' in html and "<script>" not in html  # no inline script (CSP)
    assert 'class="cam-table"' in html  # the status table stays


# --- Redis down --------------------------------------------------------------------------------------

def test_a_redis_outage_drops_and_counts_frames_logs_once_and_recovers(world: World, live_redis: redis.Redis,
                                                                       redis_server: RedisServer, settings: Settings,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    publisher = LivePublisher(stop=stop, redis_url=settings.REDIS_URL, interval=0.2, width=320).start()
    feeding = threading.Event()

    def feed() -> None:  # the inference loop, at 5 fps
        n = 0
        while not stop.is_set():
            if feeding.is_set():
                publisher.offer(SampledFrame(camera_id=world.camera_a.pk, image=np.full((90, 160, 3), 60, np.uint8),
                                             captured_at=time.time(), source_width=160, source_height=90))
                n += 1
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    url = f"/cameras/{world.camera_a.pk}/live.jpg"
    client = _client(world, "viewer")
    caplog.set_level(logging.INFO, logger="detection.live")
    try:
        feeding.set()
        wait_until(lambda: publisher.stats.published >= 2, 10, message="frames published")
        redis_server.stop()
        started = time.monotonic()
        wait_until(lambda: publisher.stats.dropped >= 5, 10, message="frames dropped while Redis is down")
        assert time.monotonic() - started < 5  # a round a tick: dropping costs no waiting
        assert client.get(url).status_code == 503
        assert client.get(url).status_code == 503  # paused: not asked again for a while
        redis_server.start()
        published = publisher.stats.published
        wait_until(lambda: publisher.stats.published > published, 10, message="frames published again")
        cameras.views._redis_paused_until = 0.0
        assert client.get(url).status_code == 200
        assert publisher.join(0.0) is False  # still running
    finally:
        if redis_server.process is None:
            redis_server.start()
        stop.set()
        feeder.join(5)
    assert publisher.join(5)
    down = [r for r in caplog.records if r.name == "detection.live" and "does not answer" in r.getMessage()]
    back = [r for r in caplog.records if r.name == "detection.live" and "answers again" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1  # once per outage, not once per frame
    assert f"frames dropped={publisher.stats.dropped}" in back[0].getMessage()
    assert publisher.stats.outages == 1 and publisher.stats.failed == 0


# --- The supervisor ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.rtsp
@pytest.mark.django_db(transaction=True)
def test_the_supervisor_starts_the_publisher_after_inference_and_stops_it(rtsp_servers, live_redis: redis.Redis,  # type: ignore[no-untyped-def]
                                                                         settings: Settings) -> None:
    settings.LIVE_FRAME_SECONDS = 0.5
    server = rtsp_servers([live_mount("/live")])
    camera = make_camera(make_site("Main St"), "Till", stream_url=server.url("/live"), detector="motion")
    stop = threading.Event()
    supervisor = Supervisor(Selection(), stop=stop, sweep=False)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        frame = wait_until(lambda: live_frame_get(live_redis, camera.pk), 30, message="a live picture in Redis")
        assert supervisor.live is not None and not supervisor.live.join(0.0)
        assert abs(frame.captured_at - time.time()) < 10
        assert jpeg_image(frame.jpeg).shape[1] == 320  # the motion detector's frame: never enlarged
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert supervisor.live.join(0.0)
    assert not any(t.name == "live-frames" and t.is_alive() for t in threading.enumerate())
    assert supervisor.live.stats.published >= 1 and supervisor.live.stats.dropped == 0


@pytest.mark.django_db
def test_live_frame_seconds_0_means_no_publisher(settings: Settings) -> None:
    settings.LIVE_FRAME_SECONDS = 0
    assert Supervisor(Selection(), stop=threading.Event(), sweep=False).live is None


@pytest.mark.django_db
def test_prometheus_counts_the_pictures_published_and_dropped(settings: Settings) -> None:
    settings.LIVE_FRAME_SECONDS = 1.0
    supervisor = Supervisor(Selection(), stop=threading.Event(), sweep=False)
    assert supervisor.live is not None
    supervisor.live.stats.published, supervisor.live.stats.dropped = 120, 7

    metrics = {metric.name: metric.samples[0].value for metric in SupervisorCollector(supervisor).collect()
               if metric.name.startswith("shoplift_live")}

    assert metrics == {"shoplift_live_frames_published": 120, "shoplift_live_frames_dropped": 7}


@pytest.mark.parametrize("extra, expected", [
    ({"LIVE_FRAME_SECONDS": "0.1"}, "LIVE_FRAME_SECONDS (0.1) must be 0 (off) or at least 0.2"),
    ({"LIVE_FRAME_SECONDS": "-1"}, "LIVE_FRAME_SECONDS='-1' is invalid: expected seconds between a camera's live"),
    ({"LIVE_FRAME_WIDTH": "100"}, "LIVE_FRAME_WIDTH (100) must be from 160 to 3840 pixels"),
    ({"LIVE_FRAME_WIDTH": "wide"}, "LIVE_FRAME_WIDTH='wide' is invalid"),
])
def test_bad_live_settings_stop_start_up_with_a_message_naming_them(extra: dict[str, str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL"))}
    env.update({"SECRET_KEY": "k" * 50, "DEBUG": "false", "DJANGO_SETTINGS_MODULE": "shoplift.settings", **extra})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and expected in result.stderr and "Traceback" not in result.stderr


# --- In a browser ------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_wall_shows_the_picture_draws_zones_flashes_on_an_alert_and_fills_the_screen(  # type: ignore[no-untyped-def]
        world: World, live_redis: redis.Redis, live_server, browser, settings: Settings) -> None:
    settings.DASHBOARD_POLL_SECONDS = 1.0
    publisher = LivePublisher(stop=threading.Event(), redis_url=settings.REDIS_URL, interval=1.0, width=640)
    publisher.ttl_seconds = 120.0  # one picture for the whole test
    publisher.offer(SampledFrame(camera_id=world.camera_a.pk, image=cv2.resize(demo_frame(8.0), (640, 360)),
                                 captured_at=time.time(), source_width=640, source_height=360),
                    (LivePerson((0.3, 0.2, 0.5, 0.9)),))
    assert publisher.publish_once() == 1
    make_zone(world.camera_a, "Exit door", kind="exit", polygon=[[0.0, 0.5], [0.2, 0.5], [0.2, 1.0], [0.0, 1.0]])
    Zone.objects.filter(camera=world.camera_a, name="Spirits shelf").update(kind="shelf")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    log_in(page, live_server.url, "viewer", PASSWORD)
    page.goto(f"{live_server.url}/cameras/")

    tile = f'.tile[data-camera="{world.camera_a.pk}"]'
    page.wait_for_function(f"""() => {{ const i = document.querySelector('{tile} img');
        return i && i.complete && i.naturalWidth > 0; }}""", timeout=15000)
    assert page.evaluate(f"() => document.querySelector('{tile} img').naturalWidth") == 640
    assert page.locator(f"{tile} svg polygon").count() == 2  # both zones, over the picture
    assert page.locator(f"{tile} svg polygon.zone-exit").count() == 1

    shots = [screenshot(page, "camera-wall-desktop")]
    alert = make_alert(world.camera_a, event_type="concealment")
    page.wait_for_selector(f"{tile}.is-alerting", timeout=15000)
    assert "Concealment" in page.locator(f"{tile} [data-tile-alert]").inner_text()

    page.click("[data-wall-toggle]")
    page.wait_for_function("() => document.body.classList.contains('wall-mode')")
    assert not page.locator(".topbar").is_visible() and not page.locator("#camera-status").is_visible()
    assert page.locator(tile).is_visible()
    shots.append(screenshot(page, "camera-wall-mode"))
    page.click("[data-wall-toggle]")
    page.wait_for_function("() => !document.body.classList.contains('wall-mode')")
    assert page.locator(".topbar").is_visible()

    page.click(f"{tile} .tile-frame", position={"x": 20, "y": 20})
    page.wait_for_url(f"{live_server.url}/alerts/{alert.pk}/")
    assert problems == []
    assert all(shot.stat().st_size > 5000 for shot in shots)
    context.close()
