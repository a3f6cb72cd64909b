"""analyze_video: a recorded video through the person pipeline offline, as JSON lines and an
annotated copy, with and without a camera's zones."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import av
import pytest
from django.core.management import CommandError, call_command

from cameras.demo import scene
from tests.support.factories import make_camera, make_site, make_zone
from tests.support.video import write_demo_video

FPS = 5


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo shopper's whole visit, 21 s at 960x540: in, shelf, exit, out."""
    return write_demo_video(tmp_path_factory.mktemp("video") / "visit.mp4", seconds=21, fps=10, size=(960, 540))


def analyze(*args: str) -> tuple[list[dict], str]:
    out, err = StringIO(), StringIO()
    call_command("analyze_video", *args, "--json", "--fps", str(FPS), stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def demo_camera():  # type: ignore[no-untyped-def]
    camera = make_camera(make_site("Demo store"), "Demo camera")
    for name, kind, polygon in scene.ZONES:
        make_zone(camera, name, kind=kind, polygon=polygon)
    return camera


@pytest.mark.django_db
def test_it_prints_one_json_object_per_sampled_frame_in_the_documented_form(visit: Path) -> None:
    demo_camera()
    frames, summary = analyze(str(visit), "--camera", "Demo store / Demo camera")
    assert len(frames) == pytest.approx(21 * FPS, abs=1)
    for n, frame in enumerate(frames):
        assert set(frame) == {"t", "frame", "people", "events"}
        assert frame["t"] == pytest.approx(n / FPS, abs=0.11) and frame["frame"] == pytest.approx(n * 2, abs=1)
        for person in frame["people"]:
            assert set(person) == {"track", "box", "score", "keypoints"}
            x1, y1, x2, y2 = person["box"]
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 and 0 < person["score"] <= 1
            assert person["keypoints"] is None or (len(person["keypoints"]) == 17
                                                    and all(len(k) == 3 for k in person["keypoints"]))
        for event in frame["events"]:
            assert set(event) == {"type", "zone", "score", "phase"} and event["phase"] in ("started", "ended")

    # People counted per frame against the truth of the scene: one shopper while in the picture.
    in_picture = [f for f in frames if scene.person_box(f["t"]) is not None and 1.5 < f["t"] < 19.0]
    counted = sum(len(f["people"]) == 1 for f in in_picture)
    assert counted >= 0.9 * len(in_picture), f"{counted} of {len(in_picture)} frames counted one person"
    assert all(not f["people"] for f in frames if f["t"] > 20.5)  # gone
    assert len({p["track"] for f in frames for p in f["people"]}) == 1  # one id for the whole visit
    assert any(p["keypoints"] for f in frames for p in f["people"] if 6.0 < f["t"] < 10.0)  # pose at the shelf

    events = [(f["t"], e) for f in frames for e in f["events"]]
    started = [(t, e) for t, e in events if e["phase"] == "started"]
    assert [(e["type"], e["zone"]) for _, e in started] == [("exit_without_checkout", "Exit")]
    assert 15.0 <= started[0][0] <= 17.0
    assert [(e["type"], e["phase"]) for _, e in events if e["phase"] == "ended"] == [("exit_without_checkout", "ended")]
    assert "events: exit_without_checkout x1" in summary


@pytest.mark.django_db
def test_it_tracks_people_but_raises_nothing_without_a_camera(visit: Path) -> None:
    frames, summary = analyze(str(visit))
    assert any(f["people"] for f in frames)
    assert not any(f["events"] for f in frames)
    assert "no zones" in summary


@pytest.mark.django_db
def test_it_writes_an_annotated_copy_with_every_frame(visit: Path, tmp_path: Path) -> None:
    demo_camera()
    out = tmp_path / "annotated.mp4"
    call_command("analyze_video", str(visit), "--camera", "Demo camera", "--out", str(out), stdout=StringIO())
    with av.open(str(visit)) as source, av.open(str(out)) as annotated:
        original = list(source.decode(video=0))
        drawn = list(annotated.decode(video=0))
        assert len(drawn) == len(original) and (drawn[0].width, drawn[0].height) == (960, 540)
        # The zones are drawn on every frame: the first frames differ from the source there.
        difference = abs(drawn[0].to_ndarray(format="gray").astype(int) - original[0].to_ndarray(format="gray"))
        assert (difference > 40).sum() > 1000


@pytest.mark.django_db
def test_it_names_what_is_wrong_with_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("analyze_video", str(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(CommandError, match=r"junk\.mp4: cannot open the video"):
        call_command("analyze_video", str(junk), stdout=StringIO())
    with pytest.raises(CommandError, match="no camera named 'Nowhere'"):
        call_command("analyze_video", str(junk), "--camera", "Nowhere")
