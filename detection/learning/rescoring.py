"""The detector process's side of the learned models: each site's deployed model re-scores its
events just before they become alerts.

The supervisor owns one `Rescorer`: it calls `reload` at start-up and at every reload
(DETECTOR_RELOAD_SECONDS), from its own thread, so a model deployed, replaced or switched off in
the admin takes effect there without a restart. The spooler thread (detection.recording.spooler)
calls `rescore` for each started event before it raises the alert, and `suppression_record` for an
event the model scored below its threshold: that event raises no alert, but is counted on the
model and stored as a SuppressedEvent, and logged; nothing is silently dropped.

Model files are checked against the SHA-256 their LearnedModel row records before they load (and
load from the verified bytes). A missing or altered file, or one written for other features, is
logged as an error naming the file, and that site's events are raised on their rule scores alone:
detection never stops for want of a learned model. torch is imported only once a model is loaded,
so processes whose sites have none never pay for it.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cameras.models import Camera
from detection.inference.events import CameraRules, Event
from detection.learning.features import FEATURE_VERSION, event_features
from detection.models import LearnedModel, SuppressedEvent

if TYPE_CHECKING:
    from detection.learning.model import LearnedScorer

logger = logging.getLogger(__name__)


class LearnedModelError(Exception):
    """A deployed model that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Rescore:
    """A model's verdict on one event."""

    model_id: int
    version: str  # LearnedModel.label: what the alert records
    rule_score: float
    learned_score: float
    threshold: float

    @property
    def suppressed(self) -> bool:
        return self.learned_score < self.threshold


@dataclass(frozen=True)
class LoadedModel:
    model_id: int
    site_id: int
    site_name: str
    version: str
    sha256: str
    threshold: float
    net: LearnedScorer

    def score(self, event: Event, camera: CameraRules | None) -> float:
        from detection.learning.model import predict

        features = event_features(track=event.track_json, zones=camera.zones if camera is not None else (),
                                  event_type=event.event_type, rule_score=event.score, event_start=event.start)
        return float(predict(self.net, features.sequence[None], features.tabular[None])[0])


def load_model(row: LearnedModel, models_dir: Path) -> LoadedModel:
    """A deployed model's file, checked against its recorded SHA-256 and loaded from those bytes."""
    from detection.learning.model import ModelFileError, model_from_bytes

    path = models_dir / row.file_name
    what = f"learned model v{row.version} of site '{row.site.name}'"
    if not row.file_name or row.threshold is None:
        raise LearnedModelError(f"{what} has no model file or threshold: train a new one with train_detector.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LearnedModelError(f"{what}: the file {path} is missing (LEARNED_MODELS_DIR={models_dir}). Restore it "
                                "from a backup, or switch the model off in the admin and train a new one.") from None
    except OSError as exc:
        raise LearnedModelError(f"{what}: the file {path} cannot be read ({exc}).") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != row.sha256:
        raise LearnedModelError(f"{what}: the file {path} has SHA-256 {actual}, but the database records "
                                f"{row.sha256}: the file is altered or damaged. Restore it from a backup, or train a "
                                "new model with train_detector.")
    try:
        net, _ = model_from_bytes(data, feature_version=FEATURE_VERSION)
    except ModelFileError as exc:
        raise LearnedModelError(f"{what}: {path} cannot be used: {exc}.") from None
    return LoadedModel(model_id=row.pk, site_id=row.site_id, site_name=row.site.name, version=row.label,
                       sha256=row.sha256, threshold=float(row.threshold), net=net)


class Rescorer:
    """Each site's deployed, switched-on model, for the cameras of one detector process."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self._models_dir = models_dir
        # Replaced whole by reload() and only read by rescore(): a reader sees the old or the new map.
        self._by_site: dict[int, LoadedModel] = {}
        self._site_of: dict[int, int] = {}  # camera id -> site id
        self._rules: dict[int, CameraRules] = {}
        self._failed: set[tuple[int, str]] = set()  # (model id, problem) already reported

    @property
    def models(self) -> Mapping[int, LoadedModel]:
        """The loaded models by site id."""
        return self._by_site

    def reload(self, rules: Mapping[int, CameraRules]) -> None:
        """Read which models are deployed and switched on for these cameras' sites; load new ones."""
        models_dir = self._models_dir or Path(settings.LEARNED_MODELS_DIR)
        site_of = dict(Camera.objects.filter(pk__in=list(rules)).values_list("pk", "site_id"))
        rows = LearnedModel.objects.filter(site_id__in=set(site_of.values()), deployed=True,
                                           enabled=True).select_related("site")
        loaded: dict[int, LoadedModel] = {}
        for row in rows:
            current = self._by_site.get(row.site_id)
            if current is not None and (current.model_id, current.sha256, current.threshold) == (
                    row.pk, row.sha256, row.threshold):
                loaded[row.site_id] = current
                continue
            try:
                model = load_model(row, models_dir)
            except LearnedModelError as exc:
                if (row.pk, str(exc)) not in self._failed:  # once per problem, not at every reload
                    self._failed.add((row.pk, str(exc)))
                    logger.error("%s Until then the site's events are raised on their rule scores alone.", exc)
                continue
            loaded[row.site_id] = model
            logger.info("learned model re-scores events site=%s model=%s threshold=%.3f", model.site_name,
                        model.version, model.threshold)
        for site_id, model in self._by_site.items():
            if site_id not in loaded:  # a replacement logged its own line above
                logger.info("learned model no longer re-scores events site=%s model=%s (switched off, or its "
                            "cameras left this process): events are raised on their rule scores", model.site_name,
                            model.version)
        self._rules = dict(rules)
        self._site_of = site_of
        self._by_site = loaded

    def rescore(self, event: Event) -> Rescore | None:
        """The model's score for an event about to become an alert; None when no model of its site
        is in use or the event has no person track (it is then raised on its rule score)."""
        site_id = self._site_of.get(event.camera_id)
        model = self._by_site.get(site_id) if site_id is not None else None
        if model is None or event.track is None:
            return None
        try:
            learned = model.score(event, self._rules.get(event.camera_id))
        except Exception:  # a model that fails must not cost the alert: it is raised on its rule score
            logger.exception("learned model failed to score an event site=%s model=%s camera=%s event_type=%s: the "
                             "alert is raised on its rule score", model.site_name, model.version, event.camera_name,
                             event.event_type)
            return None
        return Rescore(model_id=model.model_id, version=model.version, rule_score=event.score, learned_score=learned,
                       threshold=model.threshold)


def suppression_record(*, rescore: Rescore, event: Event) -> None:
    """Count and keep an event the model suppressed (called instead of raising its alert)."""
    now = timezone.now()
    with transaction.atomic():
        SuppressedEvent.objects.create(
            model_id=rescore.model_id, camera_id=event.camera_id, zone_name=event.zone_name, event_type=event.event_type,
            rule_score=rescore.rule_score, learned_score=rescore.learned_score, threshold=rescore.threshold,
            event_start=datetime.fromtimestamp(event.start, tz=UTC), suppressed_at=now, track=event.track_json,
        )
        LearnedModel.objects.filter(pk=rescore.model_id).update(suppressed_count=F("suppressed_count") + 1,
                                                                last_suppressed_at=now)
    logger.info("event suppressed by the learned model model=%s camera=%s camera_name=%s zone=%s event_type=%s "
                "rule_score=%.3f learned_score=%.3f threshold=%.3f start=%s", rescore.version, event.camera_id,
                event.camera_name, event.zone_name or "whole frame", event.event_type, rescore.rule_score,
                rescore.learned_score, rescore.threshold, datetime.fromtimestamp(event.start, tz=UTC).isoformat())
