"""The learned per-site models (detection.learning): every training run, and what they suppressed."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cameras.models import Camera, Site


class LearnedModel(models.Model):
    """One `train_detector` run for a site: its report, and the model file when one was trained.

    At most one model per site is deployed (the gate let it through); it re-scores the site's
    events only while `enabled` (a manager's switch in the admin). A refused run keeps its report
    and, when a model was trained, its file, for the record."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="learned_models")
    version = models.PositiveIntegerField(help_text="1, 2, 3... per site.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    trained_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    file_name = models.CharField(max_length=300, blank=True, editable=False,
                                 help_text="Relative to LEARNED_MODELS_DIR; empty when no model was trained.")
    sha256 = models.CharField("SHA-256", max_length=64, blank=True, editable=False,
                              help_text="Of the model file, checked every time it is loaded.")
    examples = models.PositiveIntegerField(default=0, editable=False)
    confirmed = models.PositiveIntegerField(default=0, editable=False)
    dismissed = models.PositiveIntegerField(default=0, editable=False)
    threshold = models.FloatField(null=True, blank=True, editable=False,
                                  help_text="Events the model scores below this are suppressed.")
    report = models.JSONField(default=dict, blank=True, editable=False)
    refused_reason = models.TextField(blank=True, editable=False,
                                      help_text="Why the gate did not deploy it; empty when it was deployed.")
    deployed = models.BooleanField(default=False, editable=False,
                                   help_text="The site's current model (a newer deployed one replaces it).")
    enabled = models.BooleanField(default=True, help_text="Off: the site's events are raised on their rule scores "
                                  "alone, as if no model were deployed.")
    suppressed_count = models.PositiveIntegerField(default=0, editable=False)
    last_suppressed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["site__name", "-version"]
        verbose_name = "learned model"
        # One deployed model per site is kept by the service that deploys (it locks the site's rows),
        # not by a partial unique index, which not every database backend has.
        constraints = [models.UniqueConstraint(fields=["site", "version"], name="learned_model_unique_version")]

    def __str__(self) -> str:
        return f"{self.site.name} model v{self.version}" if self.site_id else f"model v{self.version}"

    @property
    def label(self) -> str:
        """What an alert records as its `learned_model_version`: version and the file's hash prefix."""
        return f"v{self.version}-{self.sha256[:12]}" if self.sha256 else f"v{self.version}"


class SuppressedEvent(models.Model):
    """An event a learned model scored below its threshold: no alert was raised for it."""

    model = models.ForeignKey(LearnedModel, on_delete=models.CASCADE, related_name="suppressed_events")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="+")
    zone_name = models.CharField(max_length=100, blank=True)
    event_type = models.CharField(max_length=64)
    rule_score = models.FloatField()
    learned_score = models.FloatField()
    threshold = models.FloatField()
    event_start = models.DateTimeField()
    suppressed_at = models.DateTimeField(default=timezone.now, db_index=True)
    track = models.JSONField(null=True, blank=True, editable=False,
                             help_text="The person's track up to then, as an alert would have stored it.")

    class Meta:
        ordering = ["-suppressed_at", "-id"]
        indexes = [models.Index(fields=["camera", "-suppressed_at"], name="suppressed_camera_recent")]

    def __str__(self) -> str:
        return f"{self.event_type} on {self.camera_id} suppressed at {self.suppressed_at:%Y-%m-%d %H:%M:%S}"
