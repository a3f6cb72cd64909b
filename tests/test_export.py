"""The police export: a ZIP with the master clip bit-exact, a burned-in working copy, the snapshot,
the access history, a report and a signed manifest; verify_export names whatever was altered."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from pytest_django.fixtures import Settings

from alerts.export import evidence_export, evidence_verify, signing_key_generate
from alerts.models import AccessAction, Alert, ClipAccess
from tests.support.clips import World

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def signing(settings: Settings) -> str:
    key = signing_key_generate()
    settings.EVIDENCE_SIGNING_KEY = key
    return key


@pytest.fixture
def bundle(world: World, signing: str, tmp_path: Path) -> Path:
    out = tmp_path / "export.zip"
    evidence_export(alert_ids=[world.alert_a.pk], user=world.users["reviewer"], out=out)  # type: ignore[arg-type]
    return out


def _read(bundle: Path, suffix: str) -> tuple[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        name = next(n for n in zf.namelist() if n.endswith(suffix))
        return name, zf.read(name)


def _first_frame(data: bytes) -> tuple[np.ndarray, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        frame = next(container.decode(stream))
        return frame.to_ndarray(format="rgb24").astype(np.int16), codec


def _rewrite(bundle: Path, out: Path, name: str, change: object) -> Path:
    """A copy of the bundle with one member's bytes changed by `change(bytes) -> bytes`."""
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, change(data) if item.filename == name else data)  # type: ignore[operator]
    return out


def _verify(path: Path, *args: str) -> tuple[int, str]:
    try:
        call_command("verify_export", str(path), *args, stdout=io.StringIO())
    except CommandError as exc:
        return 1, str(exc)
    return 0, ""


def test_it_bundles_the_expected_files(world: World, bundle: Path) -> None:
    names = set(zipfile.ZipFile(bundle).namelist())
    stem = f"riverside_aisle-3_2024-06-01_140005_concealment_{world.alert_a.pk}"

    assert names == {f"{stem}-master.mp4", f"{stem}-working.mp4", f"{stem}-snapshot.jpg", f"{stem}-access.csv",
                     "manifest.json", "manifest.sig", "public_key.pem", "report.html"}


def test_it_keeps_the_master_bit_exact(world: World, bundle: Path) -> None:
    _, master = _read(bundle, "-master.mp4")

    assert hashlib.sha256(master).hexdigest() == world.alert_a.clip_sha256


def test_it_burns_the_time_and_camera_into_an_h264_working_copy(world: World, bundle: Path) -> None:
    working, codec = _first_frame(_read(bundle, "-working.mp4")[1])
    master, _ = _first_frame(_read(bundle, "-master.mp4")[1])

    assert codec == "h264"
    assert working.shape == master.shape
    text_area = np.abs(working[40:70, 5:200] - master[40:70, 5:200]).mean()
    elsewhere = np.abs(working[150:, :] - master[150:, :]).mean()
    assert text_area > 30, text_area
    assert elsewhere < 6, elsewhere


def test_it_lists_every_file_and_the_alert_in_the_manifest(world: World, bundle: Path) -> None:
    _, raw = _read(bundle, "manifest.json")
    manifest = json.loads(raw)
    with zipfile.ZipFile(bundle) as zf:
        actual = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()
                  if n not in ("manifest.json", "manifest.sig")}

    assert manifest["files"] == actual
    entry = manifest["alerts"][0]
    assert manifest["alert_ids"] == [world.alert_a.pk] and manifest["exported_by"] == "reviewer"
    assert manifest["signed"] is True
    assert entry["site"]["name"] == "Riverside" and entry["camera"]["name"] == "Aisle 3"
    assert "dvr_channel" in entry["camera"]
    assert entry["event_start_utc"] == "2024-06-01T13:00:05+00:00"
    assert entry["event_start_local"] == "2024-06-01T14:00:05+01:00"
    assert entry["score"] == pytest.approx(0.87) and entry["detector"]


def test_it_says_which_clock_the_times_come_from_and_whether_it_was_synchronized(bundle: Path) -> None:
    clock = json.loads(_read(bundle, "manifest.json")[1])["clock"]
    report = _read(bundle, "report.html")[1].decode()

    assert "server's clock" in clock["time_source"]
    assert clock["dvr_clock_offset_seconds"] is None  # not measured: said, not guessed
    # This machine's kernel answers adjtimex; whether it is synchronized depends on the machine.
    assert isinstance(clock["server_ntp_synchronized"], bool)
    assert clock["server_clock_estimated_error_seconds"] >= 0
    assert "Server clock synchronized by NTP at export time: " in report


def test_it_signs_the_manifest_with_the_bundled_public_key(bundle: Path) -> None:
    _, manifest = _read(bundle, "manifest.json")
    _, signature = _read(bundle, "manifest.sig")
    _, pem = _read(bundle, "public_key.pem")
    key = load_pem_public_key(pem)

    assert isinstance(key, Ed25519PublicKey)
    key.verify(signature, manifest)  # raises when it does not verify


def test_it_records_the_export_in_the_access_log(world: World, bundle: Path) -> None:
    access = ClipAccess.objects.get(alert=world.alert_a, action=AccessAction.EXPORT)

    assert access.username == "reviewer"


def test_it_verifies_an_untouched_bundle(bundle: Path) -> None:
    assert evidence_verify(bundle) == []
    assert _verify(bundle) == (0, "")


def test_it_names_a_master_altered_by_one_byte(bundle: Path, tmp_path: Path) -> None:
    name, _ = _read(bundle, "-master.mp4")
    altered = _rewrite(bundle, tmp_path / "altered.zip", name, lambda d: d[:5000] + bytes([d[5000] ^ 1]) + d[5001:])

    code, message = _verify(altered)

    assert code != 0
    assert f"{name}: altered" in message


def test_it_names_an_edited_manifest(bundle: Path, tmp_path: Path) -> None:
    altered = _rewrite(bundle, tmp_path / "altered.zip", "manifest.json",
                       lambda d: d.replace(b'"exported_by": "reviewer"', b'"exported_by": "someone"'))

    code, message = _verify(altered)

    assert code != 0 and "manifest.json" in message


def test_it_names_a_replaced_signature(bundle: Path, tmp_path: Path) -> None:
    altered = _rewrite(bundle, tmp_path / "altered.zip", "manifest.sig", lambda d: bytes(64))

    code, message = _verify(altered)

    assert code != 0 and "manifest.sig" in message


def test_it_marks_an_export_without_a_key_unsigned(world: World, settings: Settings, tmp_path: Path) -> None:
    settings.EVIDENCE_SIGNING_KEY = ""
    out = tmp_path / "unsigned.zip"
    evidence_export(alert_ids=[world.alert_a.pk], user=world.users["manager"], out=out)  # type: ignore[arg-type]

    assert json.loads(_read(out, "manifest.json")[1])["signed"] is False
    code, message = _verify(out)
    assert code != 0 and "unsigned" in message
    assert _verify(out, "--allow-unsigned") == (0, "")


def test_the_command_exports_several_alerts(world: World, signing: str, tmp_path: Path) -> None:
    world.users["superuser"]  # noqa: B018  # the command runs as whoever --user names
    out = tmp_path / "both.zip"
    call_command("export_evidence", "--alerts", f"{world.alert_a.pk},{world.alert_b.pk}", "--out", str(out),
                 "--user", "root", stdout=io.StringIO())

    manifest = json.loads(_read(out, "manifest.json")[1])
    assert manifest["alert_ids"] == [world.alert_a.pk, world.alert_b.pk]
    assert evidence_verify(out) == []
    assert ClipAccess.objects.filter(action=AccessAction.EXPORT, username="root").count() == 2


def _client(world: World, persona: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(world.users[persona])  # type: ignore[arg-type]
    return client


@pytest.mark.parametrize("persona", ["reviewer", "manager"])
def test_it_streams_the_zip_to_reviewers_and_managers(world: World, signing: str, persona: str) -> None:
    response = _client(world, persona).post(f"/alerts/{world.alert_a.pk}/export/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    data = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert ClipAccess.objects.filter(alert=world.alert_a, action=AccessAction.EXPORT, username=persona).exists()


def test_it_refuses_viewers(world: World) -> None:
    assert _client(world, "viewer").post(f"/alerts/{world.alert_a.pk}/export/").status_code == 403
    assert not ClipAccess.objects.filter(action=AccessAction.EXPORT).exists()


def test_it_hides_other_sites_alerts(world: World) -> None:
    assert _client(world, "other_site").post(f"/alerts/{world.alert_a.pk}/export/").status_code == 404


def test_it_needs_a_post_with_a_csrf_token(world: World, signing: str) -> None:
    client = _client(world, "reviewer", csrf=True)
    url = f"/alerts/{world.alert_a.pk}/export/"

    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no token
    page = client.get(f"/alerts/{world.alert_a.pk}/").content.decode()
    assert "Export for police" in page
    token = re.search(r'action="/alerts/\d+/export/"[^>]*>\s*<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)"',
                      page)
    assert token is not None
    assert client.post(url, {"csrfmiddlewaretoken": token.group(1)}).status_code == 200


def test_it_refuses_a_stored_clip_that_no_longer_matches_its_hash(world: World, signing: str) -> None:
    Alert.objects.filter(pk=world.alert_a.pk).update(clip_sha256="0" * 64)

    response = _client(world, "reviewer").post(f"/alerts/{world.alert_a.pk}/export/")

    assert response.status_code == 302
    assert not ClipAccess.objects.filter(action=AccessAction.EXPORT).exists()


def _check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL"))}
    env.update({"SECRET_KEY": "k" * 50, "DEBUG": "false", "DJANGO_SETTINGS_MODULE": "shoplift.settings", **extra})
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_generate_signing_key_output_is_accepted_by_the_settings() -> None:
    out = io.StringIO()
    call_command("generate_signing_key", stdout=out, stderr=io.StringIO())
    name, _, value = out.getvalue().strip().partition("=")

    assert name == "EVIDENCE_SIGNING_KEY"
    result = _check({"EVIDENCE_SIGNING_KEY": value})
    assert result.returncode == 0, result.stderr


def test_a_malformed_signing_key_stops_start_up_without_showing_it() -> None:
    result = _check({"EVIDENCE_SIGNING_KEY": "c2hvcnQ="})

    assert result.returncode != 0
    assert "EVIDENCE_SIGNING_KEY is invalid" in result.stderr and "c2hvcnQ=" not in result.stderr
    assert "Traceback" not in result.stderr


def test_it_adds_the_whole_event_clip_when_there_is_one(world: World, signing: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from django.core.files.base import ContentFile

    from alerts.models import ClipStatus, EventClip, clip_storage
    alert = world.alert_a
    with clip_storage().open(alert.clip.name, "rb") as fh:  # the world's clip, stored again as the whole event
        data = fh.read()
    assert alert.clip_start is not None
    EventClip.objects.create(alert=alert, clip=clip_storage().save(f"clips/alert-{alert.pk}-event.mp4", ContentFile(data)),
                             clip_sha256=hashlib.sha256(data).hexdigest(), clip_status=ClipStatus.READY,
                             clip_start=alert.clip_start, clip_end=alert.clip_start + timedelta(seconds=6))
    out = tmp_path / "event.zip"
    evidence_export(alert_ids=[alert.pk], user=world.users["reviewer"], out=out)  # type: ignore[arg-type]

    name, event_master = _read(out, "-event-master.mp4")
    assert hashlib.sha256(event_master).hexdigest() == hashlib.sha256(data).hexdigest()
    assert _first_frame(_read(out, "-event-working.mp4")[1])[1] == "h264"
    assert json.loads(_read(out, "manifest.json")[1])["alerts"][0]["files"]["event_master"] == name
    assert evidence_verify(out) == []


def test_it_names_a_file_added_to_the_bundle(bundle: Path, tmp_path: Path) -> None:
    added = tmp_path / "added.zip"
    added.write_bytes(bundle.read_bytes())
    with zipfile.ZipFile(added, "a") as zf:
        zf.writestr("extra.txt", b"not part of the export")

    assert evidence_verify(added) == ["extra.txt: in the bundle but not listed in manifest.json (added)"]


def test_the_admin_shows_the_public_key(world: World, signing: str) -> None:
    from alerts.export import public_key_fingerprint, public_key_pem

    page = _client(world, "superuser").get(f"/admin/alerts/alert/{world.alert_a.pk}/change/")

    assert page.status_code == 200
    assert public_key_fingerprint(public_key_pem()) in page.content.decode()
