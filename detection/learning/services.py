"""The changes managers make to the learned models and thresholds, each audited in its transaction.

Called by the admin (detection.admin). Permission checks are the caller's: the admin allows these
only to managers of the object's site.
"""
from __future__ import annotations

import logging

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction

from alerts.audit import audit_record
from alerts.models import AuditAction
from cameras.models import Camera, Zone
from detection.learning.tuning import GroupSuggestion
from detection.models import LearnedModel

logger = logging.getLogger(__name__)


class SuggestionChanged(Exception):
    """The suggestion the manager saw is no longer the one the alerts give (new reviews came in)."""


def learned_model_switch(*, model: LearnedModel, enabled: bool, user: User | AnonymousUser,
                         ip_address: str | None = None) -> bool:
    """Switch a model on or off; False when it already was. The detectors follow at their next reload."""
    with transaction.atomic():
        changed = LearnedModel.objects.filter(pk=model.pk).exclude(enabled=enabled).update(enabled=enabled)
        if changed:
            state = "on" if enabled else "off"
            audit_record(
                action=AuditAction.MODEL_CHANGE, user=user, site_id=model.site_id, object_type="learned_model",
                object_id=model.pk, ip_address=ip_address,
                summary=f"Switched {state} learned model v{model.version} at {model.site.name}"
                        + ("" if model.deployed else " (not the deployed model)"),
                detail={"version": model.version, "enabled": enabled, "deployed": model.deployed,
                        "sha256": model.sha256},
            )
    model.enabled = enabled
    if changed:
        logger.info("learned model switched %s site=%s version=%s", "on" if enabled else "off", model.site.name,
                    model.version)
    return bool(changed)


def threshold_apply(*, group: GroupSuggestion, value: float, user: User | AnonymousUser,
                    ip_address: str | None = None) -> None:
    """Set the zone's (or for a camera without zones, the camera's) threshold to a suggestion.
    `value` is the threshold the manager was shown; a suggestion that has changed since is refused."""
    suggestion = group.suggestion
    if suggestion.suggested is None or abs(suggestion.suggested - value) > 1e-9:
        now = "no change" if suggestion.suggested is None else f"{suggestion.suggested:.2f}"
        raise SuggestionChanged(f"The suggestion for {group.target} is now {now}, not {value:.2f}: reviews came in "
                                "since the page was shown. Look at the new suggestion before applying it.")
    with transaction.atomic():
        if group.zone_id is not None:
            zone = Zone.objects.select_for_update().get(pk=group.zone_id, camera_id=group.camera_id)
            old = zone.threshold
            zone.threshold = value
            zone.save(update_fields=["threshold"])
            object_type, object_id, label = "zone", zone.pk, str(zone)
        else:
            camera = Camera.objects.select_for_update().get(pk=group.camera_id)
            old = camera.threshold
            camera.threshold = value
            camera.save(update_fields=["threshold"])
            object_type, object_id, label = "camera", camera.pk, str(camera)
        audit_record(
            action=AuditAction.ADMIN_CHANGE, user=user, site_id=group.site_id, object_type=object_type,
            object_id=object_id, ip_address=ip_address,
            summary=f"Applied the threshold suggestion for {group.event_type} to {object_type} '{label}': "
                    f"{_shown(old)} -> {value:.2f}",
            # As the admin's own change entries (cameras.admin.AuditedAdmin), with the suggestion's grounds.
            detail={"model": f"cameras.{object_type.capitalize()}", "object": label,
                    "changes": {"threshold": {"old": old, "new": value}},
                    "suggestion": {"event_type": group.event_type, "recall": suggestion.recall,
                                   "in_force_before": suggestion.current, "confirmed": suggestion.confirmed,
                                   "dismissed": suggestion.dismissed, "confirmed_lost": suggestion.confirmed_lost,
                                   "false_alarms_removed": suggestion.false_alarms_removed,
                                   "other_event_types": {o.event_type: {"confirmed_lost": o.confirmed_lost,
                                                                        "false_alarms_removed": o.false_alarms_removed}
                                                         for o in group.others}}},
        )
    logger.info("threshold suggestion applied %s=%s event_type=%s old=%s new=%.2f", object_type, object_id,
                group.event_type, old, value)


def _shown(value: float | None) -> str:
    return "default" if value is None else f"{value:.2f}"
