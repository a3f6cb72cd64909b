"""Admin for sites, cameras and zones. Managers see and edit only the sites they manage."""
from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from cameras.models import Camera, Role, Site, SiteMembership, Zone
from cameras.selectors import site_list_for
from cameras.zone_editor import ZoneEditorInline
from shoplift.masking import MaskedPasswordError, mask_url, unmask_url

CREDENTIAL_FIELDS = frozenset({"stream_url", "detect_url"})  # Camera fields whose URLs carry DVR passwords

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


class SiteScopedAdmin(admin.ModelAdmin[M]):
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
        count = queryset.update(enabled=True)
        self.message_user(request, f"{count} camera(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable selected cameras")
    def disable_cameras(self, request: HttpRequest, queryset: QuerySet[Camera]) -> None:
        count = queryset.update(enabled=False)
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
class SiteMembershipAdmin(admin.ModelAdmin[SiteMembership]):
    list_display = ("user", "site", "role")
    list_filter = ("role", "site")
    search_fields = ("user__username", "site__name")
    autocomplete_fields = ("user", "site")
    list_select_related = ("user", "site")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission
