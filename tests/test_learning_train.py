"""Training and the deploy gate: on simulated concealment-like against browsing-like tracks a model
beats the rule scores on alerts held out by time and is deployed; on labels that are pure noise,
or with too few examples, it is refused, in plain words."""
from __future__ import annotations

import hashlib
import json

import pytest
from django.core.management import call_command

from alerts.models import AuditAction, AuditEntry
from detection.learning.evaluation import Example, evaluate
from detection.learning.features import event_features
from detection.learning.simulate import simulate_alerts
from detection.models import LearnedModel
from tests.support.factories import make_camera, make_site, make_user
from tests.support.learning import models_dir, one_torch_thread, reviewed_alerts, simulated_zones  # noqa: F401


def examples(count: int, *, seed: int, noise_labels: bool = False) -> list[Example]:
    return [Example(key=i, at=a.event_start, confirmed=a.confirmed, rule_score=a.rule_score,
                    features=event_features(track=a.track, zones=a.zones, event_type=a.event_type,
                                            rule_score=a.rule_score, event_start=a.event_start))
            for i, a in enumerate(simulate_alerts(count, seed=seed, noise_labels=noise_labels))]


def test_on_concealment_against_browsing_the_model_beats_the_rules_on_held_out_alerts_and_the_gate_passes():
    evaluation = evaluate(examples(240, seed=1))
    report = evaluation.report
    model, rules = report["model"], report["rules"]
    assert evaluation.passed, evaluation.reasons
    assert report["held_out"] == 120 and len(report["folds"]) == 4
    # Each fold learned from every alert older than the ones it is judged on, and from no other.
    assert [fold["train"] for fold in report["folds"]] == [120, 150, 180, 210]
    assert [fold["test"] for fold in report["folds"]] == [30, 30, 30, 30]
    assert model["auc"] >= rules["auc"] + 0.2
    assert model["confirmed_lost"] == 0 and model["recall"] == 1.0
    assert model["false_alarms_suppressed"] > rules["best"]["false_alarms_suppressed"] + 10
    assert model["precision"] > rules["precision"]
    assert evaluation.threshold == model["threshold"] > 0


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_on_labels_that_are_pure_noise_the_gate_refuses(seed):
    evaluation = evaluate(examples(240, seed=seed, noise_labels=True))
    assert not evaluation.passed
    assert evaluation.threshold is None
    assert evaluation.reasons
    assert any("no better than the rule scores" in r or "not clearly better than chance" in r
               for r in evaluation.reasons), evaluation.reasons


@pytest.mark.django_db
def test_too_few_examples_are_refused_in_plain_words(models_dir, capsys):  # noqa: F811
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3")
    zones = simulated_zones(camera)
    reviewed_alerts(camera, simulate_alerts(20, seed=5), zones[1])
    call_command("train_detector", "--site", "Main St")
    out = capsys.readouterr().out
    [run] = LearnedModel.objects.filter(site=site)
    assert not run.deployed and not run.file_name and run.examples == 20
    assert ("Not deployed. Main St has 20 reviewed alerts with a stored person track "
            f"({run.confirmed} confirmed, {run.dismissed} dismissed); training needs at least 50") in out
    assert "Review more alerts" in run.refused_reason
    assert not models_dir.exists() or not any(models_dir.rglob("*.pt"))


@pytest.mark.django_db
def test_train_detector_saves_a_versioned_checked_model_deploys_it_and_a_refused_one_leaves_it_deployed(
        models_dir, capsys, settings):  # noqa: F811
    settings.TORCH_THREADS = 1  # the command's torch threads; one is quicker for this small model
    site = make_site("Main St")
    camera = make_camera(site, "Aisle 3")
    zones = simulated_zones(camera)
    alerts = reviewed_alerts(camera, simulate_alerts(240, seed=1), zones[1])
    make_user("lena")
    call_command("train_detector", "--site", "Main St", "--user", "lena")
    out = capsys.readouterr().out
    first = LearnedModel.objects.get(site=site)
    assert first.deployed and first.enabled and first.version == 1 and first.trained_by.username == "lena"
    assert "Deployed: from the detectors' next reload" in out and "Learned model at its threshold" in out
    path = models_dir / first.file_name
    assert first.file_name == f"site-{site.pk}/v1.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.sha256
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == first.sha256 and sidecar["metadata"]["feature_version"] == 1
    assert sidecar["report"]["gate"] == {"passed": True, "reasons": []} and sidecar["metadata"]["examples"] == 240
    assert first.report["model"]["auc"] > first.report["rules"]["auc"]
    [entry] = AuditEntry.objects.filter(action=AuditAction.MODEL_CHANGE)
    assert entry.site_id == site.pk and entry.username == "lena" and "Deployed learned model v1" in entry.summary

    # The same alerts with their reviews shuffled: nothing to learn, so v2 is refused and v1 stays.
    for alert, noisy in zip(alerts, simulate_alerts(240, seed=21, noise_labels=True)):
        alert.review_status = "confirmed" if noisy.confirmed else "dismissed"
        alert.save(update_fields=["review_status"])
    call_command("train_detector", "--site", "Main St")
    out = capsys.readouterr().out
    second = LearnedModel.objects.get(site=site, version=2)
    assert not second.deployed and second.refused_reason.startswith("The model does not beat the rules")
    assert "Not deployed. The model does not beat the rules on held-out alerts" in out
    assert (models_dir / second.file_name).exists()  # kept for the record
    assert LearnedModel.objects.get(pk=first.pk).deployed
    assert AuditEntry.objects.filter(action=AuditAction.MODEL_CHANGE).count() == 1


def test_an_unknown_site_is_an_error_naming_the_known_ones(db):
    make_site("Main St")
    with pytest.raises(Exception, match="No site named 'Nowhere' \\(known sites: Main St\\)"):
        call_command("train_detector", "--site", "Nowhere")
