"""The police export of a case: every alert's evidence as for an alert export, plus the case in the
manifest and the report, and "Case #N / Alert #M" burned into each working copy."""
from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from pytest_django.fixtures import Settings

from alerts.audit import audit_verify
from alerts.cases import case_create
from alerts.export import ExportError, _overlay_lines, burn_in, evidence_export, evidence_verify, signing_key_generate
from alerts.models import AccessAction, Alert, AuditAction, AuditEntry, Case, CaseOutcome, ClipAccess, ClipStatus
from tests.support.clips import SampleClip, World, attach_clip
from tests.support.factories import make_alert


@pytest.fixture
def signing(settings: Settings) -> None:
    settings.EVIDENCE_SIGNING_KEY = signing_key_generate()


def _user(world: World, persona: str) -> User:
    user = world.users[persona]
    assert isinstance(user, User)
    return user


@pytest.fixture
def second(world: World, test_clip: SampleClip) -> Alert:
    """A second alert at Riverside, a minute after alert A, with the same real clip."""
    return attach_clip(make_alert(world.camera_a, at=world.alert_a.detected_at + timedelta(minutes=1),
                                  event_type="loitering"), test_clip)


@pytest.fixture
def case(world: World, second: Alert) -> Case:
    return case_create(user=_user(world, "reviewer"), alerts=[second, world.alert_a], title="Gin into a rucksack",
                       outcome=CaseOutcome.THEFT_CONFIRMED, estimated_value=Decimal("45.80"),
                       items="2 x gin 70cl", person_description="Tall, grey hoodie, left towards the car park",
                       police_reference="MET-2024-0601", notes="Staff only: manager on duty was Sam")


@pytest.fixture
def bundle(world: World, case: Case, signing: None, tmp_path: Path) -> Path:
    out = tmp_path / "case.zip"
    evidence_export(case=case, user=_user(world, "reviewer"), out=out, ip_address="10.0.0.9")
    return out


def _member(bundle: Path, suffix: str) -> tuple[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        name = next(n for n in sorted(zf.namelist()) if n.endswith(suffix))
        return name, zf.read(name)


def _manifest(bundle: Path) -> dict:  # type: ignore[type-arg]
    loaded: dict = json.loads(_member(bundle, "manifest.json")[1])  # type: ignore[type-arg]
    return loaded


def _first_frame(data: bytes) -> tuple[np.ndarray, float, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))  # type: ignore[union-attr]
        return frame.to_ndarray(format="rgb24"), float(frame.time or 0.0), stream.codec_context.name


def test_it_verifies_and_holds_every_alert_of_the_case(world: World, case: Case, second: Alert, bundle: Path) -> None:
    names = zipfile.ZipFile(bundle).namelist()

    assert evidence_verify(bundle) == []
    for alert in (world.alert_a, second):
        assert any(n.endswith(f"_{alert.pk}-master.mp4") for n in names)
        assert any(n.endswith(f"_{alert.pk}-working.mp4") for n in names)


def test_the_manifest_has_the_case(world: World, case: Case, second: Alert, bundle: Path) -> None:
    manifest = _manifest(bundle)

    assert manifest["case_id"] == case.pk
    assert manifest["alert_ids"] == [world.alert_a.pk, second.pk]  # in the order they happened
    assert manifest["export_id"].endswith(f"-case-{case.pk}")
    assert manifest["case"] == {
        "id": case.pk, "reference": f"Case #{case.pk}",
        "site": {"id": world.site_a.pk, "name": "Riverside", "time_zone": "Europe/London"},
        "title": "Gin into a rucksack", "status": "open",
        "outcome": "theft_confirmed", "outcome_label": "Theft confirmed",
        "estimated_value": "45.80", "items": "2 x gin 70cl",
        "person_description": "Tall, grey hoodie, left towards the car park", "police_reference": "MET-2024-0601",
        "created_at_utc": manifest["case"]["created_at_utc"], "created_at_local": manifest["case"]["created_at_local"],
        "created_by": "reviewer", "closed_at_utc": None, "closed_at_local": None, "closed_by": None,
        "alert_ids": [world.alert_a.pk, second.pk],
    }
    assert manifest["case"]["created_at_utc"].endswith("+00:00")
    assert "Staff only" not in json.dumps(manifest)  # the notes are the store's own


def test_the_report_shows_the_case(case: Case, bundle: Path) -> None:
    report = _member(bundle, "report.html")[1].decode()

    assert f"<h2>Case #{case.pk}</h2>" in report
    assert "Gin into a rucksack" in report and "MET-2024-0601" in report and "45.80" in report
    assert "Tall, grey hoodie" in report and "Theft confirmed" in report


def test_the_burned_in_reference_names_the_case_and_the_alert(world: World, case: Case) -> None:
    alert = world.alert_a
    assert alert.clip_start is not None
    zone = ZoneInfo("Europe/London")

    lines = _overlay_lines(alert, alert.clip_start, zone, case)

    assert lines[-1] == f"Case #{case.pk} / Alert #{alert.pk}"
    assert lines[2] == f"Riverside / Aisle 3 (ch {world.camera_a.channel})"
    assert lines[0].endswith("BST (Europe/London)") and lines[1].endswith("UTC")
    assert _overlay_lines(alert, alert.clip_start, zone)[-1] == f"Alert #{alert.pk}"


def _text(image: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    luma = image[: box[0], : box[1]].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mask: np.ndarray = luma > 160
    return mask


def test_the_working_copy_is_h264_with_the_case_reference_drawn_over_the_master(
        world: World, case: Case, bundle: Path) -> None:
    alert = world.alert_a
    assert alert.clip_start is not None
    working, _, codec = _first_frame(_member(bundle, f"_{alert.pk}-working.mp4")[1])
    master, frame_time, _ = _first_frame(_member(bundle, f"_{alert.pk}-master.mp4")[1])
    assert codec == "h264" and working.shape == master.shape
    text_area = np.abs(working[40:70, 5:200].astype(np.int16) - master[40:70, 5:200]).mean()
    elsewhere = np.abs(working[150:].astype(np.int16) - master[150:]).mean()
    assert text_area > 30 and elsewhere < 6, (text_area, elsewhere)

    # No OCR here: draw the lines with and without the case onto the master's frame, and check the
    # working copy's text is the one with the case.
    moment = alert.clip_start + timedelta(seconds=frame_time)
    zone = ZoneInfo("Europe/London")
    with_case, without = master.copy(), master.copy()
    burn_in(with_case, _overlay_lines(alert, moment, zone, case))
    burn_in(without, _overlay_lines(alert, moment, zone))
    drawn = np.argwhere((with_case.astype(np.int16) - master).any(axis=2))
    box = (int(drawn[:, 0].max()) + 1, int(drawn[:, 1].max()) + 1)
    seen, right, wrong = _text(working, box), _text(with_case, box), _text(without, box)
    off_right, off_wrong = int((seen ^ right).sum()), int((seen ^ wrong).sum())
    assert int((right ^ wrong).sum()) > 100  # the two references differ visibly
    assert off_right < 0.5 * off_wrong, (off_right, off_wrong)


def test_it_records_the_export_per_alert_and_for_the_case(world: World, case: Case, second: Alert,
                                                          bundle: Path) -> None:
    assert set(ClipAccess.objects.filter(action=AccessAction.EXPORT).values_list("alert_id", flat=True)) == {
        world.alert_a.pk, second.pk}
    entry = AuditEntry.objects.get(action=AuditAction.EXPORT, object_type="case")
    assert entry.object_id == str(case.pk) and entry.site_id == world.site_a.pk and entry.username == "reviewer"
    assert entry.detail["alert_ids"] == [world.alert_a.pk, second.pk] and entry.ip_address == "10.0.0.9"
    assert entry.detail["manifest_sha256"]
    assert audit_verify().problem == ""  # the access log and the chain agree


def test_an_alert_export_has_no_case(world: World, case: Case, signing: None, tmp_path: Path) -> None:
    out = tmp_path / "alert.zip"
    evidence_export(alert_ids=[world.alert_a.pk], user=_user(world, "reviewer"), out=out)

    manifest = _manifest(out)
    assert manifest["case_id"] is None and manifest["case"] is None


def test_it_says_which_alert_is_not_ready_and_why(world: World, case: Case, second: Alert, signing: None,
                                                  tmp_path: Path) -> None:
    Alert.objects.filter(pk=second.pk).update(clip_status=ClipStatus.QUEUED)
    out = tmp_path / "case.zip"

    with pytest.raises(ExportError, match=rf"^Case #{case.pk}: alert #{second.pk}: its clip is not ready yet \(queued\)"):
        evidence_export(case=case, user=_user(world, "reviewer"), out=out)
    Alert.objects.filter(pk=second.pk).update(clip_status=ClipStatus.FAILED, clip_error="the DVR stream ended early")
    with pytest.raises(ExportError, match=rf"alert #{second.pk}: its clip could not be built \(the DVR stream ended"):
        evidence_export(case=case, user=_user(world, "reviewer"), out=out)

    assert not out.exists() and not ClipAccess.objects.filter(action=AccessAction.EXPORT).exists()


def test_the_case_page_streams_the_zip(world: World, case: Case, signing: None) -> None:
    client = Client()
    client.force_login(_user(world, "reviewer"))

    response = client.post(f"/cases/{case.pk}/export/")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f'filename="evidence-case-{case.pk}.zip"' in response["Content-Disposition"]
    data = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))["case_id"] == case.pk


def test_the_case_page_says_why_an_export_was_refused(world: World, case: Case, second: Alert) -> None:
    Alert.objects.filter(pk=second.pk).update(clip_status=ClipStatus.BUILDING)
    client = Client()
    client.force_login(_user(world, "reviewer"))

    response = client.post(f"/cases/{case.pk}/export/", follow=True)

    assert response.redirect_chain == [(f"/cases/{case.pk}/", 302)]
    assert (f"The export could not be made: Case #{case.pk}: alert #{second.pk}: its clip is not ready yet (building); "
            "try again shortly.") in [str(m) for m in response.context["messages"]]


def test_the_command_exports_a_case(world: World, case: Case, second: Alert, signing: None, tmp_path: Path) -> None:
    out = tmp_path / "from-command.zip"
    stdout = io.StringIO()

    call_command("export_evidence", "--case", str(case.pk), "--out", str(out), "--user", "reviewer", stdout=stdout)

    assert "signed" in stdout.getvalue()
    assert evidence_verify(out) == []
    assert _manifest(out)["case"]["reference"] == f"Case #{case.pk}"
    assert ClipAccess.objects.filter(action=AccessAction.EXPORT, username="reviewer").count() == 2


def test_the_command_names_a_missing_case_and_refuses_both_case_and_alerts(world: World, tmp_path: Path) -> None:
    out = str(tmp_path / "x.zip")
    with pytest.raises(CommandError, match="--case 999999: no such case"):
        call_command("export_evidence", "--case", "999999", "--out", out, "--user", "reviewer")
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("export_evidence", "--case", "1", "--alerts", "1", "--out", out, "--user", "reviewer")
