"""The zone editor in the camera admin: the camera's latest snapshot with its zones drawn over it.

A manager picks a zone row, then clicks corners on the picture (static/cameras/zone_editor.js
writes them into the row's polygon field as normalized [x, y] points). Saving is the admin's own
form, so Zone.polygon's validator (cameras.validators.validate_polygon) accepts or rejects it.

The snapshot is a JPEG in the clips storage at snapshots/<camera id>.jpg, written by the detector
process through `camera_snapshot_save`. It is inlined into the change page as a data: URI, so it
needs no URL of its own and is shown to exactly the people who may open that page.
"""
from __future__ import annotations

import base64
import logging
from typing import Any

from django import forms
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.http import HttpRequest

from shoplift.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

SNAPSHOT_MAX_BYTES = 2 * 1024 * 1024  # a detector-size frame is tens of KiB; refuse to inline more


def _storage() -> Storage:
    return storages["clips"]


def snapshot_name(camera_id: int) -> str:
    return f"snapshots/{int(camera_id)}.jpg"


def camera_snapshot_save(camera_id: int, jpeg_bytes: bytes) -> str:
    """Replace the camera's latest snapshot. Returns its storage name."""
    if not jpeg_bytes.startswith(b"\xff\xd8"):
        raise ValueError(f"camera {camera_id}: the snapshot is not a JPEG image")
    if len(jpeg_bytes) > SNAPSHOT_MAX_BYTES:
        raise ValueError(f"camera {camera_id}: the snapshot is {len(jpeg_bytes)} bytes; at most {SNAPSHOT_MAX_BYTES}")
    storage, name = _storage(), snapshot_name(camera_id)
    # Storage.save never overwrites (it renames); the page shows the placeholder for the moment between.
    if storage.exists(name):
        storage.delete(name)
    saved = storage.save(name, ContentFile(jpeg_bytes))
    if saved != name:  # another writer got in between: keep the one at the expected name
        storage.delete(saved)
    return name


def camera_snapshot_data_uri(camera_id: int | None) -> str:
    """The snapshot as a data: URI, or "" when there is none (the editor then shows a grey placeholder)."""
    if camera_id is None:
        return ""
    storage, name = _storage(), snapshot_name(camera_id)
    try:
        if not storage.exists(name) or storage.size(name) > SNAPSHOT_MAX_BYTES:
            return ""
        with storage.open(name, "rb") as fh:
            data = fh.read()
    except STORAGE_ERRORS as exc:
        logger.warning("snapshot not readable camera=%s name=%s error=%s", camera_id, name, exc)
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


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


class ZoneEditorInlineMixin:
    """Mix into the Zone inline of the camera admin: polygon widget, editor panel above the rows."""

    template = "admin/cameras/zone_editor_inline.html"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs["widgets"] = {**kwargs.get("widgets", {}), "polygon": ZonePolygonWidget()}
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        return type("ZoneEditorFormSet", (ZoneEditorFormSetMixin, formset), {})
