"""Each camera's latest picture, a JPEG in the clips storage at snapshots/<camera id>.jpg.

The detector supervisor writes it (`camera_snapshot_save`, on its writer thread, from the newest
keyframe in the ring); the zone editor in the camera admin reads it (`camera_snapshot_data_uri`)
and inlines it into the change page, so it needs no URL of its own.
"""
from __future__ import annotations

import base64
import logging

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

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
