"""Dedup: one alert per (camera, zone, event type) per window, atomic across real OS processes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from alerts.emitter import alert_raise
from alerts.models import Alert, DedupKey
from tests.support.factories import make_camera, make_site, make_zone
from tests.support.processes import subprocess_env
from tests.support.video import T0
from tests.test_emitter import event_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_it_counts_repeats_inside_the_window_on_the_first_alert_and_raises_again_after_it(clip_settings, settings):
    settings.DEDUP_WINDOW_SECONDS = 300
    camera = make_camera(make_site())
    zone = make_zone(camera, "Shelf")
    first = alert_raise(event_for(camera, zone, start=T0))
    before = timezone.now()
    repeats = [alert_raise(event_for(camera, zone, start=T0 + s)) for s in (30, 299.9)]
    assert first.created and [(r.created, r.alert_id) for r in repeats] == [(False, first.alert_id)] * 2
    alert = Alert.objects.get()
    assert alert.suppressed_count == 2 and alert.last_suppressed_at >= before

    # Other zones, event types and cameras are other keys.
    other_zone = make_zone(camera, "Door")
    assert alert_raise(event_for(camera, other_zone, start=T0 + 60)).created
    assert alert_raise(event_for(camera, zone, start=T0 + 60, event_type="loitering")).created
    assert alert_raise(event_for(camera, None, start=T0 + 60)).created  # the whole frame

    # Five minutes after the first alert, the same key raises a new one; repeats now count on it.
    second = alert_raise(event_for(camera, zone, start=T0 + 300))
    assert second.created and second.alert_id != first.alert_id
    assert alert_raise(event_for(camera, zone, start=T0 + 310)).alert_id == second.alert_id
    assert Alert.objects.get(pk=second.alert_id).suppressed_count == 1
    assert Alert.objects.get(pk=first.alert_id).suppressed_count == 2


@pytest.mark.django_db
def test_it_logs_a_suppressed_repeat(clip_settings, caplog):
    camera = make_camera(make_site(), "Aisle 9")
    alert_raise(event_for(camera, image=False))
    caplog.set_level("INFO", logger="alerts.emitter")
    alert_raise(event_for(camera, start=T0 + 1, image=False))
    [line] = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    assert "camera_name=" in line and "Aisle 9" in line and "event_type=zone_activity" in line


@pytest.mark.django_db
def test_it_follows_the_dedup_window_setting(clip_settings, settings):
    settings.DEDUP_WINDOW_SECONDS = 10
    camera = make_camera(make_site())
    assert alert_raise(event_for(camera, image=False)).created
    assert not alert_raise(event_for(camera, start=T0 + 9, image=False)).created
    assert alert_raise(event_for(camera, start=T0 + 10, image=False)).created


# --- Real processes ---------------------------------------------------------------------------

CHILD = r"""
import json, sys
import django
django.setup()
from alerts.emitter import alert_raise
from detection.inference.events import Event, EventPhase

camera_id, zone_id, start, keys = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
events = [
    Event(phase=EventPhase.STARTED, camera_id=camera_id, camera_name="race", zone_id=zone_id, zone_name="Shelf",
          event_type=f"race_{i}", score=0.9, threshold=0.5, start=start, last_high=start, end=None,
          clip_start=start - 2, clip_end=start + 4, clip_final=False, trigger_at=start)
    for i in range(keys)
]
print("ready", flush=True)
sys.stdin.readline()  # the parent releases both processes at once
results = [alert_raise(event) for event in events]
print(json.dumps([[r.alert_id, r.created] for r in results]), flush=True)
"""


def start_child(tmp_path, camera, zone, start, keys):
    env = subprocess_env(CLIP_STORAGE_DIR=str(tmp_path / "clips"), LOG_DIR=str(tmp_path / "log"), DEBUG="false")
    return subprocess.Popen([sys.executable, "-c", CHILD, str(camera.pk), str(zone.pk), str(start), str(keys)],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(child):
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_two_racing_processes_raise_each_alert(tmp_path):
    camera = make_camera(make_site())
    zone = make_zone(camera, "Shelf")
    keys = 25
    children = [start_child(tmp_path, camera, zone, T0, keys) for _ in range(2)]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    first, second = (finish(child) for child in children)

    for i in range(keys):
        (id_a, created_a), (id_b, created_b) = first[i], second[i]
        assert created_a != created_b, f"key race_{i}: both or neither raised an alert"
        assert id_a == id_b  # the loser counted its repeat on the winner's alert
    assert Alert.objects.count() == keys
    assert sorted(Alert.objects.values_list("suppressed_count", flat=True)) == [1] * keys
    assert DedupKey.objects.filter(camera=camera).count() == keys


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_remembers_the_window_across_a_restart(tmp_path):
    camera = make_camera(make_site())
    zone = make_zone(camera, "Shelf")
    # One process raises and exits; a new process (a restarted detector) sees the same key as a repeat.
    runs = []
    for start in (T0, T0 + 60):
        child = start_child(tmp_path, camera, zone, start, 1)
        child.stdout.readline()
        child.stdin.write("go\n")
        child.stdin.flush()
        runs.append(finish(child)[0])
    assert runs[0][1] is True and runs[1] == [runs[0][0], False]
    assert Alert.objects.get().suppressed_count == 1
