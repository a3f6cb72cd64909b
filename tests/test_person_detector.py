"""The person detector with its shipped models: checked model files, a real photograph of a person,
the motion gate, and the whole chain (models, tracker, pose, behaviour, rules) on the demo scene."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from cameras.demo import scene
from detection.capture.stream import SampledFrame
from detection.detectors.base import DetectorConfigError
from detection.detectors.person.modelfiles import MODELS_DIR
from detection.detectors.registry import create_configured_detector, create_detector
from detection.inference.events import CameraRules, EventPhase, RuleConfig, RuleEngine, ZoneRule
from tests.support.factories import make_camera, make_site
from tests.support.video import demo_scene_frame

SIZE = (960, 540)


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    return create_detector("person", input_size=SIZE, threads=2)


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(MODELS_DIR, folder)
    return folder


def demo_frame(t: float) -> np.ndarray:
    return demo_scene_frame(t, size=SIZE)


def demo_rules(camera_id: int = 1) -> CameraRules:
    zones = tuple(ZoneRule(id=n, name=name, kind=kind, polygon=tuple((x, y) for x, y in polygon))
                  for n, (name, kind, polygon) in enumerate(scene.ZONES, start=1))
    return CameraRules(camera_id=camera_id, name="Demo", zones=zones, detector="person")


def sampled(t: float, camera_id: int = 1) -> SampledFrame:
    return SampledFrame(camera_id=camera_id, image=demo_frame(t), captured_at=1_000.0 + t, source_width=SIZE[0],
                        source_height=SIZE[1])


def test_it_finds_the_person_in_a_real_photograph_where_it_was_pasted(detector) -> None:  # type: ignore[no-untyped-def]
    t = 8.0  # standing at the shelf
    [[person]] = detector.people_model.detect([demo_frame(t)])
    expected = scene.person_box(t)
    assert person.score >= 0.4
    # The box covers the pasted photo (the photo's own edges are background, so a little smaller).
    assert abs((person.box[0] + person.box[2]) / 2 - (expected[0] + expected[2]) / 2) < 0.05
    assert person.box[1] < expected[1] + 0.1 and person.box[3] > expected[3] - 0.1


def test_it_finds_nobody_in_the_empty_store(detector) -> None:  # type: ignore[no-untyped-def]
    assert detector.people_model.detect([demo_frame(25.0)]) == [[]]  # the shopper is away


def test_it_batches_cameras_with_the_same_result_as_one_by_one(detector) -> None:  # type: ignore[no-untyped-def]
    frames = [demo_frame(t) for t in (3.0, 8.0, 14.0, 25.0)]
    batched = detector.people_model.detect(frames)
    single = [detector.people_model.detect([f])[0] for f in frames]
    assert [[round(p.score, 4) for p in r] for r in batched] == [[round(p.score, 4) for p in r] for r in single]
    assert [len(r) for r in batched] == [1, 1, 1, 0]


def test_it_puts_the_pose_keypoints_on_the_body(detector) -> None:  # type: ignore[no-untyped-def]
    frame = demo_frame(8.0)
    [[person]] = detector.people_model.detect([frame])
    [keypoints] = detector.pose_model.keypoints(frame, [person.box])
    assert keypoints is not None and len(keypoints) == 17
    x1, y1, x2, y2 = person.box
    shoulders = [keypoints[5], keypoints[6]]
    for x, y, score in shoulders:  # the photo shows the upper body: the shoulders are seen and inside the box
        assert score > 0.5 and x1 <= x <= x2 and y1 <= y <= y2
    assert keypoints[0][1] < min(y for _, y, _ in shoulders)  # the nose above the shoulders


def test_it_tracks_the_demo_shopper_from_shelf_to_exit_and_raises_exit_without_checkout(detector) -> None:  # type: ignore[no-untyped-def]
    rules = demo_rules(camera_id=7)
    engine = RuleEngine(RuleConfig(), {7: rules})
    events, track_ids = [], set()
    for n in range(int(20.0 * 5)):  # the visit, sampled at 5 fps
        frame = sampled(n / 5, camera_id=7)
        detections = detector.detect([frame], {7: rules})
        track_ids |= {p.id for p in detector.people(7)}
        events += engine.process(7, frame.captured_at, detections, image=frame.image)
    events += engine.close_all()
    detector.forget(7)
    started = [e for e in events if e.phase is EventPhase.STARTED]
    assert [(e.event_type, e.zone_name) for e in started] == [("exit_without_checkout", "Exit")]
    assert len(track_ids) == 1, f"the one shopper got several track ids: {track_ids}"
    [event] = started
    assert 14.8 <= event.start - 1_000.0 <= 17.0  # the feet cross into the exit zone at 15.1 s
    assert event.track is not None and event.track.points[0].at - 1_000.0 < 6.0  # the track reaches back to the shelf
    assert event.trigger_box is not None and event.trigger_image is not None


def test_it_skips_the_model_where_nothing_moves_but_keeps_still_people(detector) -> None:  # type: ignore[no-untyped-def]
    rules = demo_rules(camera_id=8)
    still = [sampled(5.0 + 0.2 * n, camera_id=8) for n in range(30)]  # 6 s: the shopper stands at the shelf
    for frame in still:
        frame.image[:] = still[0].image  # the same picture: nothing moves at all
    before = detector.stats.model_frames
    people_seen = []
    for frame in still:
        detector.detect([frame], {8: rules})
        people_seen.append(len(detector.people(8)))
    runs = detector.stats.model_frames - before
    detector.forget(8)
    assert runs <= 2 + 6 * 1.2, f"the model ran {runs} times on 30 still frames"  # first frames, then ~1/s
    assert people_seen[2:] == [1] * 28  # the still shopper stays tracked between model runs


def test_it_refuses_to_load_without_a_model_file_and_names_it(models_copy: Path) -> None:
    (models_copy / "nanodet.onnx").unlink()
    with pytest.raises(DetectorConfigError, match=r"nanodet\.onnx is missing.*git checkout"):
        create_detector("person", models_dir=models_copy)


def test_it_refuses_an_altered_model_file_and_names_it(models_copy: Path) -> None:
    path = models_copy / "pose_landmark_full.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DetectorConfigError, match=r"pose_landmark_full\.onnx has SHA-256 [0-9a-f]{64}, but "
                                                  r"PROVENANCE\.json records"):
        create_detector("person", models_dir=models_copy)


@pytest.mark.django_db
def test_run_detectors_stops_at_start_up_when_a_model_file_is_missing(models_copy: Path, settings) -> None:  # type: ignore[no-untyped-def]
    (models_copy / "pose_landmark_full.onnx").unlink()
    settings.PERSON_MODELS_DIR = models_copy
    make_camera(make_site("Main St"), "Aisle 3", stream_url="rtsp://127.0.0.1:9/none")  # DETECTOR: person
    with pytest.raises(CommandError, match=r"person detector: the model file .*pose_landmark_full\.onnx is missing"):
        call_command("run_detectors", "--duration", "1")


def test_it_is_the_default_detector_and_loads_from_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PERSON_POSE_MODEL = "lite"
    detector = create_configured_detector(settings.DETECTOR)
    assert detector.name == "person"
    assert set(detector.models) == {"nanodet.onnx", "pose_landmark_lite.onnx"}
    assert detector.input_size == settings.PERSON_INPUT_SIZE


@pytest.mark.django_db
def test_run_detectors_warns_about_a_camera_without_zones(caplog) -> None:  # type: ignore[no-untyped-def]
    import threading

    from detection.supervisor import Selection, Supervisor
    from tests.support.factories import make_zone

    site = make_site("Main St")
    make_camera(site, "Aisle 3", stream_url="rtsp://127.0.0.1:9/a")
    zoned = make_camera(site, "Door", stream_url="rtsp://127.0.0.1:9/b")
    make_zone(zoned, "Exit", kind="exit")
    caplog.set_level("WARNING", logger="detection.supervisor")
    Supervisor(Selection(), stop=threading.Event()).load_cameras()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["camera 'Main St / Aisle 3' has no zones: the person detector watches it but raises no alert "
                        "there; draw shelf, checkout and exit zones in the admin (Cameras > Main St / Aisle 3 > Zones)"]
