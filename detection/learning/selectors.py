"""Reads for the Model page (detection.views): a site's training history, the scores of its reviewed
alerts, the thresholds in force and what its models suppressed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alerts.models import Alert, ReviewStatus
from cameras.models import Camera, Site
from detection.behaviour.rules import EVENT_TYPES
from detection.inference.events import RuleConfig, threshold_for
from detection.models import LearnedModel, SuppressedEvent
from detection.selectors import camera_rules_from

SCORES_LIMIT = 5000  # the newest reviewed alerts drawn in the histograms
HISTORY_LIMIT = 50
SUPPRESSED_LIMIT = 50


@dataclass(frozen=True)
class ReviewScores:
    rule_confirmed: list[float]
    rule_dismissed: list[float]
    learned_confirmed: list[float]
    learned_dismissed: list[float]


@dataclass(frozen=True)
class ThresholdRow:
    camera: str
    zone: str  # "" for a camera without zones
    kind: str
    own: float | None  # the zone's (or zoneless camera's) own setting
    in_force: dict[str, float]  # per person event type


def model_history(*, site: Site) -> list[LearnedModel]:
    return list(LearnedModel.objects.filter(site=site).select_related("site", "trained_by")
                .order_by("-version")[:HISTORY_LIMIT])


def review_scores(*, site: Site) -> ReviewScores:
    """Rule scores (as threshold tuning reads them) and learned scores of the newest reviewed alerts."""
    rows = (Alert.objects.filter(camera__site=site, review_status__in=[ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED])
            .order_by("-detected_at").values_list("score", "rule_score", "learned_score", "review_status")
            [:SCORES_LIMIT])
    scores = ReviewScores([], [], [], [])
    for score, rule_score, learned_score, status in rows:
        confirmed = status == ReviewStatus.CONFIRMED
        rule = rule_score if learned_score is not None and rule_score is not None else score
        (scores.rule_confirmed if confirmed else scores.rule_dismissed).append(float(rule))
        if learned_score is not None:
            (scores.learned_confirmed if confirmed else scores.learned_dismissed).append(float(learned_score))
    return scores


def thresholds_in_force(*, site: Site) -> list[ThresholdRow]:
    config = RuleConfig.from_settings()
    rows = []
    for camera in Camera.objects.filter(site=site, enabled=True).select_related("site").prefetch_related("zones"):
        rules = camera_rules_from(camera)
        if not rules.zones:
            rows.append(ThresholdRow(camera.name, "", "", camera.threshold,
                                     {t: threshold_for(rules, None, t, config) for t in EVENT_TYPES}))
        for zone in rules.zones:
            if zone.kind == "ignore":
                continue
            rows.append(ThresholdRow(camera.name, zone.name, zone.kind, zone.threshold,
                                     {t: threshold_for(rules, zone, t, config) for t in EVENT_TYPES}))
    return rows


def suppressed_since(*, site: Site, since: datetime) -> tuple[int, list[SuppressedEvent]]:
    """How many events the site's models suppressed since then, and the newest of them."""
    events = SuppressedEvent.objects.filter(camera__site=site, suppressed_at__gte=since)
    return events.count(), list(events.select_related("camera", "model").order_by("-suppressed_at")[:SUPPRESSED_LIMIT])


def suppressed_scores_since(*, site: Site, since: datetime) -> list[float]:
    return [float(s) for s in SuppressedEvent.objects.filter(camera__site=site, suppressed_at__gte=since)
            .values_list("learned_score", flat=True)[:SCORES_LIMIT]]
