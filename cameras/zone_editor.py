"""The zone editor in the camera admin: the camera's latest snapshot with its zones drawn over it.

A manager picks a zone row, then clicks corners on the picture (static/cameras/zone_editor.js
writes them into the row's polygon field as normalized [x, y] points). Saving is the admin's own
form, so Zone.polygon's validator (cameras.validators.validate_polygon) accepts or rejects it.

The snapshot is a JPEG in the clips storage at snapshots/<camera id>.jpg, written by the detector
process (cameras.snapshots). It is inlined into the change page as a data: URI, so it
needs no URL of its own and is shown to exactly the people who may open that page.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from cameras.models import Camera, Zone
from cameras.snapshots import camera_snapshot_data_uri


class ZonePolygonWidget(forms.Textarea):
    """The polygon as editable JSON text; the script adds a "Draw on picture" button beside it."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"rows": 2, "cols": 34, "data-zone-polygon": "", "spellcheck": "false", **(attrs or {})})

    class Media:
        js = ("cameras/zone_editor.js",)
        css = {"all": ("cameras/zone_editor.css",)}


class ZoneEditorFormSetMixin:
    """Gives the inline template the camera's snapshot (per request: formsets are per request)."""

    instance: Any

    @property
    def zone_editor_snapshot(self) -> str:
        return camera_snapshot_data_uri(self.instance.pk if self.instance is not None else None)


class ZoneEditorInline(admin.TabularInline[Zone, Camera]):
    """The base of the Zone inline of the camera admin: polygon widget, editor panel above the rows."""

    template = "admin/cameras/zone_editor_inline.html"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs["widgets"] = {**kwargs.get("widgets", {}), "polygon": ZonePolygonWidget()}
        formset = super().get_formset(request, obj, **kwargs)
        return type("ZoneEditorFormSet", (ZoneEditorFormSetMixin, formset), {})
