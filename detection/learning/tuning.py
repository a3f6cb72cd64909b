"""Threshold suggestions for a site, from its reviewed alerts: what `manage.py tune_thresholds`
prints and the admin's *Threshold suggestions* page shows (applying one is
detection.learning.services.threshold_apply).

Alerts are grouped by (camera, zone, event type); each group's suggestion is
detection.learning.thresholds.suggest_threshold over its rule scores, against the threshold in
force now (zone, else camera, else the deployment's, as the detectors resolve it). The rule score
of an alert is its highest rule score (`score`), or for an alert a learned model re-scored, the
rule score it was raised on (`rule_score`). A zone's threshold holds for every event type in it,
so each suggestion also says what it would have done to the zone's other event types.

Alerts of a deleted zone are left out: there is no threshold left to tune for them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from alerts.models import Alert, ReviewStatus
from cameras.models import Camera, Site
from detection.inference.events import RuleConfig, threshold_for
from detection.learning.thresholds import DEFAULT_RECALL, MIN_CONFIRMED, Suggestion, effect, suggest_threshold
from detection.selectors import camera_rules_from


@dataclass(frozen=True)
class OtherEffect:
    event_type: str
    confirmed_lost: int
    false_alarms_removed: int


@dataclass(frozen=True)
class GroupSuggestion:
    site_id: int
    camera_id: int
    camera_name: str
    zone_id: int | None  # None: the whole frame of a camera without zones (the camera's threshold)
    zone_name: str
    event_type: str
    suggestion: Suggestion
    others: tuple[OtherEffect, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.camera_id}:{self.zone_id or 0}:{self.event_type}"

    @property
    def target(self) -> str:
        """What applying it changes, in words."""
        if self.zone_id is None:
            return f"camera '{self.camera_name}' threshold"
        return f"zone '{self.zone_name}' threshold (camera '{self.camera_name}')"


Scores = tuple[list[float], list[float]]  # confirmed, dismissed


def _group_scores(site: Site) -> dict[tuple[int, int | None, str], Scores]:
    groups: dict[tuple[int, int | None, str], Scores] = defaultdict(lambda: ([], []))
    rows = Alert.objects.filter(camera__site=site, review_status__in=[ReviewStatus.CONFIRMED, ReviewStatus.DISMISSED]
                                ).values_list("camera_id", "zone_id", "event_type", "score", "rule_score",
                                              "learned_score", "review_status")
    for camera_id, zone_id, event_type, score, rule_score, learned_score, status in rows.iterator(chunk_size=2000):
        value = rule_score if learned_score is not None and rule_score is not None else score
        confirmed, dismissed = groups[(camera_id, zone_id, event_type)]
        (confirmed if status == ReviewStatus.CONFIRMED else dismissed).append(float(value))
    return groups


def threshold_suggestions(*, site: Site, recall: float = DEFAULT_RECALL,
                          min_confirmed: int = MIN_CONFIRMED) -> list[GroupSuggestion]:
    """Every (camera, zone, event type) of the site with reviewed alerts, by camera, zone and type."""
    groups = _group_scores(site)
    cameras = {c.pk: c for c in Camera.objects.filter(site=site).select_related("site").prefetch_related("zones")}
    config = RuleConfig.from_settings()
    results = []
    for (camera_id, zone_id, event_type), (confirmed, dismissed) in sorted(
            groups.items(), key=lambda item: (item[0][0], item[0][1] or 0, item[0][2])):
        camera = cameras.get(camera_id)
        if camera is None:
            continue
        rules = camera_rules_from(camera)
        zone = rules.zone(zone_id) if zone_id is not None else None
        if (zone_id is None) != (not rules.zones) or (zone_id is not None and zone is None):
            continue  # its zone was deleted (or zones drawn since): no threshold of its own to tune
        suggestion = suggest_threshold(confirmed=confirmed, dismissed=dismissed,
                                       current=threshold_for(rules, zone, event_type, config), recall=recall,
                                       min_confirmed=min_confirmed)
        others = []
        if suggestion.suggested is not None:
            for (other_camera, other_zone, other_type), (c, d) in groups.items():
                if (other_camera, other_zone) == (camera_id, zone_id) and other_type != event_type:
                    lost, removed = effect(confirmed=c, dismissed=d, threshold=suggestion.suggested)
                    others.append(OtherEffect(other_type, lost, removed))
        results.append(GroupSuggestion(
            site_id=site.pk, camera_id=camera_id, camera_name=camera.name, zone_id=zone_id,
            zone_name=zone.name if zone is not None else "", event_type=event_type, suggestion=suggestion,
            others=tuple(sorted(others, key=lambda o: o.event_type))))
    return results


def suggestion_text(group: GroupSuggestion) -> str:
    """One suggestion in plain words, as the command prints it."""
    s = group.suggestion
    where = f"{group.camera_name} / {group.zone_name or 'whole frame'} / {group.event_type}"
    counts = f"{s.confirmed} confirmed, {s.dismissed} dismissed"
    if s.suggested is None:
        return f"{where} ({counts}): keep {s.current:.2f}: {s.reason}."
    text = (f"{where} ({counts}): raise {s.current:.2f} -> {s.suggested:.2f}: would have removed "
            f"{s.false_alarms_removed} of {s.dismissed} false alarms and kept {s.confirmed_kept} of {s.confirmed} "
            f"confirmed ({s.confirmed_lost} lost).")
    for other in group.others:
        text += (f" Also applies to {other.event_type} in this zone: {other.false_alarms_removed} false alarms "
                 f"removed, {other.confirmed_lost} confirmed lost.")
    return text
