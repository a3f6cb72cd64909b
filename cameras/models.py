from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from cameras.validators import (
    validate_clip_timing,
    validate_event_types,
    validate_non_negative_seconds,
    validate_polygon,
    validate_rtsp_url,
    validate_threshold,
    validate_time_zone,
)
from shoplift.masking import mask_url


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    REVIEWER = "reviewer", "Reviewer"
    MANAGER = "manager", "Manager"

    @property
    def rank(self) -> int:
        return ROLE_RANK[self.value]

    def roles_at_least(self) -> list[str]:
        """This role and every stronger one, for `role__in=` filters."""
        return [value for value, rank in ROLE_RANK.items() if rank >= self.rank]


ROLE_RANK = {Role.VIEWER.value: 1, Role.REVIEWER.value: 2, Role.MANAGER.value: 3}


@dataclass(frozen=True)
class ClipTiming:
    """Seconds of video kept before, during and after an event, and the ring window they come from."""

    pre: float
    during: float
    post: float
    ring: float


class Site(models.Model):
    name = models.CharField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone],
                                 help_text="IANA name, e.g. Europe/London. Alert times are shown in it.")
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Days evidence clips are kept (held alerts' are kept until released); empty uses the "
                  "deployment's CLIP_RETENTION_DAYS.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def clip_retention_days(self) -> int:
        return int(self.retention_days or settings.CLIP_RETENTION_DAYS)


class Camera(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="cameras")
    name = models.CharField(max_length=100)
    channel = models.PositiveIntegerField(null=True, blank=True, help_text="DVR channel number.")
    stream_url = models.CharField("evidence stream URL", max_length=500, validators=[validate_rtsp_url],
                                  help_text="Main stream, recorded into clips. rtsp:// or rtsps://")
    detect_url = models.CharField("detection stream URL", max_length=500, blank=True, validators=[validate_rtsp_url],
                                  help_text="Optional low-resolution substream for detection; empty uses the main stream.")
    enabled = models.BooleanField(default=True)
    detector = models.CharField(max_length=64, blank=True, help_text="Detector plugin; empty uses the deployment's DETECTOR.")
    detection_fps = models.FloatField(default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(30.0)])
    threshold = models.FloatField(null=True, blank=True, validators=[validate_threshold],
                                  help_text="Score threshold 0–1; empty uses the deployment default.")
    pre_seconds = models.FloatField(null=True, blank=True, validators=[validate_non_negative_seconds],
                                    help_text="Seconds before the event; empty uses the default.")
    during_seconds = models.FloatField(null=True, blank=True, validators=[validate_non_negative_seconds])
    post_seconds = models.FloatField(null=True, blank=True, validators=[validate_non_negative_seconds])
    ring_seconds = models.FloatField(null=True, blank=True, validators=[validate_non_negative_seconds],
                                     help_text="Seconds of video kept in memory; must exceed the pre-roll.")
    # Live status, written only by the detector supervisor's writer thread.
    online = models.BooleanField(default=False, editable=False)
    last_frame_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    status_updated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["site__name", "channel", "name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="camera_unique_name_per_site"),
            models.UniqueConstraint(fields=["site", "channel"], name="camera_unique_channel_per_site"),
        ]

    def __str__(self) -> str:
        return f"{self.site.name} / {self.name}" if self.site_id else self.name

    def clean(self) -> None:
        super().clean()
        t = self.timing()
        try:
            validate_clip_timing(pre=t.pre, during=t.during, post=t.post, ring=t.ring)
        except ValidationError as exc:
            raise ValidationError({"pre_seconds": exc.messages}) from None

    @property
    def masked_stream_url(self) -> str:
        return mask_url(self.stream_url)

    @property
    def masked_detect_url(self) -> str:
        return mask_url(self.detect_url) if self.detect_url else ""

    def timing(self) -> ClipTiming:
        """Clip timing with the deployment defaults filled in."""

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        return ClipTiming(
            pre=pick(self.pre_seconds, settings.CLIP_PRE_SECONDS),
            during=pick(self.during_seconds, settings.CLIP_DURING_SECONDS),
            post=pick(self.post_seconds, settings.CLIP_POST_SECONDS),
            ring=pick(self.ring_seconds, settings.RING_SECONDS),
        )


class ZoneKind(models.TextChoices):
    """What a zone is in the store; the person detector's behaviour rules read meaning from it."""

    SHELF = "shelf", "Shelf (merchandise)"
    CHECKOUT = "checkout", "Checkout"
    EXIT = "exit", "Exit"
    RESTRICTED = "restricted", "Restricted (staff only)"
    IGNORE = "ignore", "Ignore (mask: nothing inside counts)"


class Zone(models.Model):
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="zones")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ZoneKind.choices, default=ZoneKind.SHELF,
                            help_text="Shelf, checkout, exit and restricted zones give the person detector's "
                                      "events their meaning; an ignore zone masks the area for every detector.")
    polygon = models.JSONField(validators=[validate_polygon],
                               help_text="Points [[x, y], ...] as fractions of width and height (0–1).")
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField(null=True, blank=True, validators=[validate_threshold],
                                  help_text="Score threshold 0–1; empty uses the camera's, then the default.")
    event_types = models.JSONField(default=list, blank=True, validators=[validate_event_types],
                                   help_text='Event types watched in this zone, e.g. ["loitering"]; empty means all.')

    class Meta:
        ordering = ["camera", "name"]
        constraints = [models.UniqueConstraint(fields=["camera", "name"], name="zone_unique_name_per_camera")]

    def __str__(self) -> str:
        return f"{self.camera} / {self.name}" if self.camera_id else self.name

    def watches(self, event_type: str) -> bool:
        return self.enabled and self.kind != ZoneKind.IGNORE and (not self.event_types or event_type in self.event_types)


class SiteMembership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_memberships")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        ordering = ["site__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="membership_unique_user_site")]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.site}"
