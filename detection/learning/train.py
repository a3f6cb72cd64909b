"""Training a site's model from its reviewed alerts: what `manage.py train_detector` runs.

`train_site` takes every reviewed alert (confirmed or dismissed) of the site that has a stored
person track, computes its features (detection.learning.features, with the camera's zones as they
are now), cross-validates by time and applies the deploy gate (detection.learning.evaluation),
trains the final model on all of them, and saves it: LEARNED_MODELS_DIR/site-<id>/v<n>.pt with
v<n>.json beside it (provenance: the file's SHA-256, what it was trained on, the features it
reads, the torch version, and the whole report). Every run is recorded as a LearnedModel row,
refused ones too, so the Model page shows the history.

A model that passes the gate replaces the site's deployed one (in one transaction, audited);
the detectors pick it up at their next reload (DETECTOR_RELOAD_SECONDS). A site whose model a
manager switched off stays off with the new model: switching on is the manager's decision.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from alerts.audit import audit_record
from alerts.models import Alert, AuditAction, ReviewStatus
from cameras.models import Site, Zone
from detection.inference.events import ZoneRule
from detection.learning.evaluation import DEFAULT_FOLDS, Evaluation, Example, evaluate, too_few
from detection.learning.features import TrackFormatError, describe, event_features
from detection.learning.model import TrainConfig, model_bytes
from detection.models import LearnedModel
from detection.selectors import zone_rule_from

logger = logging.getLogger(__name__)

DEFAULT_MIN_EXAMPLES = 50
FILE_MODE, DIR_MODE = 0o640, 0o750  # as clips and logs


@dataclass(frozen=True)
class TrainingOutcome:
    model: LearnedModel
    deployed: bool
    text: str  # the report in plain words, as the command prints it


def learned_models_dir() -> Path:
    return Path(settings.LEARNED_MODELS_DIR)


def site_examples(site: Site) -> tuple[list[Example], int]:
    """The site's reviewed alerts with a person track as examples, oldest first, and how many
    tracks could not be read (logged)."""
    zones: dict[int, list[ZoneRule]] = {}
    for zone in Zone.objects.filter(camera__site=site):
        zones.setdefault(zone.camera_id, []).append(zone_rule_from(zone))
    alerts = (Alert.objects.filter(camera__site=site, track__isnull=False,
                                   review_status__in=[ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED])
              .order_by("event_start", "pk")
              .only("pk", "camera_id", "event_type", "score", "rule_score", "event_start", "track", "review_status"))
    examples, skipped = [], 0
    for alert in alerts.iterator(chunk_size=500):
        rule_score = alert.rule_score if alert.rule_score is not None else alert.score
        start = alert.event_start.timestamp()
        try:
            features = event_features(track=alert.track, zones=zones.get(alert.camera_id, ()),
                                      event_type=alert.event_type, rule_score=rule_score, event_start=start)
        except TrackFormatError as exc:
            skipped += 1
            logger.warning("training example skipped alert=%s site=%s: %s", alert.pk, site.name, exc)
            continue
        examples.append(Example(key=alert.pk, at=start, confirmed=alert.review_status == ReviewStatus.CONFIRMED,
                                rule_score=float(rule_score), features=features))
    return examples, skipped


def train_site(*, site: Site, min_examples: int = DEFAULT_MIN_EXAMPLES, folds: int = DEFAULT_FOLDS,
               config: TrainConfig | None = None, user: User | None = None) -> TrainingOutcome:
    """One training run for one site; see the module docstring."""
    config = config or TrainConfig()
    started = time.perf_counter()
    examples, skipped = site_examples(site)
    confirmed = sum(e.confirmed for e in examples)
    counts = {"examples": len(examples), "confirmed": confirmed, "dismissed": len(examples) - confirmed}
    refusal = too_few(examples=len(examples), confirmed=confirmed, min_examples=min_examples, where=site.name)
    if refusal is not None:
        refused = {**counts, "skipped": skipped, "min_examples": min_examples,
                   "gate": {"passed": False, "reasons": [refusal]}}
        with transaction.atomic():
            Site.objects.select_for_update().get(pk=site.pk)
            row = LearnedModel.objects.create(site=site, version=_next_version(site), trained_by=user, report=refused,
                                              refused_reason=refusal, **counts)
        logger.info("learned model not trained site=%s version=%s: %s", site.name, row.version, refusal)
        return TrainingOutcome(model=row, deployed=False, text=report_text(row))

    evaluation = evaluate(examples, folds=folds, config=config)
    net = evaluation.net
    assert net is not None  # too_few() made sure both kinds are there
    report: dict[str, Any] = {**evaluation.report, "skipped": skipped, "min_examples": min_examples,
                              "training_seconds": round(time.perf_counter() - started, 2)}
    with transaction.atomic():
        locked = Site.objects.select_for_update().get(pk=site.pk)  # one run at a time deploys per site
        version = _next_version(locked)
        created_at = timezone.now()
        metadata = {**describe(), "site_id": site.pk, "site": site.name, "version": version,
                    "created_at": created_at.isoformat(), "torch": _torch_version(), "threshold": evaluation.threshold,
                    **counts}
        data = model_bytes(net, metadata=metadata, config=config)
        sha256 = hashlib.sha256(data).hexdigest()
        file_name = f"site-{site.pk}/v{version}.pt"
        report["file"] = file_name
        _write_model(file_name, data, {"file": Path(file_name).name, "sha256": sha256, "metadata": metadata,
                                       "report": report})
        row = LearnedModel.objects.create(
            site=site, version=version, created_at=created_at, trained_by=user, file_name=file_name, sha256=sha256,
            threshold=evaluation.threshold, report=report, refused_reason=_refusal_text(evaluation), **counts)
        if evaluation.passed:
            _deploy(row, user=user)
    logger.info("learned model trained site=%s version=%s deployed=%s examples=%s held_out=%s model_auc=%s "
                "rules_auc=%s threshold=%s file=%s", site.name, version, row.deployed, len(examples),
                report.get("held_out"), report.get("model", {}).get("auc"), report.get("rules", {}).get("auc"),
                row.threshold, file_name)
    return TrainingOutcome(model=row, deployed=row.deployed, text=report_text(row))


def _deploy(row: LearnedModel, *, user: User | None) -> None:
    previous = LearnedModel.objects.filter(site_id=row.site_id, deployed=True).exclude(pk=row.pk).first()
    row.enabled = previous.enabled if previous is not None else True
    LearnedModel.objects.filter(site_id=row.site_id, deployed=True).update(deployed=False)
    row.deployed = True
    row.save(update_fields=["deployed", "enabled"])
    model_report = row.report.get("model", {})
    audit_record(
        action=AuditAction.MODEL_CHANGE, user=user, site_id=row.site_id, object_type="learned_model", object_id=row.pk,
        summary=f"Deployed learned model v{row.version} at {row.site.name}"
                + ("" if row.enabled else " (switched off, as its predecessor was)"),
        detail={"version": row.version, "sha256": row.sha256, "threshold": row.threshold, "examples": row.examples,
                "model_auc": model_report.get("auc"), "rules_auc": row.report.get("rules", {}).get("auc"),
                "replaces": previous.version if previous is not None else None, "enabled": row.enabled},
    )


def _next_version(site: Site) -> int:
    latest = LearnedModel.objects.filter(site=site).aggregate(latest=Max("version"))["latest"]
    return int(latest or 0) + 1


def _refusal_text(evaluation: Evaluation) -> str:
    if evaluation.passed:
        return ""
    return "The model does not beat the rules on held-out alerts: " + " ".join(
        reason[0].upper() + reason[1:] for reason in evaluation.reasons)


def _write_model(file_name: str, data: bytes, sidecar: dict[str, Any]) -> None:
    """The model and its .json, each written whole (a temporary file renamed into place)."""
    path = learned_models_dir() / file_name
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for target, content in ((path, data), (path.with_suffix(".json"),
                                           json.dumps(sidecar, indent=2, default=str).encode())):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def _date(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


def _figure(point: dict[str, Any]) -> str:
    precision = point.get("precision")
    recall = point.get("recall")
    return (f"precision {precision:.2f}" if precision is not None else "precision -") + (
        f", recall {recall:.2f}" if recall is not None else ", recall -")


def report_text(row: LearnedModel) -> str:
    """A run's report in plain words: the command prints it, the Model page shows it."""
    r = row.report
    lines = [f"{row.site.name}, model v{row.version}: {r.get('examples', 0)} reviewed alerts with a person track "
             f"({r.get('confirmed', 0)} confirmed, {r.get('dismissed', 0)} dismissed)"
             + (f" from {_date(r.get('first_event'))} to {_date(r.get('last_event'))}" if r.get("first_event") else "")
             + (f"; {r['skipped']} unreadable tracks skipped" if r.get("skipped") else "") + "."]
    model, rules = r.get("model"), r.get("rules")
    if model and rules:
        best = rules["best"]
        lines += [
            f"Held out by time: {r['held_out']} alerts in {len(r['folds'])} folds, each scored by a model trained only "
            "on older alerts.",
            f"  Rule scores alone, as now (every alert raised): {_figure(rules)}.",
            f"  Rule threshold raised to {rules['best_threshold']:.2f} (the lowest confirmed score): {_figure(best)}; "
            f"{best['false_alarms_suppressed']} of {best['false_alarms']} false alarms removed.",
            f"  Learned model at its threshold {model['threshold']:.3f}: {_figure(model)}; "
            f"{model['false_alarms_suppressed']} of {model['false_alarms']} past false alarms suppressed, "
            f"{model['confirmed_lost']} confirmed thefts lost.",
            f"  Ranking of confirmed above dismissed (AUC, 0.5 is chance): model {model['auc']:.2f}, rule scores "
            f"{rules['auc']:.2f}.",
        ]
    if row.deployed:
        lines.append(f"Deployed: from the detectors' next reload, events at {row.site.name} this model scores below "
                     f"{row.threshold:.3f} are suppressed (counted and listed on the Model page)."
                     + ("" if row.enabled else " It is switched off, as the model it replaces was: a manager switches "
                                               "it on in the admin."))
    elif row.refused_reason:
        lines.append(f"Not deployed. {row.refused_reason}")
    else:
        lines.append("Deployed until a newer model replaced it.")
    if row.file_name:
        lines.append(f"Model file: {learned_models_dir() / row.file_name} (SHA-256 {row.sha256}).")
    return "\n".join(lines)
