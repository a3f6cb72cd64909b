from __future__ import annotations

from django.db import models

from cameras.models import Camera

WHOLE_FRAME = 0  # zone_key of an event on a camera without zones (a unique constraint ignores NULLs)


class DedupKey(models.Model):
    """The last alert per (camera, zone, event type): the dedup window's shared, durable state.

    A detector process claims the right to raise an alert with one conditional UPDATE on this row,
    so the check holds across processes and machines and survives restarts (see alerts.emitter).
    """

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="+")
    zone_key = models.BigIntegerField(help_text="The zone's id, or 0 for the whole frame.")
    event_type = models.CharField(max_length=64)
    last_alert_at = models.DateTimeField(null=True, blank=True, help_text="Start of the event that raised the last alert.")
    # A plain id, not a foreign key: evidence and this bookkeeping are deleted on different schedules.
    last_alert_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["camera", "zone_key", "event_type"], name="dedup_unique_key"),
        ]

    def __str__(self) -> str:
        return f"camera {self.camera_id} zone {self.zone_key or 'whole frame'} {self.event_type}"
