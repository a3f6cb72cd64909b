"""The audit log's hash chain (alerts.audit): appended entries verify; editing, inserting or deleting
a row through the database breaks the chain at that row, and `manage.py verify_audit` names it."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alerts.audit import GENESIS, audit_record, audit_verify, entry_hash_of
from alerts.models import AccessAction, AuditAction, AuditEntry, AuditHead, ClipAccess
from alerts.services import clip_access_record
from tests.support.factories import make_alert, make_camera, make_site, make_user

pytestmark = pytest.mark.django_db


def _chain(count: int = 4) -> list[AuditEntry]:
    return [audit_record(action=AuditAction.REVIEW, summary=f"Alert #{n}: unreviewed -> confirmed", site_id=7,
                         object_type="alert", object_id=n, detail={"n": n, "note": "seen on tape"},
                         ip_address="10.0.0.7") for n in range(1, count + 1)]


def _verify_fails() -> CommandError:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", stdout=StringIO())
    return failure.value


def test_it_links_each_entry_to_the_one_before_and_verifies_intact() -> None:
    entries = _chain()

    check = audit_verify()

    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    assert all(entry_hash_of(AuditEntry.objects.get(pk=e.pk)) == e.entry_hash for e in entries)
    assert (check.problem, check.entries, check.head_seq, check.head_hash) == ("", 4, 4, entries[-1].entry_hash)


def test_it_verifies_an_empty_log() -> None:
    assert audit_verify().problem == ""


def test_it_notices_an_altered_head() -> None:
    _chain()
    AuditHead.objects.filter(pk=1).update(entry_hash="f" * 64)

    assert "the head was altered" in audit_verify().problem


@pytest.mark.parametrize("change", [
    {"summary": "Alert #2: nothing happened"},
    {"detail": {"n": 2, "note": "never seen"}},
    {"at": timezone.now() - timedelta(days=3)},
    {"username": "someone-else"},
])
def test_it_names_an_entry_edited_through_the_database(change: dict[str, object]) -> None:
    _chain()
    AuditEntry.objects.filter(seq=2).update(**change)

    problem = audit_verify().problem

    assert problem.startswith("entry #2 ") and "modified" in problem


def test_it_names_a_row_inserted_after_the_last_entry_even_with_a_plausible_hash() -> None:
    entries = _chain()
    forged = AuditEntry(seq=5, action=AuditAction.CLIP_VIEW, username="manager", summary="Alert #9: viewed",
                        prev_hash=entries[-1].entry_hash, site_id=7)
    forged.entry_hash = entry_hash_of(forged)
    forged.save()

    problem = audit_verify().problem

    assert problem.startswith("entry #5 ") and "beyond the chain's head (#4)" in problem


def test_it_names_the_first_link_broken_by_a_row_inserted_in_the_middle() -> None:
    entries = _chain()
    for entry in reversed(entries[2:]):  # make room at #3, as someone hiding an entry there would
        AuditEntry.objects.filter(pk=entry.pk).update(seq=entry.seq + 1)
    forged = AuditEntry(seq=3, action=AuditAction.REVIEW, summary="Alert #3: unreviewed -> dismissed", site_id=7,
                        prev_hash=entries[1].entry_hash)
    forged.entry_hash = entry_hash_of(forged)
    forged.save()

    problem = audit_verify().problem

    assert problem.startswith("entry #4 ") and "does not follow entry #3" in problem


def test_it_names_the_entry_after_a_deleted_one() -> None:
    _chain()
    AuditEntry.objects.filter(seq=2).delete()

    problem = audit_verify().problem

    assert problem.startswith("entry #3 ") and "#2 before it are missing (deleted)" in problem


def test_it_notices_the_newest_entry_deleted_through_the_head() -> None:
    _chain()
    AuditEntry.objects.filter(seq=4).delete()

    problem = audit_verify().problem

    assert "newest entry #4 is missing (deleted)" in problem


def test_it_shows_newest_entries_deleted_with_the_head_rewound_only_against_a_head_hash_noted_earlier() -> None:
    entries = _chain()
    noted = audit_verify().head_hash
    AuditEntry.objects.filter(seq__gte=3).delete()
    AuditHead.objects.filter(pk=1).update(seq=2, entry_hash=entries[1].entry_hash)  # a careful deleter

    check = audit_verify()

    assert check.problem == ""  # the chain alone cannot tell: that is why verify_audit prints the head hash
    assert (check.head_seq, check.head_hash != noted) == (2, True)


def test_the_command_prints_the_head_and_says_intact() -> None:
    entries = _chain()
    out = StringIO()

    call_command("verify_audit", stdout=out)

    assert "4 audit entries" in out.getvalue()
    assert f"head #4 {entries[-1].entry_hash}" in out.getvalue()
    assert "audit log intact" in out.getvalue()


def test_the_command_fails_naming_the_first_broken_link() -> None:
    _chain()
    AuditEntry.objects.filter(seq=3).update(summary="edited")
    AuditEntry.objects.filter(seq=4).delete()

    failure = _verify_fails()

    assert str(failure).startswith("audit log broken at entry #3 ") and "modified" in str(failure)
    assert failure.returncode == 1  # manage.py's exit status


def test_it_checks_the_clip_access_log_against_the_chain() -> None:
    camera = make_camera(make_site())
    alert = make_alert(camera)
    user = make_user("reviewer")
    before = ClipAccess.objects.create(alert=alert, user=user, username="reviewer", action=AccessAction.VIEW,
                                       at=timezone.now() - timedelta(days=30))  # written before the audit log existed
    access = clip_access_record(alert=alert, user=user, action=AccessAction.DOWNLOAD, ip_address="10.0.0.7",
                                user_agent="test")

    check = audit_verify()
    assert (check.problem, check.accesses_before_chain) == ("", 1)

    sneaked = ClipAccess.objects.create(alert=alert, user=user, username="reviewer", action=AccessAction.VIEW)
    assert audit_verify().problem.startswith(f"clip access #{sneaked.pk} ")
    assert "has no audit entry" in audit_verify().problem

    sneaked.delete()
    access_id = access.pk
    access.delete()
    problem = audit_verify().problem
    assert f"records clip access #{access_id}," in problem and "deleted" in problem
    assert before.pk != access_id
