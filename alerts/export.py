"""The police export: one ZIP per export (of alerts, or of a case and its alerts) holding each alert's
master clip bit-exact, a working copy with the time, camera and reference burned in, the snapshot,
the access history, a printable report and manifest.json, which lists the SHA-256 of every file and
is signed with Ed25519 (manifest.sig, checked with the bundled public_key.pem). `evidence_verify`
checks such a ZIP.

Services only: the view (alerts.export_views) and the command (export_evidence) check permissions.
"""
from __future__ import annotations

import base64
import csv
import ctypes
import ctypes.util
import hashlib
import io
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import av.error
import cv2
import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.html import escape

from alerts.audit import audit_record
from alerts.clip_build import TRANSCODE_TIME_BASE, file_sha256, h264_output
from alerts.clip_jobs import download_filename
from alerts.models import (
    AccessAction,
    Alert,
    AuditAction,
    Case,
    ClipAccess,
    ClipFields,
    ClipPart,
    ClipStatus,
    EventClip,
    clip_storage,
)
from alerts.services import clip_access_record

log = logging.getLogger("shoplift.export")

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public_key.pem"
REPORT = "report.html"
FORMAT = "shoplift-evidence-export/1"
# Not covered by the manifest's hashes: the manifest itself and its signature.
UNHASHED = frozenset({MANIFEST, SIGNATURE})


class ExportError(Exception):
    """An export that cannot be made as asked: a clip not ready, missing or not what was recorded."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    alert_ids: list[int]
    case_id: int | None
    files: dict[str, str]  # name in the ZIP -> SHA-256 (everything but the manifest and its signature)
    manifest_sha256: str
    signed: bool


def signing_key() -> Ed25519PrivateKey | None:
    """The EVIDENCE_SIGNING_KEY setting (checked at start-up), or None when exports go unsigned."""
    raw = settings.EVIDENCE_SIGNING_KEY
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw)) if raw else None


def signing_key_generate() -> str:
    """A new private key in the form EVIDENCE_SIGNING_KEY takes: base64 of its 32 raw bytes."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def public_key_pem(key: Ed25519PrivateKey | None = None) -> str:
    """The signing key's public half as PEM, "" when exports are unsigned."""
    key = key or signing_key()
    if key is None:
        return ""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def public_key_fingerprint(pem: str) -> str:
    """SHA-256 of the public key's PEM text: short enough to read out over the phone."""
    return hashlib.sha256(pem.encode()).hexdigest()


def _stem(alert: Alert) -> str:
    return download_filename(alert).removesuffix(".mp4")


def _model_version(detector: str) -> str | None:
    """The person detector's model files and the packages they came from; unknown for the others."""
    if detector != "person":
        return None
    from detection.detectors.person.modelfiles import MODELS_DIR, PROVENANCE_FILE

    folder = Path(settings.PERSON_MODELS_DIR or MODELS_DIR)
    try:
        records = json.loads((folder / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    entries = records.get("models", []) if isinstance(records, dict) else records
    parts = [f"{entry['file']} ({entry.get('source_package', 'unknown source')}, sha256 {str(entry.get('sha256', ''))[:12]})"
             for entry in entries if isinstance(entry, dict) and "file" in entry]
    return "; ".join(parts) or None


def _iso(moment: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(zone or UTC).isoformat()


def _fetch_master(row: ClipFields, label: str, folder: Path) -> Path:
    """Copy the stored clip out of storage and check it is the file that was hashed when built."""
    if row.clip_status != ClipStatus.READY or not row.clip.name:
        raise ExportError(f"{label}: the clip is not ready ({row.get_clip_status_display().lower()}).")
    storage = clip_storage()
    if not storage.exists(row.clip.name):
        raise ExportError(f"{label}: the clip file {row.clip.name} is missing from storage.")
    target = folder / f"{label.replace(' ', '-').replace('#', '')}.mp4"
    with storage.open(row.clip.name, "rb") as source, target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    actual = file_sha256(target)
    if row.clip_sha256 and actual != row.clip_sha256:
        from alerts.audit import audit_tamper

        audit_tamper(row=row, actual_sha256=actual, via="export")
        raise ExportError(f"{label}: the stored clip has SHA-256 {actual}, but {row.clip_sha256} was recorded when it "
                          "was built: the file in storage was altered; it is not exported.")
    return target


def _overlay_lines(alert: Alert, moment: datetime, zone: ZoneInfo, case: Case | None = None) -> list[str]:
    """The lines burned into each frame of a working copy: the moment in the site's zone and in
    UTC, where, and the reference the report and manifest file it under."""
    camera = alert.camera
    channel = f" (ch {camera.channel})" if camera.channel is not None else ""
    local = moment.astimezone(zone)
    return [
        f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 10000:02d} {local.tzname()} ({alert.camera.site.time_zone})",
        f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}.{moment.microsecond // 10000:02d} UTC",
        f"{camera.site.name} / {camera.name}{channel}",
        f"{case.reference} / Alert #{alert.pk}" if case is not None else f"Alert #{alert.pk}",
    ]


def burn_in(image: np.ndarray, lines: Sequence[str]) -> None:
    """Draw `lines` at the top left of an RGB picture, white on a dark box, in place."""
    height = image.shape[0]
    scale = max(0.35, height / 720 * 0.6)
    thickness = max(1, round(scale * 2))
    pad = max(3, round(6 * scale))
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness) for line in lines]
    line_height = max(h + base for (_, h), base in sizes) + pad
    width = max(w for (w, _), _ in sizes) + 2 * pad
    box_bottom = min(height, line_height * len(lines) + pad)
    box_right = min(image.shape[1], width)
    image[:box_bottom, :box_right] = (image[:box_bottom, :box_right] * 0.25).astype(np.uint8)
    for index, line in enumerate(lines):
        baseline = pad + line_height * index + sizes[index][0][1]
        cv2.putText(image, line, (pad, baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)


def working_copy(*, master: Path, out: Path, alert: Alert, clip_start: datetime, case: Case | None = None) -> None:
    """Re-encode the master to H.264 (yuv420p, faststart) with the time, camera and reference burned in."""
    zone = ZoneInfo(alert.camera.site.time_zone)
    with av.open(str(master)) as source, av.open(str(out), "w", format="mp4",
                                                 options={"movflags": "+faststart"}) as target:
        in_stream = source.streams.video[0]
        rate, out_stream = h264_output(target, in_stream, crf=20)
        last_pts, count = -1, 0
        try:
            for frame in source.decode(in_stream):
                seconds = frame.time if frame.time is not None else count / float(rate)
                image = frame.to_ndarray(format="rgb24")
                burn_in(image, _overlay_lines(alert, clip_start + timedelta(seconds=seconds), zone, case))
                pts = max(int(round(seconds / TRANSCODE_TIME_BASE)), last_pts + 1)
                last_pts = pts
                drawn = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                drawn.pts, drawn.time_base = pts, TRANSCODE_TIME_BASE
                target.mux(out_stream.encode(drawn))
                count += 1
            target.mux(out_stream.encode(None))
        except av.error.FFmpegError as exc:
            raise ExportError(f"alert #{alert.pk}: the master clip does not decode after {count} frames ({exc}).") from exc
    if count == 0:
        raise ExportError(f"alert #{alert.pk}: the master clip holds no decodable frames.")


def _access_csv(alert: Alert) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["at_utc", "username", "action", "part", "ip_address", "user_agent"])
    for row in ClipAccess.objects.filter(alert=alert).order_by("at", "id"):
        writer.writerow([_iso(row.at), row.username, row.action, row.part, row.ip_address or "", row.user_agent])
    return buffer.getvalue().encode()


class _Timex(ctypes.Structure):
    """Linux's struct timex (adjtimex(2)), read-only here (modes 0)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("reserved", ctypes.c_int * 11)]


TIME_ERROR = 5  # adjtimex's answer while the clock is not synchronized
STA_NANO = 0x2000  # the offset is in nanoseconds, not microseconds


def server_clock() -> dict[str, Any]:
    """What is known of the clock the evidence times come from. Clip and event times are this
    server's clock when each packet arrived (not the DVR's on-screen clock, whose offset is not
    measured). Its NTP state is the kernel's (adjtimex), read at export time; None where unknown."""
    clock: dict[str, Any] = {
        "time_source": "the recording server's clock when each video packet arrived (UTC), not the DVR's clock",
        "dvr_clock_offset_seconds": None,
        "server_ntp_synchronized": None, "server_clock_offset_seconds": None,
        "server_clock_max_error_seconds": None, "server_clock_estimated_error_seconds": None,
        "read_at": "export time",
    }
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return clock  # not Linux, or no adjtimex: unknown
    if state < 0:
        return clock
    scale = 1e-9 if timex.status & STA_NANO else 1e-6
    clock.update(server_ntp_synchronized=state != TIME_ERROR, server_clock_offset_seconds=timex.offset * scale,
                 server_clock_max_error_seconds=timex.maxerror * 1e-6,
                 server_clock_estimated_error_seconds=timex.esterror * 1e-6)
    return clock


def _alert_entry(alert: Alert, event: EventClip | None, files: dict[str, str]) -> dict[str, Any]:
    camera, site = alert.camera, alert.camera.site
    zone = ZoneInfo(site.time_zone)
    detector = camera.detector or settings.DETECTOR

    def times(row: ClipFields) -> dict[str, Any]:
        return {"clip_start_utc": _iso(row.clip_start), "clip_end_utc": _iso(row.clip_end),
                "clip_start_local": _iso(row.clip_start, zone), "clip_end_local": _iso(row.clip_end, zone),
                "clip_sha256_recorded": row.clip_sha256, "clip_duration_seconds": row.clip_duration}

    return {
        "alert_id": alert.pk,
        "reference": f"Alert #{alert.pk}",
        "site": {"id": site.pk, "name": site.name, "time_zone": site.time_zone},
        "camera": {"id": camera.pk, "name": camera.name, "dvr_channel": camera.channel},
        "zone": alert.zone_name or None,
        "event_type": alert.event_type,
        "detector": detector,
        "model_version": _model_version(detector),
        "score": alert.score,
        "event_start_utc": _iso(alert.event_start), "event_start_local": _iso(alert.event_start, zone),
        "event_end_utc": _iso(alert.event_end), "event_end_local": _iso(alert.event_end, zone),
        "detected_at_utc": _iso(alert.detected_at), "detected_at_local": _iso(alert.detected_at, zone),
        "review_status": alert.review_status,
        "reviewed_by": alert.reviewed_by.get_username() if alert.reviewed_by else None,
        "reviewed_at_utc": _iso(alert.reviewed_at),
        "review_note": alert.review_note,
        "first_clip": times(alert),
        "whole_event_clip": times(event) if event is not None else None,
        "files": files,
    }


def _not_exportable(alert: Alert) -> str | None:
    """Why this alert's clip cannot go into an export, checked for every alert before any work."""
    if alert.clip_deleted_at is not None:
        return (f"alert #{alert.pk}: its clip was deleted on {alert.clip_deleted_at:%Y-%m-%d} UTC "
                f"({alert.clip_deleted_reason or 'no reason recorded'})")
    if alert.clip_status == ClipStatus.FAILED:
        return f"alert #{alert.pk}: its clip could not be built ({alert.clip_error or 'no error was recorded'})"
    if alert.clip_status != ClipStatus.READY or not alert.clip.name:
        return f"alert #{alert.pk}: its clip is not ready yet ({alert.get_clip_status_display().lower()}); try again shortly"
    return None


def _case_entry(case: Case, alert_ids: list[int]) -> dict[str, Any]:
    """The case as the manifest records it. Its notes stay out: they are the store's working notes."""
    zone = ZoneInfo(case.site.time_zone)
    return {
        "id": case.pk,
        "reference": case.reference,
        "site": {"id": case.site.pk, "name": case.site.name, "time_zone": case.site.time_zone},
        "title": case.title,
        "status": case.status,
        "outcome": case.outcome or None,
        "outcome_label": case.get_outcome_display(),
        "estimated_value": str(case.estimated_value) if case.estimated_value is not None else None,
        "items": case.items,
        "person_description": case.person_description,
        "police_reference": case.police_reference,
        "created_at_utc": _iso(case.created_at), "created_at_local": _iso(case.created_at, zone),
        "created_by": case.created_by.get_username() if case.created_by else None,
        "closed_at_utc": _iso(case.closed_at), "closed_at_local": _iso(case.closed_at, zone),
        "closed_by": case.closed_by.get_username() if case.closed_by else None,
        "alert_ids": alert_ids,
    }


def _case_section(case: dict[str, Any]) -> str:
    items = "".join(f"<tr><th>{escape(label)}</th><td>{escape(str(value))}</td></tr>" for label, value in [
        ("Reference", case["reference"]),
        ("What happened", case["title"]),
        ("Site", f"{case['site']['name']} ({case['site']['time_zone']})"),
        ("Status", case["status"]),
        ("Outcome", case["outcome_label"]),
        ("Estimated value", case["estimated_value"] or "not given"),
        ("Items", case["items"] or "not given"),
        ("Description of the person", case["person_description"] or "not given"),
        ("Police reference", case["police_reference"] or "not given"),
        ("Opened (local)", f"{case['created_at_local']}" + (f" by {case['created_by']}" if case["created_by"] else "")),
        ("Closed (local)", (f"{case['closed_at_local']}" + (f" by {case['closed_by']}" if case["closed_by"] else ""))
         if case["closed_at_local"] else "open"),
        ("Alerts", ", ".join(f"#{pk}" for pk in case["alert_ids"])),
    ])
    return f"<section><h2>{escape(case['reference'])}</h2><table class=case>{items}</table></section>"


def _clock_sentence(clock: dict[str, Any]) -> str:
    synced = clock.get("server_ntp_synchronized")
    state = ("unknown" if synced is None else
             f"{'yes' if synced else 'NO'}, estimated error {clock['server_clock_estimated_error_seconds']:.3f} s")
    return (f"Times are {clock['time_source']}. The DVR's clock offset was not measured. Server clock synchronized "
            f"by NTP at export time: {state}.")


def _report(manifest: dict[str, Any]) -> bytes:
    """A printable summary for a reader without tools: what was exported, when, by whom, with hashes."""
    rows: list[str] = [_case_section(manifest["case"])] if manifest.get("case") else []
    for entry in manifest["alerts"]:
        items = "".join(f"<tr><th>{escape(label)}</th><td>{escape(str(value))}</td></tr>" for label, value in [
            ("Reference", entry["reference"]),
            ("Site", f"{entry['site']['name']} ({entry['site']['time_zone']})"),
            ("Camera", entry["camera"]["name"] + (f", DVR channel {entry['camera']['dvr_channel']}"
                                                  if entry["camera"]["dvr_channel"] is not None else "")),
            ("Zone", entry["zone"] or "whole frame"),
            ("Event", entry["event_type"]),
            ("Event start (local)", entry["event_start_local"]),
            ("Event start (UTC)", entry["event_start_utc"]),
            ("Detector", entry["detector"] + (f" ({entry['model_version']})" if entry["model_version"] else "")),
            ("Score", f"{entry['score']:.3f}"),
            ("Review", f"{entry['review_status']}" + (f" by {entry['reviewed_by']}" if entry["reviewed_by"] else "")),
            ("Clip (UTC)", f"{entry['first_clip']['clip_start_utc']} to {entry['first_clip']['clip_end_utc']}"),
        ])
        files = "".join(f"<tr><td>{escape(role)}</td><td class=mono>{escape(name)}</td><td class=mono>"
                        f"{escape(manifest['files'][name])}</td></tr>" for role, name in entry["files"].items())
        rows.append(f"<section><h2>{escape(entry['reference'])}</h2><table>{items}</table><h3>Files</h3>"
                    f"<table><tr><th>what</th><th>file</th><th>SHA-256</th></tr>{files}</table></section>")
    signed = (f"Signed with Ed25519; public key SHA-256 fingerprint <span class=mono>"
              f"{escape(manifest['public_key_sha256'])}</span>." if manifest["signed"]
              else "<strong>Not signed</strong>: no signing key was configured when this export was made.")
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evidence export {escape(manifest['export_id'])}</title>
<style>body{{font:14px/1.4 sans-serif;margin:2em;color:#111}} table{{border-collapse:collapse;margin:.5em 0 1em}}
th,td{{border:1px solid #999;padding:.25em .5em;text-align:left;vertical-align:top}} .mono{{font-family:monospace;
word-break:break-all}} table.case td{{white-space:pre-wrap}} section{{page-break-inside:avoid}} @media print{{body{{margin:0}}}}</style></head><body>
<h1>Evidence export</h1>
<p>Exported by <strong>{escape(manifest['exported_by'])}</strong> at {escape(manifest['exported_at_utc'])} (UTC).
{signed}</p>
<p>{escape(_clock_sentence(manifest['clock']))}</p>
<p>Each master clip is the file recorded by the system, unchanged (compare its SHA-256 below with the one recorded
when it was built). Working copies are re-encoded with the date, time, camera and reference burned into the picture.
To check the bundle: <span class=mono>python manage.py verify_export FILE.zip</span>, or check each SHA-256 against
manifest.json and the signature with <span class=mono>openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin
-in manifest.json -sigfile manifest.sig</span>.</p>
{''.join(rows)}
</body></html>
"""
    return html.encode()


def _case_alert_ids(case: Case, alert_ids: Sequence[int]) -> list[int]:
    in_case = list(case.alerts.order_by("detected_at", "id").values_list("pk", flat=True))
    if not alert_ids:
        if not in_case:
            raise ExportError(f"{case.reference} has no alerts to export.")
        return in_case
    outside = [str(pk) for pk in alert_ids if pk not in in_case]
    if outside:
        raise ExportError(f"Alert #{', #'.join(outside)} {'is' if len(outside) == 1 else 'are'} not in {case.reference}.")
    return list(dict.fromkeys(alert_ids))


def evidence_export(*, alert_ids: Sequence[int] = (), user: User, out: Path, ip_address: str | None = None,
                    user_agent: str = "", case: Case | None = None) -> ExportResult:
    """Write the export ZIP of these alerts to `out` and record an "export" access per alert.

    With a `case`, the export is the case's: its alerts (all of them unless `alert_ids` names some),
    the case in the manifest and the report, and the case's reference burned into each working copy.
    """
    ids = _case_alert_ids(case, alert_ids) if case is not None else list(dict.fromkeys(alert_ids))
    if not ids:
        raise ExportError("No alerts to export.")
    alerts = {alert.pk: alert for alert in
              Alert.objects.select_related("camera__site", "reviewed_by").filter(pk__in=ids)}
    missing = [str(pk) for pk in ids if pk not in alerts]
    if missing:
        raise ExportError(f"No such alert: #{', #'.join(missing)}.")
    unready = [problem for problem in (_not_exportable(alerts[pk]) for pk in ids) if problem]
    if unready:
        raise ExportError((f"{case.reference}: " if case is not None else "") + "; ".join(unready) + ".")
    key = signing_key()
    pem = public_key_pem(key)
    now = timezone.now()
    contents: dict[str, bytes | Path] = {}
    entries: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shoplift-export-") as work:
        folder = Path(work)
        for pk in ids:
            alert = alerts[pk]
            stem = _stem(alert)
            event = EventClip.objects.filter(alert=alert).first()
            roles: dict[str, str] = {}
            master = _fetch_master(alert, f"alert #{pk}", folder)
            roles["master"] = f"{stem}-master.mp4"
            contents[roles["master"]] = master
            assert alert.clip_start is not None  # a ready clip has its window
            working = folder / f"{pk}-working.mp4"
            working_copy(master=master, out=working, alert=alert, clip_start=alert.clip_start, case=case)
            roles["working"] = f"{stem}-working.mp4"
            contents[roles["working"]] = working
            if event is not None and event.clip_status == ClipStatus.READY:
                event_master = _fetch_master(event, f"alert #{pk} whole event", folder)
                roles["event_master"] = f"{stem}-event-master.mp4"
                contents[roles["event_master"]] = event_master
                if event.clip_start is not None:
                    event_working = folder / f"{pk}-event-working.mp4"
                    working_copy(master=event_master, out=event_working, alert=alert, clip_start=event.clip_start,
                                 case=case)
                    roles["event_working"] = f"{stem}-event-working.mp4"
                    contents[roles["event_working"]] = event_working
            storage = clip_storage()
            if alert.thumbnail.name and storage.exists(alert.thumbnail.name):
                with storage.open(alert.thumbnail.name, "rb") as fh:
                    snapshot: bytes = fh.read()
                suffix = Path(alert.thumbnail.name).suffix or ".jpg"
                roles["snapshot"] = f"{stem}-snapshot{suffix}"
                contents[roles["snapshot"]] = snapshot
            roles["access_history"] = f"{stem}-access.csv"
            contents[roles["access_history"]] = _access_csv(alert)
            entries.append(_alert_entry(alert, event, roles))
        if pem:
            contents[PUBLIC_KEY] = pem.encode()
        hashes = {name: (file_sha256(data) if isinstance(data, Path) else hashlib.sha256(data).hexdigest())
                  for name, data in contents.items()}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "export_id": f"{now:%Y%m%dT%H%M%SZ}-" + (f"case-{case.pk}" if case is not None else '-'.join(map(str, ids))),
            "case_id": case.pk if case is not None else None,
            "alert_ids": ids,
            "exported_by": user.get_username(),
            "exported_by_id": user.pk,
            "exported_at_utc": _iso(now),
            "clock": server_clock(),
            "signed": key is not None,
            "signature": {"algorithm": "Ed25519", "file": SIGNATURE, "public_key_file": PUBLIC_KEY,
                          "signs": f"the bytes of {MANIFEST}"} if key is not None else None,
            "public_key_sha256": public_key_fingerprint(pem) if pem else None,
            "case": _case_entry(case, ids) if case is not None else None,
            "alerts": entries,
            "files": {},  # filled below, once the report is hashed too
        }
        # The report lists every other file's hash; its own is in the manifest.
        manifest["files"] = dict(hashes)
        report = _report(manifest)
        contents[REPORT] = report
        hashes[REPORT] = hashlib.sha256(report).hexdigest()
        manifest["files"] = dict(sorted(hashes.items()))
        manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
        partial = out.with_name(out.name + ".partial")
        try:
            with zipfile.ZipFile(partial, "w") as bundle:
                for name, data in contents.items():
                    compress = zipfile.ZIP_STORED if name.endswith(".mp4") else zipfile.ZIP_DEFLATED
                    if isinstance(data, Path):
                        bundle.write(data, name, compress_type=compress)
                    else:
                        bundle.writestr(name, data, compress_type=compress)
                bundle.writestr(MANIFEST, manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
                if key is not None:
                    bundle.writestr(SIGNATURE, key.sign(manifest_bytes), compress_type=zipfile.ZIP_STORED)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    with transaction.atomic():
        for pk in ids:
            clip_access_record(alert=alerts[pk], user=user, action=AccessAction.EXPORT, ip_address=ip_address,
                               user_agent=user_agent, part=ClipPart.FIRST)
        if case is not None:  # each alert's export is in its access log; the case's is recorded here
            audit_record(action=AuditAction.EXPORT, summary=f"Exported {case.reference} (alerts #{', #'.join(map(str, ids))})",
                         user=user, site_id=case.site_id, object_type="case", object_id=case.pk, ip_address=ip_address,
                         detail={"alert_ids": ids, "manifest_sha256": manifest_sha256, "signed": key is not None,
                                 "file": out.name})
    log.info("evidence export case=%s alerts=%s user=%s signed=%s manifest_sha256=%s out=%s",
             case.pk if case is not None else None, ids, user.get_username(), key is not None, manifest_sha256, out)
    return ExportResult(path=out, alert_ids=ids, case_id=case.pk if case is not None else None,
                        files=manifest["files"], manifest_sha256=manifest_sha256, signed=key is not None)


def evidence_verify(path: Path, *, allow_unsigned: bool = False, public_key: str | None = None) -> list[str]:
    """What is wrong with an export ZIP: each problem names the file; empty when every hash and the
    signature check. `public_key` (PEM) pins the key instead of trusting the bundled one."""
    try:
        bundle = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"{path}: not a readable ZIP file ({exc})"]
    problems: list[str] = []
    with bundle:
        listed = bundle.namelist()
        names = set(listed)
        # Two members of one name: tools disagree on which one a reader gets.
        problems.extend(f"{name}: in the bundle more than once" for name in sorted(names) if listed.count(name) > 1)
        if MANIFEST not in names:
            return [*problems, f"{MANIFEST}: missing from the bundle"]
        manifest_bytes = bundle.read(MANIFEST)
        try:
            manifest = json.loads(manifest_bytes)
            files = manifest["files"]
            if not isinstance(files, dict):
                raise TypeError("files is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            return [*problems, f"{MANIFEST}: not a valid manifest ({exc})"]
        for name, expected in sorted(files.items()):
            if name not in names:
                problems.append(f"{name}: listed in {MANIFEST} but missing from the bundle")
                continue
            digest = hashlib.sha256()
            with bundle.open(name) as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() != expected:
                problems.append(f"{name}: altered (SHA-256 {digest.hexdigest()}, {MANIFEST} records {expected})")
        for name in sorted(names - set(files) - UNHASHED):
            problems.append(f"{name}: in the bundle but not listed in {MANIFEST} (added)")
        problems.extend(_check_signature(bundle, names, manifest_bytes, manifest, allow_unsigned, public_key))
    return problems


def _check_signature(bundle: zipfile.ZipFile, names: set[str], manifest_bytes: bytes, manifest: dict[str, Any],
                     allow_unsigned: bool, pinned: str | None) -> list[str]:
    if SIGNATURE not in names:
        if allow_unsigned:
            return []
        claimed = " although the manifest says it is signed" if manifest.get("signed") else ""
        return [f"{SIGNATURE}: unsigned: the bundle has no signature{claimed}"]
    pem = pinned if pinned is not None else (bundle.read(PUBLIC_KEY).decode(errors="replace")
                                             if PUBLIC_KEY in names else None)
    if pem is None:
        return [f"{PUBLIC_KEY}: missing, so {SIGNATURE} cannot be checked"]
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        return [f"{PUBLIC_KEY}: not a PEM public key ({exc})"]
    if not isinstance(key, Ed25519PublicKey):
        return [f"{PUBLIC_KEY}: not an Ed25519 public key"]
    try:
        key.verify(bundle.read(SIGNATURE), manifest_bytes)
    except InvalidSignature:
        return [f"{MANIFEST} or {SIGNATURE}: altered: the signature does not verify with "
                f"{'the given public key' if pinned is not None else PUBLIC_KEY}"]
    return []
