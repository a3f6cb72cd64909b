from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from cameras.models import Camera, Site, Zone


def clip_storage() -> Storage:
    """The `clips` entry of STORAGES, looked up when used so tests and deployments can swap it."""
    return storages["clips"]


class ClipStatus(models.TextChoices):
    RECORDING = "recording", "Recording"  # alert raised, post-roll still being captured
    QUEUED = "queued", "Queued"  # spool written, build job enqueued (or waiting for the sweeper)
    BUILDING = "building", "Building"  # a worker claimed it
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ReviewStatus(models.TextChoices):
    UNREVIEWED = "unreviewed", "Unreviewed"
    CONFIRMED = "confirmed", "Confirmed"
    DISMISSED = "dismissed", "Dismissed (false alarm)"


class ClipPart(models.TextChoices):
    FIRST = "first", "First clip"  # 2 s before, 2 s during, 2 s after the event start: ready at once
    EVENT = "event", "Whole event"  # the whole event, when it outlasts the first clip (capped)


class ClipFields(models.Model):
    """One evidence clip and its build job's state: the row is the job (queued, building, ready,
    failed) and the spool file its payload (see alerts.clip_jobs)."""

    clip_start = models.DateTimeField(null=True, blank=True)
    clip_end = models.DateTimeField(null=True, blank=True)
    clip = models.FileField(storage=clip_storage, max_length=500, blank=True)
    clip_sha256 = models.CharField("clip SHA-256", max_length=64, blank=True)
    clip_size = models.BigIntegerField(null=True, blank=True)
    clip_duration = models.FloatField(null=True, blank=True)
    clip_build_seconds = models.FloatField(null=True, blank=True, help_text="Worker time to build and verify the clip.")
    clip_status = models.CharField(max_length=16, choices=ClipStatus.choices, default=ClipStatus.RECORDING)
    clip_error = models.TextField(blank=True)
    clip_warning = models.TextField(blank=True, help_text="What of the clip window is missing (a camera that stalled, "
                                    "video the recorder lost); empty when the clip is whole.")
    clip_attempts = models.PositiveIntegerField(default=0)
    clip_status_changed_at = models.DateTimeField(default=timezone.now)
    spool_name = models.CharField(max_length=500, blank=True, help_text="Packets waiting for the clip builder.")
    clip_task_id = models.CharField(max_length=64, blank=True, help_text="The Celery task that holds the build claim.")

    class Meta:
        abstract = True


class Alert(ClipFields):
    # Evidence outlives configuration: a camera with alerts cannot be deleted, only disabled.
    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="alerts")
    zone = models.ForeignKey(Zone, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts",
                             help_text="Empty means the whole frame.")
    zone_name = models.CharField(max_length=100, blank=True, help_text="The zone's name when the alert was raised.")
    event_type = models.CharField(max_length=64)
    score = models.FloatField(help_text="The score the alert was raised on: the learned model's where one "
                              "re-scored the event, else the detector's.")
    # The rule score as raised; the learned fields are set where a site's learned model
    # (detection.learning) re-scored the event before it was raised.
    rule_score = models.FloatField(null=True, blank=True, help_text="The detector's own score when the alert was "
                                   "raised (empty on alerts older than this field).")
    learned_score = models.FloatField(null=True, blank=True, help_text="The learned model's score.")
    learned_model_version = models.CharField(max_length=100, blank=True,
                                             help_text="The learned model that re-scored the event.")
    event_start = models.DateTimeField()
    event_end = models.DateTimeField(null=True, blank=True)
    detected_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The person behind a person-detector alert: {"track_id", "keypoint_names", "skeleton" (bones as
    # keypoint index pairs), "points": [{"t" (epoch seconds), "box" [x1, y1, x2, y2], "score",
    # "keypoints" [[x, y, confidence] x 17] or null}]}, normalized to the frame (written by
    # detection.tracking.tracks.TrackEvidence.to_json). Boxes and body keypoints only: no crops.
    track = models.JSONField(null=True, blank=True, editable=False,
                             help_text="The triggering person's boxes and body keypoints over the clip.")

    thumbnail = models.FileField(storage=clip_storage, max_length=500, blank=True)

    review_status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.UNREVIEWED)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="reviewed_alerts")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    suppressed_count = models.PositiveIntegerField(default=0, help_text="Repeats ignored inside the dedup window.")
    last_suppressed_at = models.DateTimeField(null=True, blank=True)

    # Retention (alerts.retention): a held alert's files are never deleted; a deleted clip leaves its
    # row, with clip_sha256 and clip_size, as the record of what was there.
    legal_hold = models.BooleanField(default=False, help_text="Keep this alert's clips whatever the retention "
                                     "policy, e.g. for a police or insurance request.")
    clip_deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    clip_deleted_reason = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [
            models.Index(fields=["camera", "-detected_at"], name="alert_camera_recent"),
            models.Index(fields=["camera", "zone", "event_type", "-detected_at"], name="alert_dedup_key"),
            models.Index(fields=["clip_status", "clip_status_changed_at"], name="alert_clip_status"),
            models.Index(fields=["review_status", "-detected_at"], name="alert_review_status"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event_type} on {self.camera} at {self.detected_at:%Y-%m-%d %H:%M:%S}"


def alert_held_q() -> Q:
    """The alerts whose clips retention must keep: a manager's legal hold, an open case, or a
    confirmed review (CLIP_RETENTION_HOLD_CONFIRMED). The one definition of a hold."""
    in_open_case = Case.objects.filter(status=CaseStatus.OPEN, alerts=models.OuterRef("pk"))
    held = Q(legal_hold=True) | Q(models.Exists(in_open_case))
    if settings.CLIP_RETENTION_HOLD_CONFIRMED:
        held |= Q(review_status=ReviewStatus.CONFIRMED)
    return held


def alerts_held() -> models.QuerySet[Alert]:
    return Alert.objects.filter(alert_held_q())


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class CaseOutcome(models.TextChoices):
    UNDECIDED = "", "Not decided yet"
    THEFT_CONFIRMED = "theft_confirmed", "Theft confirmed"
    THEFT_PREVENTED = "theft_prevented", "Theft prevented"
    FALSE_ALARM = "false_alarm", "False alarm"
    OTHER = "other", "Other"


class Case(models.Model):
    """An incident: one or more alerts of one site, what happened, and what came of it. While open,
    its alerts' clips are held from retention. Reviewers open and edit cases; managers close them."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="cases")
    alerts = models.ManyToManyField(Alert, related_name="cases", blank=True)
    title = models.CharField("what happened", max_length=200)
    outcome = models.CharField(max_length=32, choices=CaseOutcome.choices, blank=True, default=CaseOutcome.UNDECIDED)
    estimated_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True,
                                          validators=[MinValueValidator(0)],
                                          help_text="Value of the goods involved, in the store's currency.")
    items = models.TextField(blank=True, help_text="The goods involved, one per line.")
    person_description = models.TextField("description of the person", blank=True,
                                          help_text="In words: clothing, build, direction of travel. No names "
                                                    "unless known from the police.")
    police_reference = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   related_name="cases_created")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="cases_closed")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["site", "status", "-created_at"], name="case_site_status")]

    def __str__(self) -> str:
        return f"Case #{self.pk}: {self.title}"

    @property
    def reference(self) -> str:
        return f"Case #{self.pk}"


class EventClip(ClipFields):
    """The whole-event clip of an alert whose event went on past its first clip: built once the
    event ends (capped at CLIP_MAX_SECONDS). Its key is its alert's id."""

    alert = models.OneToOneField(Alert, on_delete=models.CASCADE, primary_key=True, related_name="event_clip")

    class Meta:
        verbose_name = "whole-event clip"
        indexes = [models.Index(fields=["clip_status", "clip_status_changed_at"], name="event_clip_status")]

    def __str__(self) -> str:
        return f"whole-event clip of alert #{self.alert_id}"


class AccessAction(models.TextChoices):
    VIEW = "view", "Viewed"
    DOWNLOAD = "download", "Downloaded"
    EXPORT = "export", "Exported"


class ClipAccess(models.Model):
    """Who watched or downloaded which clip, when and from where: the chain of custody."""

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="accesses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="clip_accesses")
    username = models.CharField(max_length=150, help_text="Kept if the account is later deleted.")
    action = models.CharField(max_length=16, choices=AccessAction.choices)
    part = models.CharField(max_length=16, choices=ClipPart.choices, default=ClipPart.FIRST,
                            help_text="Which of the alert's clips.")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "clip access"
        verbose_name_plural = "clip access log"

    def __str__(self) -> str:
        return f"{self.username} {self.action} alert #{self.alert_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class LoginThrottleKey(models.Model):
    """One row per user name or client address that has tried to sign in: attempts on the same
    key lock its row while they count and record, so parallel attempts cannot all pass the check."""

    key = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return self.key


class LoginFailure(models.Model):
    """One failed login. Counted per user name and per client address to refuse brute force.

    Kept in the database (not process memory) so the limit holds across every web worker.
    """

    username = models.CharField(max_length=150, help_text="Lower-cased as typed; it need not exist.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["username", "at"], name="login_failure_username"),
            models.Index(fields=["ip_address", "at"], name="login_failure_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip_address} at {self.at:%Y-%m-%d %H:%M:%S}"


WHOLE_FRAME = 0  # zone_key of an event on a camera without zones (a unique constraint ignores NULLs)


class DedupKey(models.Model):
    """The last alert per (camera, zone, event type): the dedup window's shared, durable state.

    A detector process claims the right to raise an alert with one conditional UPDATE on this row,
    so the check holds across processes and machines and survives restarts (see alerts.emitter.alert_raise).
    """

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="+")
    zone_key = models.BigIntegerField(help_text="The zone's id, or 0 for the whole frame.")
    event_type = models.CharField(max_length=64)
    last_alert_at = models.DateTimeField(null=True, blank=True, help_text="Start of the event that raised the last alert.")
    # A plain id, not a foreign key: evidence and this bookkeeping are deleted on different schedules.
    last_alert_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "detection_dedupkey"  # created by the detection app, which held the model before
        constraints = [
            models.UniqueConstraint(fields=["camera", "zone_key", "event_type"], name="dedup_unique_key"),
        ]

    def __str__(self) -> str:
        return f"camera {self.camera_id} zone {self.zone_key or 'whole frame'} {self.event_type}"


class NotifyChannel(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (signed JSON POST)"
    EMAIL = "email", "E-mail"
    MQTT = "mqtt", "MQTT"
    WEBPUSH = "webpush", "Web Push (each user's devices)"


class NotifyMessage(models.TextChoices):
    ALERT = "alert", "Alert"
    CLIP_READY = "clip_ready", "Clip ready"
    TEST = "test", "Test"


class NotificationTarget(models.Model):
    """Where a site's alerts are sent, and which. Targets without a site are the deployment's own,
    configured by the environment (NOTIFY_WEBHOOK_URL, NOTIFY_MQTT_URL) and kept here so their
    deliveries are tracked like any other."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, null=True, blank=True, related_name="notification_targets",
                             help_text="Empty: every site (a target set by the environment).")
    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=16, choices=NotifyChannel.choices)
    address = models.CharField(max_length=500, blank=True,
                               help_text="Webhook: the https:// URL. E-mail: addresses, comma-separated. "
                                         "Empty for the environment's targets (read from it when sending).")
    secret = models.CharField(max_length=200, blank=True,
                              help_text="Webhook: signs each body (HMAC-SHA256); the receiver checks it. Never logged.")
    event_types = models.JSONField(default=list, blank=True, help_text='Only these event types, e.g. ["concealment"]; '
                                   "empty: all.")
    min_score = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
                                  help_text="Only alerts scoring at least this.")
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="notification_target_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_channel_display()})"

    def clean(self) -> None:
        from urllib.parse import urlsplit

        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        if self.channel == NotifyChannel.WEBPUSH:
            raise ValidationError({"channel": "Web Push goes to each user's own devices: users turn it on from the "
                                              "dashboard's Notifications page, not as a target."})
        if self.site_id is None:
            return  # the environment's: their settings are checked at start-up
        address = self.address.strip()
        if self.channel == NotifyChannel.WEBHOOK:
            parts = urlsplit(address)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValidationError({"address": "Enter the receiver's http:// or https:// URL."})
            if len(self.secret) < 16:
                raise ValidationError({"secret": "Enter a secret of at least 16 characters; the receiver checks each "
                                                 "body's signature with it."})
        elif self.channel == NotifyChannel.EMAIL:
            addresses = [a.strip() for a in address.split(",") if a.strip()]
            if not addresses:
                raise ValidationError({"address": "Enter one or more e-mail addresses, comma-separated."})
            for one in addresses:
                try:
                    validate_email(one)
                except ValidationError:
                    raise ValidationError({"address": f"'{one}' is not an e-mail address."}) from None
        elif self.channel == NotifyChannel.MQTT and urlsplit(address).scheme not in ("mqtt", "mqtts"):
            raise ValidationError({"address": "Enter the broker as mqtt://[user:password@]host[:port]."})
        if not isinstance(self.event_types, list) or not all(isinstance(t, str) for t in self.event_types):
            raise ValidationError({"event_types": 'Enter a list of event type names, e.g. ["concealment"], or [].'})

    def wants(self, *, event_type: str, score: float) -> bool:
        return self.enabled and score >= self.min_score and (not self.event_types or event_type in self.event_types)


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (cooldown)"


class NotificationDelivery(models.Model):
    """One message to one target, or to one user's device (a WebPushSubscription): the outbox row its
    Celery task works from, retried with backoff and kept so failures show in the admin."""

    target = models.ForeignKey(NotificationTarget, on_delete=models.CASCADE, null=True, blank=True,
                               related_name="deliveries", help_text="Empty for a delivery to a device.")
    # SET_NULL: a device the push service reports gone is removed, and its failed delivery stays to say so.
    subscription = models.ForeignKey("WebPushSubscription", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="deliveries", help_text="The device, for a Web Push delivery.")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries")
    message = models.CharField(max_length=16, choices=NotifyMessage.choices)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When the next try is due (a retry's backoff, or the end of a try in progress): a queued row far
    # past it lost its task, and the sweeper sends it again.
    next_attempt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        # Test messages have no alert: a NULL never equals another, so they are not limited.
        constraints = [
            models.UniqueConstraint(fields=["target", "alert", "message"], name="delivery_once"),
            models.UniqueConstraint(fields=["subscription", "alert", "message"], name="delivery_once_per_device"),
            # A target's or a device's, never both (neither: the device was removed since).
            models.CheckConstraint(condition=Q(target__isnull=True) | Q(subscription__isnull=True),
                                   name="delivery_one_recipient"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_status")]

    def __str__(self) -> str:
        return f"{self.get_message_display()} of alert #{self.alert_id} to {self.recipient}"

    @property
    def recipient(self) -> str:
        if self.target_id is not None:
            return str(self.target)
        if self.subscription_id is not None:
            return str(self.subscription)
        return "a removed device"


class WebPushSubscription(models.Model):
    """One browser's Web Push subscription, for one user at one site (the dashboard's Notifications
    page): the push service's endpoint, and the browser's keys that encrypt each message for it alone.

    A device may follow several sites, one row each with its own filters; an endpoint belongs to one
    user at a time (subscribing a shared browser removes the previous user's rows)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="push_subscriptions")
    # A capability URL: whoever holds it (and the VAPID key) can push to the device. Logged as its origin only.
    endpoint = models.URLField(max_length=1000, help_text="The push service's address for this browser.")
    p256dh = models.CharField("browser public key", max_length=100, help_text="P-256 point, base64url.")
    auth = models.CharField("auth secret", max_length=50, help_text="16 bytes, base64url.")
    event_types = models.JSONField(default=list, blank=True, help_text='Only these event types, e.g. ["concealment"]; '
                                   "empty: all.")
    min_score = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
                                  help_text="Only alerts scoring at least this.")
    user_agent = models.CharField(max_length=300, blank=True, help_text="The browser that subscribed, to tell "
                                  "devices apart.")
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["site__name", "-created_at", "-id"]
        verbose_name = "Web Push subscription"
        constraints = [models.UniqueConstraint(fields=["user", "site", "endpoint"], name="webpush_one_per_device_site")]
        indexes = [models.Index(fields=["site", "enabled"], name="webpush_site")]

    def __str__(self) -> str:
        return f"{self.user}'s device at {self.site} (#{self.pk})"

    @property
    def push_service(self) -> str:
        """The endpoint's origin: enough to tell Chrome's, Firefox's and Safari's services apart."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    def wants(self, *, event_type: str, score: float) -> bool:
        return self.enabled and score >= self.min_score and (not self.event_types or event_type in self.event_types)


class AuditAction(models.TextChoices):
    LOGIN = "login", "Signed in"
    LOGIN_FAILED = "login_failed", "Failed sign-in"
    LOGOUT = "logout", "Signed out"
    CLIP_VIEW = "clip_view", "Viewed a clip"
    CLIP_DOWNLOAD = "clip_download", "Downloaded a clip"
    EXPORT = "export", "Exported evidence"
    REVIEW = "review", "Reviewed an alert"
    CASE_CREATE = "case_create", "Opened a case"
    CASE_UPDATE = "case_update", "Changed a case"
    CASE_CLOSE = "case_close", "Closed a case"
    CASE_REOPEN = "case_reopen", "Reopened a case"
    ADMIN_ADD = "admin_add", "Added in the admin"
    ADMIN_CHANGE = "admin_change", "Changed in the admin"
    ADMIN_DELETE = "admin_delete", "Deleted in the admin"
    RETENTION_DELETE = "retention_delete", "Deleted by retention"
    TAMPER = "tamper", "Tampering detected"
    AUDIT_EXPORT = "audit_export", "Exported the audit log"
    MODEL_CHANGE = "model_change", "Changed a learned model"


class AuditEntry(models.Model):
    """One line of the append-only audit log (alerts.audit). Each entry's `entry_hash` covers its
    own fields and the previous entry's hash, so editing, inserting or deleting a row breaks the
    chain where it happened (`manage.py verify_audit`).

    No foreign keys: a deleted user, site or alert must not rewrite (SET_NULL) a row the chain
    covers. Ids and names are copied as they were."""

    seq = models.PositiveBigIntegerField(unique=True, editable=False, help_text="1, 2, 3, ... with no gaps.")
    at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    actor_id = models.BigIntegerField(null=True, blank=True, editable=False, help_text="The user's id; empty for "
                                      "the system (retention, detectors) or an unknown user name.")
    username = models.CharField(max_length=150, blank=True, editable=False)
    action = models.CharField(max_length=32, choices=AuditAction.choices, editable=False)
    site_id = models.BigIntegerField(null=True, blank=True, db_index=True, editable=False)
    object_type = models.CharField(max_length=50, blank=True, editable=False, help_text='e.g. "alert", "case", '
                                   '"camera".')
    object_id = models.CharField(max_length=50, blank=True, editable=False)
    summary = models.CharField(max_length=500, editable=False)
    detail = models.JSONField(default=dict, blank=True, editable=False)
    ip_address = models.GenericIPAddressField(null=True, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["site_id", "-seq"], name="audit_site_recent")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.username or 'system'} {self.action} at {self.at:%Y-%m-%d %H:%M:%S}"


class AuditHead(models.Model):
    """The chain's last link (one row): appends lock it so they form one line, and it catches the
    deletion of the newest entries, which no later entry would point at."""

    seq = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"audit head #{self.seq}"
