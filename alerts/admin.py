"""Admin for alerts and the access log. Evidence fields are read-only; the access log is read-only whole."""
from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from alerts.clip_jobs import clip_job_retry
from alerts.models import (
    Alert,
    AuditEntry,
    Case,
    ClipAccess,
    ClipPart,
    ClipStatus,
    EventClip,
    NotificationDelivery,
    NotificationTarget,
    WebPushSubscription,
)
from cameras.admin import SiteScopedAdmin, managed_sites

logger = logging.getLogger("shoplift.retention")

EVIDENCE_FIELDS = (
    "camera", "zone", "zone_name", "event_type", "score", "event_start", "event_end", "detected_at",
    "clip_start", "clip_end", "clip_file", "thumbnail_file", "clip_sha256", "clip_size", "clip_duration", "clip_build_seconds",
    "clip_status", "clip_error", "clip_warning", "clip_attempts", "clip_status_changed_at", "spool_name", "clip_task_id",
    "suppressed_count", "last_suppressed_at", "reviewed_by", "reviewed_at", "clip_deleted_at", "clip_deleted_reason",
)


EVENT_CLIP_FIELDS = (
    "clip_start", "clip_end", "event_clip_file", "clip_sha256", "clip_size", "clip_duration", "clip_build_seconds",
    "clip_status", "clip_error", "clip_warning", "clip_attempts", "clip_status_changed_at", "spool_name", "clip_task_id",
)


class EventClipInline(admin.StackedInline[EventClip, Alert]):
    """The whole-event clip, read-only like the rest of the evidence."""

    model = EventClip
    fields = readonly_fields = EVENT_CLIP_FIELDS
    can_delete = False
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="clip")
    def event_clip_file(self, obj: EventClip) -> str | None:
        return (format_html('<a href="{}">{}</a>', reverse("alerts:event_clip", args=[obj.pk]), obj.clip.name)
                if obj.clip else None)


@admin.register(Alert)
class AlertAdmin(SiteScopedAdmin[Alert]):
    site_path = "camera__site"
    allow_add = False  # alerts come from the detectors only
    list_display = ("id", "detected_at", "camera", "zone_name", "event_type", "score", "clip_status",
                    "review_status", "suppressed_count")
    list_filter = ("clip_status", "review_status", "legal_hold", "event_type",
                   ("camera__site", admin.RelatedOnlyFieldListFilter))
    search_fields = ("camera__name", "zone_name", "event_type", "clip_sha256")
    date_hierarchy = "detected_at"
    list_select_related = ("camera", "camera__site")
    readonly_fields = EVIDENCE_FIELDS
    fields = EVIDENCE_FIELDS + ("review_status", "review_note", "legal_hold")  # a site's managers only (SiteScopedAdmin)
    actions = ("retry_clip_build",)
    inlines = (EventClipInline,)

    @admin.action(description="Retry the clip builds of selected failed alerts")
    def retry_clip_build(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        first = queryset.filter(clip_status=ClipStatus.FAILED).values_list("pk", flat=True)
        event = EventClip.objects.filter(alert__in=queryset, clip_status=ClipStatus.FAILED).values_list("pk", flat=True)
        retried = (sum(clip_job_retry(alert_id=pk) for pk in list(first))
                   + sum(clip_job_retry(alert_id=pk, part=ClipPart.EVENT) for pk in list(event)))
        self.message_user(request, f"{retried} clip build(s) queued again." if retried else
                          "None of the selected alerts has a failed clip build.",
                          messages.SUCCESS if retried else messages.WARNING)

    # Not the FileFields themselves: the admin links those to storage.url(), which on S3 is a signed
    # URL that skips the permission check and the access log. Link to the dashboard's views instead.
    @admin.display(description="clip")
    def clip_file(self, obj: Alert) -> str | None:
        return format_html('<a href="{}">{}</a>', reverse("alerts:clip", args=[obj.pk]), obj.clip.name) if obj.clip else None

    @admin.display(description="thumbnail")
    def thumbnail_file(self, obj: Alert) -> str | None:
        return (format_html('<a href="{}">{}</a>', reverse("alerts:thumbnail", args=[obj.pk]), obj.thumbnail.name)
                if obj.thumbnail else None)

    # The police export's public key (README "Police export"): added by these two methods, not in the
    # field tuples above, so it shows on every alert whatever else the form holds.
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "evidence_public_key")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_fields(request, obj), "evidence_public_key")

    @admin.display(description="export signing key")
    def evidence_public_key(self, obj: Alert) -> str:
        from alerts.export import public_key_fingerprint, public_key_pem

        pem = public_key_pem()
        if not pem:
            return "Not set: police exports are unsigned (set EVIDENCE_SIGNING_KEY)."
        return format_html("<pre>{}</pre>SHA-256 fingerprint {}", pem, public_key_fingerprint(pem))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Evidence is deleted by a superuser only (e.g. under a retention policy), never by site staff.
        return bool(request.user.is_active and request.user.is_superuser)

    def save_model(self, request: HttpRequest, obj: Alert, form: Any, change: bool) -> None:
        if {"review_status", "review_note"} & set(form.changed_data):
            assert isinstance(request.user, User)  # the admin serves signed-in staff only
            obj.reviewed_by = request.user
            obj.reviewed_at = timezone.now()
        super().save_model(request, obj, form, change)
        if "legal_hold" in form.changed_data:
            logger.warning("legal hold %s alert=%s by=%s", "set" if obj.legal_hold else "released", obj.pk,
                           request.user.get_username())


@admin.register(ClipAccess)
class ClipAccessAdmin(SiteScopedAdmin[ClipAccess]):
    site_path = "alert__camera__site"
    allow_add = False
    allow_delete = False
    list_display = ("at", "username", "action", "alert", "ip_address")
    list_filter = ("action", ("alert__camera__site", admin.RelatedOnlyFieldListFilter))
    search_fields = ("username", "ip_address")
    date_hierarchy = "at"
    list_select_related = ("alert", "alert__camera", "alert__camera__site")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the chain of custody is never edited


@admin.register(NotificationTarget)
class NotificationTargetAdmin(SiteScopedAdmin[NotificationTarget]):
    """Where a site's alerts go. Targets without a site come from the environment (superusers only)."""

    list_display = ("name", "site", "channel", "enabled", "min_score", "event_types")
    list_filter = ("channel", "enabled", ("site", admin.RelatedOnlyFieldListFilter))
    fields = ("site", "name", "channel", "address", "secret", "event_types", "min_score", "enabled")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if not request.user.is_superuser and "site" in form.base_fields:
            form.base_fields["site"].required = True  # only the environment's targets serve every site
        return form


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(SiteScopedAdmin[NotificationDelivery]):
    """Every notification sent, retrying or failed, with the error: read-only. A delivery to a device
    belongs to the device's site; one whose device was removed since, to superusers only."""

    site_path = "target__site"
    allow_add = False
    allow_delete = False
    list_display = ("created_at", "target", "subscription", "message", "alert", "status", "attempts", "last_error")
    list_filter = ("status", "message", "target__channel")
    list_select_related = ("target", "subscription__user", "subscription__site", "alert")
    readonly_fields = ("target", "subscription", "alert", "message", "status", "attempts", "last_error", "created_at",
                       "sent_at", "next_attempt_at")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationDelivery]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        sites = managed_sites(request)
        return qs.filter(Q(target__site__in=sites) | Q(subscription__site__in=sites))

    def _site_id_of(self, obj: Model) -> int | None:
        assert isinstance(obj, NotificationDelivery)
        return obj.target.site_id if obj.target else obj.subscription.site_id if obj.subscription else None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebPushSubscription)
class WebPushSubscriptionAdmin(SiteScopedAdmin[WebPushSubscription]):
    """The devices users subscribed on the Notifications page: read-only (a manager may remove one,
    e.g. a lost phone's). The endpoint and the browser's keys are not shown: they let anyone push to it."""

    allow_add = False
    list_display = ("user", "site", "push_service", "event_types", "min_score", "enabled", "created_at",
                    "last_success_at")
    list_filter = ("enabled", ("site", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "site")
    search_fields = ("user__username",)
    readonly_fields = ("user", "site", "push_service", "user_agent", "event_types", "min_score", "enabled",
                       "created_at", "last_success_at")
    fields = readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit log, read-only for superusers (managers read their sites' entries on /audit/).
    Nobody adds, changes or deletes an entry here: `verify_audit` would show it."""

    list_display = ("seq", "at", "username", "action", "site_id", "object_type", "object_id", "summary")
    list_filter = ("action",)
    search_fields = ("username", "summary", "object_id")
    date_hierarchy = "at"
    readonly_fields = ("seq", "at", "actor_id", "username", "action", "site_id", "object_type", "object_id", "summary",
                       "detail", "ip_address", "prev_hash", "entry_hash")
    fields = readonly_fields

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Case)
class CaseAdmin(SiteScopedAdmin[Case]):
    """Cases, to find and read: they change only on the dashboard's case pages, where the rules
    (closed cases stay closed, one site per case) hold and every change is audited."""

    allow_add = False
    allow_delete = False  # deleting a case would release its alerts' clips from the hold without a record
    list_display = ("id", "title", "site", "status", "outcome", "estimated_value", "police_reference", "created_at",
                    "created_by")
    list_filter = ("status", "outcome", ("site", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "police_reference", "items", "person_description")
    date_hierarchy = "created_at"
    list_select_related = ("site", "created_by")
    readonly_fields = ("site", "title", "case_page", "status", "outcome", "estimated_value", "items",
                       "person_description", "police_reference", "notes", "case_alerts", "created_by", "created_at",
                       "updated_at", "closed_by", "closed_at")
    fields = readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="on the dashboard")
    def case_page(self, obj: Case) -> str:
        return format_html('<a href="{}">{}</a>', reverse("alerts:case_detail", args=[obj.pk]), obj.reference)

    @admin.display(description="alerts")
    def case_alerts(self, obj: Case) -> str:
        return ", ".join(f"#{pk}" for pk in obj.alerts.order_by("detected_at", "id").values_list("pk", flat=True))
