"""The TorchScript backend with tiny models the tests build and save (they score a red region)."""
import json
import logging
import os

import pytest
import torch

from detection.detectors import DetectorConfigError, create_configured_detector, create_detector, detect_batch
from detection.detectors.torchscript import TorchScriptDetector
from detection.inference.events import CameraRules, EventPhase, RuleConfig
from tests.support.video import (
    T0,
    Box,
    build_red_model,
    red_fraction_module,
    red_metadata,
    run_detection,
    sample_video,
    save_model,
    write_video,
)

FPS = 5.0
SIZE = (64, 48)
# TorchScript is deprecated in favour of torch.export in torch 2.13, but it is what loads a
# self-contained model file without its Python source.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
CONFIG = RuleConfig(default_threshold=0.5, smoothing_k=3, smoothing_n=5, quiet_seconds=2.0)
RED_BOX = Box(3.0, 6.0, 0.3, 0.4, 0.25, 0.35, dx=0.02)  # about 9 % of the picture: a score of 1
WHITE = (255, 255, 255)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {
        "red": write_video(folder / "red.mp4", seconds=8, boxes=[RED_BOX]),
        "empty": write_video(folder / "empty.mp4", seconds=8),
        # A white flash (the faulty models' trigger) from 2.0 to 2.6 s, then a red box from 4.0 s.
        "white": write_video(folder / "white.mp4", seconds=8, boxes=[Box(2.0, 2.6, 0, 0, 1, 1, color=WHITE),
                                                                       Box(4.0, 7.0, 0.3, 0.4, 0.25, 0.35)]),
    }


def frames(videos, name, camera_id):
    return sample_video(videos[name], camera_id=camera_id, fps=FPS, size=SIZE)


def rules(*camera_ids):
    return {i: CameraRules(camera_id=i, name=f"Camera {i}") for i in camera_ids}


class BatchSpy(torch.nn.Module):
    """Wraps the loaded model to record the batch shapes it is given (the model itself still runs)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.model(x)


def test_it_raises_an_event_at_the_right_time_batching_cameras(tmp_path, videos):
    detector = create_detector("torchscript", model_path=build_red_model(tmp_path / "red.pt", size=SIZE))
    assert detector.event_types == ("red_object",) and detector.input_size == SIZE
    spy = detector.model = BatchSpy(detector.model)
    events = run_detection(detector, rules(1, 2), CONFIG, frames(videos, "red", 1), frames(videos, "empty", 2))
    [event] = [e for e in events if e.phase is EventPhase.STARTED]
    assert event.camera_id == 1 and event.event_type == "red_object" and event.zone_id is None
    assert abs(event.start - (T0 + 3.0)) <= 1 / FPS + 1e-6
    assert event.score == pytest.approx(1.0)
    assert set(spy.shapes) == {(2, 3, 48, 64)}  # both cameras in one forward pass, every sample


@pytest.mark.parametrize("mean, std", [((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_it_normalizes_frames_as_the_metadata_says(tmp_path, videos, mean, std):
    # The model undoes exactly this normalization: any other would misread the colours.
    path = build_red_model(tmp_path / "norm.pt", size=SIZE, mean=mean, std=std)
    detector = create_detector("torchscript", model_path=path)
    scores = [d.score for f in frames(videos, "red", 1) for d in detect_batch(detector, [f], rules(1))]
    assert max(scores) == pytest.approx(1.0) and min(scores) == pytest.approx(0.0)


def test_it_honours_the_channel_order(tmp_path, videos):
    # Fed BGR, the model looks for red in the blue channel and finds nothing.
    detector = create_detector("torchscript", model_path=build_red_model(tmp_path / "bgr.pt", size=SIZE,
                                                                         channel_order="bgr"))
    assert all(d.score == 0 for f in frames(videos, "red", 1) for d in detect_batch(detector, [f], rules(1)))


@pytest.mark.parametrize("layout", ["NCTHW", "NTCHW"])
def test_it_feeds_clip_classifiers_the_last_t_samples(tmp_path, videos, layout):
    module = red_fraction_module(frames=5)
    if layout == "NTCHW":
        # Same model, reading (N, T, C, H, W): swap back to what RedFraction expects.
        class Ntchw(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def forward(self, x):
                return self.inner(x.permute(0, 2, 1, 3, 4))

        module = Ntchw()
    path = save_model(module, tmp_path / "clip.pt", red_metadata(size=SIZE, frames=5, layout=layout))
    detector = create_detector("torchscript", model_path=path)
    assert detector.frames_needed == 5
    spy = detector.model = BatchSpy(detector.model)
    first_high = None
    for frame in frames(videos, "red", 1):
        detections = detect_batch(detector, [frame], rules(1))
        if first_high is None and any(d.score >= 0.5 for d in detections):
            first_high = frame.captured_at - T0
    # Red from 3.0 s; the clip is red in all 5 frames from the sample at 3.8 s.
    assert first_high == pytest.approx(3.8, abs=1e-3)
    expected = (1, 3, 5, 48, 64) if layout == "NCTHW" else (1, 5, 3, 48, 64)
    assert set(spy.shapes) == {expected}
    assert len(spy.shapes) == 40 - 4  # nothing until the first 5 samples are there


def test_it_sets_torch_threads_and_model_from_settings(settings, tmp_path):
    settings.TORCHSCRIPT_MODEL_PATH = build_red_model(tmp_path / "red.pt", size=SIZE)
    settings.TORCH_THREADS = 1
    detector = create_configured_detector("torchscript")
    assert isinstance(detector, TorchScriptDetector) and torch.get_num_threads() == 1


@pytest.mark.parametrize("fault", ["raise", "nan", "shape"])
def test_it_logs_and_skips_a_camera_whose_output_is_bad_and_goes_on(tmp_path, videos, caplog, fault):
    path = build_red_model(tmp_path / f"{fault}.pt", size=SIZE, fault=fault)
    detector = create_detector("torchscript", model_path=path)
    caplog.set_level(logging.WARNING, logger="detection")
    events = run_detection(detector, rules(1, 2), CONFIG, frames(videos, "red", 1), frames(videos, "white", 2))
    # Camera 2's white samples (2.0, 2.2, 2.4 s) were skipped and logged by camera...
    skipped = [r.getMessage() for r in caplog.records if "camera=2" in r.getMessage()]
    assert len(skipped) == 3, [r.getMessage() for r in caplog.records]
    print(skipped[0])
    assert not [r for r in caplog.records if "camera=1" in r.getMessage()]
    # ...and both cameras' events still came through, camera 2's after the bad samples.
    starts = {e.camera_id: e.start - T0 for e in events if e.phase is EventPhase.STARTED}
    assert starts == {1: pytest.approx(3.0, abs=0.21), 2: pytest.approx(4.0, abs=0.21)}


# --- Start-up errors: the message names the file and the problem ---------------------------------

def _write(path, data):
    path.write_bytes(data)
    return path


class FixedInput(torch.nn.Module):
    """Accepts only 32 x 32 pictures (a linear layer over the flattened pixels)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 2)

    def forward(self, x):
        return torch.sigmoid(self.fc(x.flatten(1)))


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("models")
    good = build_red_model(tmp_path / "good.pt", size=SIZE)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "pickled.pt")
    sidecar = save_model(red_fraction_module(), tmp_path / "sidecar.pt", None)
    (tmp_path / "sidecar.pt.json").write_text("{not json")
    return {
        "missing": (tmp_path / "nope.pt", "the file does not exist"),
        "folder": (tmp_path, "not a file"),
        "random bytes": (_write(tmp_path / "random.pt", os.urandom(4096)), "cannot be loaded as TorchScript"),
        "truncated": (_write(tmp_path / "cut.pt", good.read_bytes()[:2000]), "cannot be loaded as TorchScript"),
        "torch.save pickle": (tmp_path / "pickled.pt", "not saved with torch.jit.save"),
        "no metadata": (save_model(red_fraction_module(), tmp_path / "bare.pt", None), "no metadata"),
        "sidecar not JSON": (sidecar, "is not valid JSON"),
        "bad class name": (save_model(red_fraction_module(), tmp_path / "names.pt",
                                      red_metadata(size=SIZE, class_names=["normal", "Red Object"])),
                           "class name 'Red Object' is not an event type"),
        "bad input size": (save_model(red_fraction_module(), tmp_path / "size.pt", red_metadata(size=[0, 48])),
                           "input_size is [0, 48]"),
        "input size mismatch": (save_model(FixedInput(), tmp_path / "fixed.pt", red_metadata(size=SIZE)),
                                "does not match its metadata: it fails on an input of shape (2, 3, 48, 64)"),
        "class count mismatch": (save_model(red_fraction_module(), tmp_path / "classes.pt",
                                            red_metadata(size=SIZE, class_names=["normal", "red_object", "blue"])),
                                 "returns (2, 2), expected (2, 3)"),
    }


CASES = ["missing", "folder", "random bytes", "truncated", "torch.save pickle", "no metadata", "sidecar not JSON",
         "bad class name", "bad input size", "input size mismatch", "class count mismatch"]


@pytest.mark.parametrize("case", CASES)
def test_it_refuses_to_start_with_a_bad_model_file(settings, bad_models, case):
    path, problem = bad_models[case]
    settings.TORCHSCRIPT_MODEL_PATH = path
    with pytest.raises(DetectorConfigError) as error:
        create_configured_detector("torchscript")
    message = str(error.value)
    assert str(path) in message and problem in message, message


def test_it_reads_metadata_from_a_sidecar_file(tmp_path, videos):
    path = save_model(red_fraction_module(), tmp_path / "plain.pt", None)
    (tmp_path / "plain.pt.json").write_text(json.dumps(red_metadata(size=SIZE)))
    detector = create_detector("torchscript", model_path=path)
    assert detector.event_types == ("red_object",)


def test_it_refuses_to_start_without_a_model_path(settings):
    settings.TORCHSCRIPT_MODEL_PATH = None
    with pytest.raises(DetectorConfigError, match="set TORCHSCRIPT_MODEL_PATH"):
        create_configured_detector("torchscript")
