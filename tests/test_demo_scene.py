"""The first run's demo scene: seed_demo's zones, the shopper's walk through them, and bin/demo-camera
streaming it (a real GStreamer RTSP server)."""
from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from django.core.management import call_command

from cameras.demo import scene
from cameras.management.commands.seed_demo import DEMO_CAMERA, DEMO_SITE, OLD_DEMO_ZONE
from cameras.models import Camera, Zone, ZoneKind
from detection.inference.events import point_in_polygon
from tests.support.factories import make_camera, make_site, make_zone
from tests.support.rtsp import SYSTEM_PYTHON, free_port
from tests.support.video import write_demo_video

DEMO_CAMERA_SCRIPT = Path(__file__).resolve().parent.parent / "bin" / "demo-camera"
OLD_POLYGON = [[0.62, 0.15], [0.97, 0.15], [0.97, 0.95], [0.62, 0.95]]  # what older versions seeded


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def demo_zones() -> dict[str, Zone]:
    return {zone.kind: zone for zone in Zone.objects.filter(camera__site__name=DEMO_SITE, camera__name=DEMO_CAMERA)}


def feet(box: scene.Box) -> tuple[float, float]:
    """Where a detector would put the shopper's feet: the bottom centre of the part in the picture."""
    x1, x2 = max(box[0], 0.0), min(box[2], 1.0)
    return (x1 + x2) / 2, box[3]


def frame_times(cycle: float) -> list[float]:
    return [i / scene.FPS for i in range(round(cycle * scene.FPS))]


# --- seed_demo --------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_creates_the_demo_camera_with_one_zone_of_each_kind():
    output = seed()
    camera = Camera.objects.get(site__name=DEMO_SITE, name=DEMO_CAMERA)
    zones = {zone.name: zone.kind for zone in camera.zones.all()}
    assert zones == {"Shelf": ZoneKind.SHELF, "Checkout": ZoneKind.CHECKOUT, "Exit": ZoneKind.EXIT,
                     "Staff door": ZoneKind.RESTRICTED, "Clock": ZoneKind.IGNORE}
    assert sorted(zones.values()) == sorted(ZoneKind.values)
    for zone in camera.zones.all():
        zone.full_clean()  # valid polygons
    assert "Created the demo camera at rtsp://127.0.0.1:8554/demo with zones 'Shelf' (shelf)" in output
    assert "Demo login: user 'demo', password '" in output
    assert seed("--print-demo-url").strip() == "rtsp://127.0.0.1:8554/demo"


@pytest.mark.django_db
def test_it_changes_nothing_on_a_re_run():
    seed()
    before = list(Zone.objects.values_list("id", "name", "kind", "polygon").order_by("id"))
    output = seed()
    assert list(Zone.objects.values_list("id", "name", "kind", "polygon").order_by("id")) == before
    assert Camera.objects.count() == 1
    assert "zone" not in output.split("Demo login")[0]


@pytest.mark.django_db
def test_it_keeps_an_installers_changes_to_the_demo_zones_on_a_re_run():
    seed()
    Zone.objects.filter(name="Clock").delete()
    Zone.objects.filter(name="Shelf").update(polygon=[[0, 0], [0.5, 0], [0.5, 0.5]])
    seed()
    assert not Zone.objects.filter(name="Clock").exists()
    assert Zone.objects.get(name="Shelf").polygon == [[0, 0], [0.5, 0], [0.5, 0.5]]


@pytest.mark.django_db
def test_it_gives_a_demo_camera_seeded_by_an_older_version_the_new_zones():
    site = make_site(DEMO_SITE)
    camera = make_camera(site, DEMO_CAMERA, stream_url="rtsp://127.0.0.1:8554/demo")
    old = make_zone(camera, OLD_DEMO_ZONE, polygon=OLD_POLYGON)
    output = seed()
    zones = demo_zones()
    assert sorted(zones) == sorted(ZoneKind.values)
    assert zones[ZoneKind.SHELF].id == old.id  # the old zone became the shelf zone: its alerts keep their zone
    assert zones[ZoneKind.SHELF].name == "Shelf"
    assert zones[ZoneKind.SHELF].polygon == dict((k, p) for _, k, p in scene.ZONES)["shelf"]
    assert not Zone.objects.filter(name=OLD_DEMO_ZONE).exists()
    assert f"Replaced the demo camera's zone '{OLD_DEMO_ZONE}'" in output
    seed()
    assert Zone.objects.count() == 5


@pytest.mark.django_db
def test_it_leaves_a_repointed_demo_camera_and_a_configured_deployment_alone():
    site = make_site(DEMO_SITE)
    camera = make_camera(site, DEMO_CAMERA, stream_url="rtsp://10.0.0.9:554/ch1")
    make_zone(camera, OLD_DEMO_ZONE, polygon=OLD_POLYGON)
    seed()
    assert list(Zone.objects.values_list("name", flat=True)) == [OLD_DEMO_ZONE]
    assert Camera.objects.count() == 1
    assert seed("--print-demo-url").strip() == ""


# --- The shopper's walk through the seeded zones ----------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("cycle", [scene.CYCLE, 15.0, 45.0])
def test_the_shopper_goes_from_the_shelf_to_the_exit_avoiding_the_checkout(cycle):
    seed()
    zones = {kind: zone.polygon for kind, zone in demo_zones().items()}
    phases = scene.phases(cycle)
    visited: list[str] = []
    for t in frame_times(cycle):
        box = scene.person_box(t, cycle)
        phase = next(name for name, (start, end) in phases.items() if start <= t < end)
        if box is None or box[2] <= 0 or box[0] >= 1:
            assert phase in ("enter", "away", "leave"), f"the shopper is out of sight at {t} s ({phase})"
            continue
        x, y = feet(box)
        inside = {kind for kind, polygon in zones.items() if point_in_polygon(x, y, polygon)}
        assert not inside & {ZoneKind.CHECKOUT, ZoneKind.RESTRICTED, ZoneKind.IGNORE}, (t, phase, inside)
        if phase == "shelf":
            assert inside == {ZoneKind.SHELF}, (t, inside)
        if phase in ("exit", "leave"):
            assert inside == {ZoneKind.EXIT}, (t, inside)
        visited += [kind for kind in sorted(inside) if not visited or visited[-1] != kind]
    assert visited == [ZoneKind.SHELF, ZoneKind.EXIT]


def test_the_shopper_stands_at_the_shelf_then_at_the_exit_and_is_away_the_rest_of_the_cycle():
    phases = scene.phases(scene.CYCLE)
    assert phases["shelf"] == (5.0, 11.0) and phases["exit"] == (16.0, 18.0)
    assert {scene.person_box(t) for t in (5.0, 8.0, 10.96)} == {scene.person_box(5.0)}
    assert {scene.person_box(t) for t in (16.0, 17.0, 17.96)} == {scene.person_box(16.0)}
    assert all(scene.person_box(t) is None for t in (20.0, 25.0, 29.96))
    assert scene.person_box(30.0 + 8.0) == scene.person_box(8.0)  # the next cycle
    box = scene.person_box(8.0)
    assert box is not None
    assert 0.45 <= box[3] - box[1] <= 0.6  # big enough for the person detector
    assert round((box[2] - box[0]) * 1280) == 260 and round((box[3] - box[1]) * 720) == 380


def test_the_drawn_counter_clock_and_doors_lie_in_their_zones():
    zones = {kind: polygon for _, kind, polygon in scene.ZONES}

    def centre(box: scene.Box) -> tuple[float, float]:
        return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

    assert point_in_polygon(*centre(scene.COUNTER), zones["checkout"])
    assert point_in_polygon(*scene.CLOCK[:2], zones["ignore"])
    assert point_in_polygon(*centre(scene.SHELF_UNIT), zones["shelf"])
    door = scene.STAFF_DOOR
    assert point_in_polygon((door[0] + door[2]) / 2, door[3] + 0.02, zones["restricted"])  # the floor at the door
    door = scene.EXIT_DOOR
    assert point_in_polygon((door[0] + door[2]) / 2, door[3] + 0.02, zones["exit"])


# --- The pictures -----------------------------------------------------------------------------

def changed_box(image: np.ndarray, background: np.ndarray) -> tuple[int, int, int, int] | None:
    """The pixel box of what differs from the background (the shopper), ignoring coding noise."""
    changed = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(axis=2) > 40
    cols, rows = np.flatnonzero(changed.sum(axis=0) > 20), np.flatnonzero(changed.sum(axis=1) > 20)
    if len(cols) == 0 or len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def expected_box(t: float, size: tuple[int, int], cycle: float = scene.CYCLE) -> tuple[int, int, int, int]:
    box = scene.person_box(t, cycle)
    assert box is not None
    w, h = size
    return round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)


def assert_near(actual: tuple[int, ...] | None, expected: tuple[int, ...], tolerance: int) -> None:
    assert actual is not None and all(abs(a - e) <= tolerance for a, e in zip(actual, expected)), (actual, expected)


def test_the_demo_video_shows_the_shopper_where_the_walk_puts_them(tmp_path):
    size = (640, 360)
    path = write_demo_video(tmp_path / "demo.mp4", seconds=2, size=size, start=7.0)
    background = cv2.resize(cv2.imread(str(scene.STORE_JPG)), size, interpolation=cv2.INTER_AREA)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        assert (stream.width, stream.height, stream.average_rate) == (640, 360, 25)
    assert len(frames) == 50
    assert_near(changed_box(frames[25], background), expected_box(8.0, size), 4)


@pytest.mark.rtsp
@pytest.mark.slow
def test_bin_demo_camera_streams_the_scene_over_rtsp():
    port = free_port()
    process = subprocess.Popen([SYSTEM_PYTHON, str(DEMO_CAMERA_SCRIPT), "--port", str(port), "--cycle", "15"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"demo-camera: streaming rtsp://127.0.0.1:{port}/demo")
        size = (scene.WIDTH, scene.HEIGHT)
        background = cv2.imread(str(scene.STORE_JPG))
        boxes = []
        with av.open(f"rtsp://127.0.0.1:{port}/demo", options={"rtsp_transport": "tcp", "timeout": "5000000"},
                     timeout=(5, 5)) as container:
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                image = frame.to_ndarray(format="bgr24")
                if index == 0:
                    assert (frame.width, frame.height) == size
                    assert image.mean() > 100, "the first frame is black: the stills were not ready"
                if index % 5 == 0:
                    boxes.append(changed_box(image, background))
                if index >= 7 * 25:
                    break
        # With a 15 s cycle the shopper stands at the shelf from 2.5 to 5.5 s into it.
        at_shelf = expected_box(4.0, size, 15.0)
        still = [box for box in boxes if box is not None and abs(box[0] - at_shelf[0]) <= 6]
        assert len(still) >= 10, boxes
        assert_near(still[len(still) // 2], at_shelf, 6)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
