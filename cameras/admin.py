"""Admin for sites, cameras and zones. Managers see and edit only the sites they manage.

Every change made here is written to the audit log (AuditedAdmin), with the old and new values.
"""
from __future__ import annotations

import hashlib
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from alerts.audit import audit_record
from alerts.auth import client_ip
from alerts.models import AuditAction
from cameras.models import Camera, Role, Site, SiteMembership, Zone
from cameras.selectors import site_list_for
from cameras.zone_editor import ZoneEditorInline
from shoplift.masking import MaskedPasswordError, mask_url, unmask_url

CREDENTIAL_FIELDS = frozenset({"stream_url", "detect_url"})  # Camera fields whose URLs carry DVR passwords
# Fields whose values never reach the audit log, only that they changed (a webhook's signing secret).
SECRET_FIELDS = frozenset({"secret", "password", "token", "auth", "p256dh", "api_key", "private_key"})

M = TypeVar("M", bound=Model)


def managed_sites(request: HttpRequest) -> QuerySet[Site]:
    return site_list_for(user=request.user, min_role=Role.MANAGER)


def user_manages(request: HttpRequest, site_id: int | None) -> bool:
    """Whether the user manages this site (or, with None, any site) and so may use the admin for it."""
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    sites = managed_sites(request)
    return sites.exists() if site_id is None else sites.filter(pk=site_id).exists()


def _shown_url(value: str) -> str:
    """A web URL as the audit log shows it: a webhook's path and query often are its secret, so
    only the host is kept, with a fingerprint that tells one URL from another."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return f"(unreadable URL, sha256 {hashlib.sha256(value.encode()).hexdigest()[:12]})"
    if not (parts.path.strip("/") or parts.query or parts.fragment):
        return mask_url(value)
    host = f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return f"{parts.scheme}://{host}/… (sha256 {hashlib.sha256(value.encode()).hexdigest()[:12]})"


def audit_value(obj: Model, name: str) -> Any:
    """A field's value as the audit log shows it: related objects by name and id, passwords in URLs
    masked, secrets not at all."""
    field = obj._meta.get_field(name)
    if field.many_to_many:
        return sorted(getattr(obj, name).values_list("pk", flat=True)) if obj.pk is not None else []
    value = getattr(obj, getattr(field, "attname", name))
    if value is None or value == "":
        return value
    if name in SECRET_FIELDS:
        return "(set)"
    if field.is_relation:
        return f"{getattr(obj, name)} (#{value})"
    if name in CREDENTIAL_FIELDS:
        return mask_url(str(value))
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return _shown_url(value)
    return value


def _audited_fields(model: type[Model], names: list[str]) -> list[str]:
    """The model fields among a form's changed fields (a form may have fields of its own)."""
    fields = []
    for name in names:
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.concrete or field.many_to_many:
            fields.append(name)
    return fields


def _raw(obj: Model, name: str) -> Any:
    field = obj._meta.get_field(name)
    if field.many_to_many:
        return audit_value(obj, name)
    return getattr(obj, getattr(field, "attname", name))


def audit_changes(old: Model, new: Model, names: list[str]) -> dict[str, Any]:
    """{field: {"old": ..., "new": ...}} for the fields whose values differ; a secret is only "(changed)"."""
    changes: dict[str, Any] = {}
    for name in _audited_fields(type(new), names):
        if _raw(old, name) == _raw(new, name):
            continue
        changes[name] = "(changed)" if name in SECRET_FIELDS else {"old": audit_value(old, name),
                                                                    "new": audit_value(new, name)}
    return changes


def _described(changes: dict[str, Any]) -> str:
    return "; ".join(f"{name} {change}" if isinstance(change, str) else f"{name} {change['old']!r} -> {change['new']!r}"
                     for name, change in changes.items())


class AuditedAdmin(admin.ModelAdmin[M]):
    """Writes each add, change and delete made through this admin (its inlines and actions too) to
    the audit log, with the old and new values of the changed fields. The admin's views run in a
    transaction, so the change and its entry commit together; bulk paths open their own."""

    def _site_id_of(self, obj: Model) -> int | None:
        """The site whose managers see the object's entries; None: superusers only."""
        return None

    def _audit(self, request: HttpRequest, action: AuditAction, obj: Model, *, object_id: object, site_id: int | None,
               label: str, summary: str, detail: dict[str, Any]) -> None:
        meta = obj._meta
        audit_record(action=action, user=request.user, site_id=site_id, object_type=meta.model_name or "",
                     object_id=object_id, summary=summary, ip_address=client_ip(request),
                     detail={"model": meta.label, "object": label, **detail})

    def _audit_saved(self, request: HttpRequest, obj: Model, old: Model | None, changed: list[str],
                     site_id: int | None) -> None:
        label = str(obj)
        if old is None:
            values = {name: audit_value(obj, name) for name in _audited_fields(type(obj), changed)}
            self._audit(request, AuditAction.ADMIN_ADD, obj, object_id=obj.pk, site_id=site_id, label=label,
                        summary=f"Added {obj._meta.verbose_name} '{label}'", detail={"values": values})
            return
        changes = audit_changes(old, obj, changed)
        if changes:
            self._audit(request, AuditAction.ADMIN_CHANGE, obj, object_id=obj.pk, site_id=site_id, label=label,
                        summary=f"Changed {obj._meta.verbose_name} '{label}': {_described(changes)}",
                        detail={"changes": changes})

    def _audit_deleted(self, request: HttpRequest, obj: Model, deleted: tuple[object, str, int | None]) -> None:
        """`deleted`: the object's id, name and site, taken before it went (a deleted object has no id)."""
        object_id, label, site_id = deleted
        self._audit(request, AuditAction.ADMIN_DELETE, obj, object_id=object_id, site_id=site_id, label=label,
                    summary=f"Deleted {obj._meta.verbose_name} '{label}'", detail={})

    def save_model(self, request: HttpRequest, obj: M, form: Any, change: bool) -> None:
        old = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        super().save_model(request, obj, form, change)
        self._audit_saved(request, obj, old, list(form.changed_data), self._site_id_of(obj))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """An inline's rows (zones, memberships), each with its own entry at the parent's site."""
        site_id = self._site_id_of(form.instance)
        deleted = [(f.instance, (f.instance.pk, str(f.instance), site_id)) for f in formset.deleted_forms
                   if f.instance.pk is not None]
        deleted_pks = {pk for _, (pk, _, _) in deleted}
        olds = {f.instance.pk: type(f.instance)._default_manager.filter(pk=f.instance.pk).first()
                for f in formset.initial_forms if f.instance.pk not in deleted_pks and f.has_changed()}
        added = [f for f in formset.extra_forms if f.has_changed() and f not in formset.deleted_forms]
        super().save_formset(request, form, formset, change)
        for inline_form in formset.initial_forms:
            old = olds.get(inline_form.instance.pk)
            if old is not None:
                self._audit_saved(request, inline_form.instance, old, list(inline_form.changed_data), site_id)
        for inline_form in added:
            self._audit_saved(request, inline_form.instance, None, list(inline_form.changed_data), site_id)
        for obj, taken in deleted:
            self._audit_deleted(request, obj, taken)

    def delete_model(self, request: HttpRequest, obj: M) -> None:
        taken = (obj.pk, str(obj), self._site_id_of(obj))
        super().delete_model(request, obj)
        self._audit_deleted(request, obj, taken)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[M]) -> None:
        with transaction.atomic(using=queryset.db):
            doomed = [(obj, (obj.pk, str(obj), self._site_id_of(obj))) for obj in queryset]
            super().delete_queryset(request, queryset)
            for obj, taken in doomed:
                self._audit_deleted(request, obj, taken)

    def audited_update(self, request: HttpRequest, queryset: QuerySet[M], **values: Any) -> int:
        """queryset.update(**values) for an admin action, with an entry for each object it changed."""
        with transaction.atomic(using=queryset.db):
            objs = list(queryset)
            count = queryset.update(**values)
            for obj in objs:
                old = type(obj)(**{f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields})
                for name, value in values.items():
                    setattr(obj, name, value)
                self._audit_saved(request, obj, old, list(values), self._site_id_of(obj))
        return count


class SiteScopedAdmin(AuditedAdmin[M]):
    """Limits a model admin to the sites the user manages.

    `site_path` is the lookup from the model to its Site ("site", "camera__site", ...).
    Permissions come from site memberships, not Django's per-model permissions: a manager of
    site A gets the same rights as a superuser, but only over site A's objects.
    """

    site_path = "site"
    allow_add = True
    allow_delete = True

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Never filter on a credential-bearing field: `?stream_url__contains=a` answering
        "1 camera" or "0 cameras" recovers a masked password one character at a time."""
        if any(part in CREDENTIAL_FIELDS for part in lookup.split("__")):
            return False
        return super().lookup_allowed(lookup, value, request)

    def _site_id_of(self, obj: Model) -> int | None:
        """The object's site, or None for an object of no site (one the environment configures)."""
        target: Any = obj
        if self.site_path != "pk":  # the Site admin: the object is the site
            for part in self.site_path.split("__"):
                target = getattr(target, part)
                if target is None:
                    return None
        return int(target.pk)

    def _manages(self, request: HttpRequest, obj: Model | None) -> bool:
        if obj is None:
            return user_manages(request, None)
        site_id = self._site_id_of(obj)
        if site_id is None:  # serves every site: only a superuser may see or change it
            return bool(request.user.is_active and request.user.is_superuser)
        return user_manages(request, site_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[M]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.site_path}__in": managed_sites(request)})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._manages(request, None)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._manages(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._manages(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.allow_add and self._manages(request, None)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.allow_delete and self._manages(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            if db_field.remote_field.model is Site:
                kwargs["queryset"] = managed_sites(request)
            elif db_field.remote_field.model is Camera:
                kwargs["queryset"] = Camera.objects.filter(site__in=managed_sites(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ZoneInline(ZoneEditorInline):  # the zone editor: snapshot + click-to-draw polygons
    model = Zone
    extra = 0
    fields = ("name", "kind", "enabled", "polygon", "threshold", "event_types")

    def _camera_manager(self, request: HttpRequest, obj: Camera | None) -> bool:
        return user_manages(request, None if obj is None else obj.site_id)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._camera_manager(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._camera_manager(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._camera_manager(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._camera_manager(request, obj)


class CameraAdminForm(forms.ModelForm[Camera]):
    """Shows stream URLs with the password masked; submitting the mask keeps the stored password."""

    class Meta:
        model = Camera
        fields = "__all__"
        widgets = {"stream_url": forms.TextInput(attrs={"size": 80}), "detect_url": forms.TextInput(attrs={"size": 80})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("stream_url", "detect_url"):
            stored = getattr(self.instance, name, "")
            if stored and not self.is_bound:
                self.initial[name] = mask_url(stored)

    def _unmasked(self, name: str) -> str:
        submitted: str = self.cleaned_data.get(name, "")
        stored = Camera.objects.filter(pk=self.instance.pk).values_list(name, flat=True).first() if self.instance.pk else ""
        try:
            return unmask_url(submitted, stored or "")
        except MaskedPasswordError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_stream_url(self) -> str:
        return self._unmasked("stream_url")

    def clean_detect_url(self) -> str:
        return self._unmasked("detect_url")


@admin.register(Camera)
class CameraAdmin(SiteScopedAdmin[Camera]):
    form = CameraAdminForm
    inlines = [ZoneInline]
    list_display = ("name", "site", "channel", "masked_stream_url", "enabled", "online", "last_frame_at")
    list_filter = (("site", admin.RelatedOnlyFieldListFilter), "enabled", "online")
    search_fields = ("name", "site__name")
    list_select_related = ("site",)
    readonly_fields = ("online", "last_frame_at", "last_error", "status_updated_at")
    actions = ("enable_cameras", "disable_cameras")
    fieldsets = (
        (None, {"fields": ("site", "name", "channel", "enabled")}),
        ("Streams", {"fields": ("stream_url", "detect_url")}),
        ("Detection", {"fields": ("detector", "detection_fps", "threshold")}),
        ("Clip timing (empty uses the deployment defaults)",
         {"fields": ("pre_seconds", "during_seconds", "post_seconds", "ring_seconds")}),
        ("Live status", {"fields": ("online", "last_frame_at", "last_error", "status_updated_at")}),
    )

    @admin.display(description="stream URL")
    def masked_stream_url(self, obj: Camera) -> str:
        return obj.masked_stream_url

    @admin.action(description="Enable selected cameras")
    def enable_cameras(self, request: HttpRequest, queryset: QuerySet[Camera]) -> None:
        count = self.audited_update(request, queryset, enabled=True)
        self.message_user(request, f"{count} camera(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable selected cameras")
    def disable_cameras(self, request: HttpRequest, queryset: QuerySet[Camera]) -> None:
        count = self.audited_update(request, queryset, enabled=False)
        self.message_user(request, f"{count} camera(s) disabled.", messages.SUCCESS)


class SiteMembershipInline(admin.TabularInline[SiteMembership, Site]):
    model = SiteMembership
    extra = 0
    autocomplete_fields = ("user",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission


@admin.register(Site)
class SiteAdmin(SiteScopedAdmin[Site]):
    site_path = "pk"
    list_display = ("name", "time_zone", "camera_count")
    search_fields = ("name",)
    inlines = [SiteMembershipInline]

    # Managers may edit their own site (its time zone); creating and deleting sites, and how long their
    # evidence is kept, is the superuser's call.
    def get_readonly_fields(self, request: HttpRequest, obj: Site | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, "retention_days")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.display(description="cameras")
    def camera_count(self, obj: Site) -> int:
        return obj.cameras.count()


@admin.register(SiteMembership)
class SiteMembershipAdmin(AuditedAdmin[SiteMembership]):
    list_display = ("user", "site", "role")
    list_filter = ("role", "site")
    search_fields = ("user__username", "site__name")
    autocomplete_fields = ("user", "site")
    list_select_related = ("user", "site")

    def _site_id_of(self, obj: Model) -> int | None:
        assert isinstance(obj, SiteMembership)
        return obj.site_id

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission
