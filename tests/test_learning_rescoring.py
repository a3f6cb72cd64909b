"""Re-scoring by a site's deployed model: it changes an event's outcome in the running pipeline
(the demo shopper streamed over RTSP through the person detector), the alert records both scores
and the model's version, a suppressed event is counted, kept and logged, a switched-off model
re-scores nothing, and an altered model file is refused by its hash."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import pytest
from django.test import Client

from alerts.models import Alert, AuditAction, AuditEntry
from cameras.demo import scene
from cameras.models import Role
from detection.inference.events import Event, EventPhase
from detection.learning.rescoring import Rescorer
from detection.learning.simulate import simulate_alerts
from detection.models import LearnedModel, SuppressedEvent
from detection.recording.recorder import Recording
from detection.recording.spooler import Spooler
from detection.selectors import camera_rules_list
from detection.supervisor import Selection, Supervisor
from detection.tracking.tracks import TrackEvidence, TrackPoint
from tests.support.clips import clip_settings  # noqa: F401
from tests.support.factories import PASSWORD, make_camera, make_site, make_user, make_zone
from tests.support.learning import deploy_constant_model, models_dir, one_torch_thread, simulated_zones  # noqa: F401
from tests.support.rtsp import file_mount, wait_until


def person_event(camera, zone, *, score: float = 0.7, start: float | None = None) -> Event:
    """A started concealment event at the zone, with the person's track (a simulated one, moved to now)."""
    start = time.time() if start is None else start
    sim = simulate_alerts(1, seed=9, first_start=start)[0]
    points = tuple(TrackPoint(p["t"], tuple(p["box"]), p["score"],
                              None if p["keypoints"] is None else tuple(tuple(k) for k in p["keypoints"]))
                   for p in sim.track["points"])
    return Event(phase=EventPhase.STARTED, camera_id=camera.pk, camera_name=camera.name, zone_id=zone.pk,
                 zone_name=zone.name, event_type="concealment", score=score, threshold=0.5, start=sim.event_start,
                 last_high=sim.event_start, end=None, clip_start=sim.event_start - 2, clip_end=sim.event_start + 4,
                 clip_final=True, trigger_at=sim.event_start, track=TrackEvidence(1, points))


def rescorer_for(*cameras) -> Rescorer:
    rescorer = Rescorer()
    rescorer.reload(camera_rules_list(camera_ids=[c.pk for c in cameras]))
    return rescorer


@pytest.fixture
def shop(db):
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3")
    return site, camera, simulated_zones(camera)[1]


def test_a_deployed_model_re_scores_a_person_event_and_a_switched_off_one_does_not(shop, models_dir):  # noqa: F811
    site, camera, shelf = shop
    model = deploy_constant_model(site, models_dir, probability=0.9, threshold=0.4)
    rescore = rescorer_for(camera).rescore(person_event(camera, shelf, score=0.66))
    assert rescore is not None and not rescore.suppressed
    assert rescore.learned_score == pytest.approx(0.9) and rescore.rule_score == 0.66
    assert rescore.version == model.label == f"v1-{model.sha256[:12]}" and rescore.threshold == 0.4
    no_person = person_event(camera, shelf)
    assert rescorer_for(camera).rescore(replace(no_person, track=None)) is None

    LearnedModel.objects.filter(pk=model.pk).update(enabled=False)
    assert rescorer_for(camera).rescore(person_event(camera, shelf)) is None
    other = make_camera(make_site("High St"), "Till")  # another site's events are not this model's
    assert rescorer_for(other).rescore(person_event(other, simulated_zones(other)[1])) is None


def test_an_altered_model_file_is_refused_naming_the_file_and_the_site_keeps_its_rule_scores(
        shop, models_dir, caplog):  # noqa: F811
    site, camera, shelf = shop
    model = deploy_constant_model(site, models_dir, probability=0.9, threshold=0.4)
    path = models_dir / model.file_name
    path.write_bytes(path.read_bytes() + b"tampered")
    rescorer = Rescorer()
    with caplog.at_level(logging.ERROR, logger="detection.learning.rescoring"):
        for _ in range(3):  # every reload tries again, but says it once
            rescorer.reload(camera_rules_list(camera_ids=[camera.pk]))
    [record] = [r for r in caplog.records if r.name == "detection.learning.rescoring"]
    assert str(path) in record.getMessage() and "altered or damaged" in record.getMessage()
    assert "raised on their rule scores alone" in record.getMessage()
    assert rescorer.rescore(person_event(camera, shelf)) is None
    path.unlink()
    rescorer.reload(camera_rules_list(camera_ids=[camera.pk]))
    assert "is missing" in caplog.records[-1].getMessage()


@pytest.mark.django_db(transaction=True)  # the spooler thread has its own connection
def test_the_spooler_raises_on_the_learned_score_or_suppresses_counts_and_logs(
        models_dir, clip_settings, caplog):  # noqa: F811
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3")
    shelf = simulated_zones(camera)[1]
    stop = threading.Event()
    rescorer = Rescorer()
    spooler = Spooler(stop=stop, flush_seconds=1.0, rescorer=rescorer).start()
    try:
        low = deploy_constant_model(site, models_dir, probability=0.2, threshold=0.5)
        rescorer.reload(camera_rules_list())
        suppressed = Recording(event=person_event(camera, shelf, score=0.71), ring=None)
        with caplog.at_level(logging.INFO, logger="detection.learning.rescoring"):
            spooler.raise_alert(suppressed)
            wait_until(lambda: SuppressedEvent.objects.exists(), 10, message="suppression recorded")
        high = deploy_constant_model(site, models_dir, probability=0.8, threshold=0.5)
        rescorer.reload(camera_rules_list())
        raised = Recording(event=person_event(camera, shelf, score=0.64, start=time.time() + 60), ring=None)
        spooler.raise_alert(raised)
        wait_until(lambda: Alert.objects.exists(), 10, message="alert raised")
        spooler.close_event(raised, replace(raised.event, phase=EventPhase.ENDED, score=0.97,
                                            end=raised.event.start + 3))
        wait_until(lambda: Alert.objects.get().event_end is not None, 10, message="event closed")
    finally:
        stop.set()
        assert spooler.join(10)
    assert suppressed.cancelled and suppressed.alert_id is None and spooler.model_suppressed == 1
    event = SuppressedEvent.objects.get()
    assert (event.model_id, event.camera_id, event.zone_name, event.event_type) == (low.pk, camera.pk, shelf.name,
                                                                                    "concealment")
    assert event.rule_score == pytest.approx(0.71) and event.learned_score == pytest.approx(0.2)
    assert event.threshold == 0.5 and event.track["points"]
    low.refresh_from_db()
    assert low.suppressed_count == 1 and low.last_suppressed_at is not None
    assert any("event suppressed by the learned model" in r.getMessage() and "learned_score=0.200" in r.getMessage()
               for r in caplog.records)
    alert = Alert.objects.get()
    assert alert.pk == raised.alert_id
    assert alert.learned_score == pytest.approx(0.8) and alert.score == pytest.approx(0.8)
    assert alert.rule_score == pytest.approx(0.64)  # the rule score it was raised on, not the event's later peak
    assert alert.learned_model_version == high.label


@pytest.mark.rtsp
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_deployed_model_changes_the_outcome_in_the_running_pipeline_and_the_alert_records_both_scores(
        demo_visit, rtsp_servers, clip_settings, models_dir, settings, caplog):  # noqa: F811
    settings.EVENT_QUIET_SECONDS = 2
    settings.LIVE_FRAME_SECONDS = 0
    server = rtsp_servers([file_mount("/store", demo_visit)])
    cameras = {}
    for name in ("Suppressing", "Raising", "Switched off"):  # one store each, the same shopper on each camera
        cameras[name] = make_camera(make_site(name), "Floor", stream_url=server.url("/store"))
        for zone_name, kind, polygon in scene.ZONES:
            make_zone(cameras[name], zone_name, kind=kind, polygon=polygon)
    off = deploy_constant_model(cameras["Switched off"].site, models_dir, probability=0.01, threshold=0.5,
                                enabled=False)
    stop = threading.Event()
    supervisor = Supervisor(Selection(), stop=stop, sweep=False, reload_seconds=1)
    thread = threading.Thread(target=supervisor.run, kwargs={"duration": 24}, daemon=True)
    with caplog.at_level(logging.INFO):
        thread.start()
        try:
            wait_until(lambda: len(supervisor.streams) == 3, 20, message="cameras started")
            # Deployed while the detectors run: they take the models at their next reload, before the exit at 15 s.
            low = deploy_constant_model(cameras["Suppressing"].site, models_dir, probability=0.05, threshold=0.5)
            high = deploy_constant_model(cameras["Raising"].site, models_dir, probability=0.95, threshold=0.5)
            wait_until(lambda: len(supervisor.rescorer.models) == 2, 10, message="models picked up at reload")
            thread.join(60)
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()
    log = "\n".join(r.getMessage() for r in caplog.records)

    assert not Alert.objects.filter(camera=cameras["Suppressing"]).exists(), log
    suppressed = SuppressedEvent.objects.filter(camera=cameras["Suppressing"])
    assert [(e.event_type, e.zone_name, e.model_id) for e in suppressed] == [("exit_without_checkout", "Exit", low.pk)]
    assert suppressed[0].learned_score == pytest.approx(0.05) and suppressed[0].rule_score >= 0.6
    assert LearnedModel.objects.get(pk=low.pk).suppressed_count == 1 and supervisor.spooler.model_suppressed == 1
    assert "event suppressed by the learned model" in log

    [raised] = Alert.objects.filter(camera=cameras["Raising"])
    assert raised.event_type == "exit_without_checkout"
    assert raised.learned_score == pytest.approx(0.95) and raised.score == pytest.approx(0.95)
    assert raised.rule_score >= 0.6 and raised.learned_model_version == high.label

    [plain] = Alert.objects.filter(camera=cameras["Switched off"])  # its model is off: rule scores alone
    assert plain.learned_score is None and plain.learned_model_version == ""
    assert plain.score >= plain.rule_score >= 0.6
    assert LearnedModel.objects.get(pk=off.pk).suppressed_count == 0


def test_a_manager_switches_the_model_off_in_the_admin_and_it_is_audited(shop, models_dir, fast_passwords):  # noqa: F811
    site, camera, shelf = shop
    model = deploy_constant_model(site, models_dir, probability=0.9, threshold=0.4)
    other = deploy_constant_model(make_site("High St"), models_dir, probability=0.9, threshold=0.4)
    make_user("mia", site=site, role=Role.MANAGER)
    client = Client()
    assert client.login(username="mia", password=PASSWORD)
    listing = client.get("/admin/detection/learnedmodel/").content.decode()
    assert "Main St model v1" in listing and "High St" not in listing and "deployed, on" in listing
    assert "Threshold suggestions" in listing
    assert client.get("/admin/detection/suppressedevent/").status_code == 200
    page = client.get(f"/admin/detection/learnedmodel/{model.pk}/change/")
    assert page.status_code == 200 and b"Main St, model v1" in page.content
    assert client.get(f"/admin/detection/learnedmodel/{other.pk}/change/").status_code in (302, 403, 404)
    response = client.post("/admin/detection/learnedmodel/", {"action": "switch_off",
                                                              "_selected_action": [model.pk, other.pk]})
    assert response.status_code == 302
    assert not LearnedModel.objects.get(pk=model.pk).enabled
    assert LearnedModel.objects.get(pk=other.pk).enabled  # not a site she manages
    [entry] = AuditEntry.objects.filter(action=AuditAction.MODEL_CHANGE)
    assert entry.username == "mia" and entry.site_id == site.pk and entry.summary.startswith("Switched off")
    assert rescorer_for(camera).rescore(person_event(camera, shelf)) is None
