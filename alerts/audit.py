"""The audit log: append-only and hash-chained (alerts.models.AuditEntry).

`audit_record` appends one entry. Its hash is SHA-256 over the entry's fields in a fixed JSON form
and the previous entry's hash, so changing any row changes its hash, and the next entry no longer
points at it. `seq` counts 1, 2, 3, ... so a deleted row leaves a gap, and AuditHead holds the last
link, so deleting the newest rows shows too. `audit_verify` walks the chain and names the first
broken link.

Appends lock the head row: entries form one line across every process. Call `audit_record` inside
the transaction of the change it records, so the change and its entry commit together or not at all.

What this proves, and what not: someone who edits the database by hand cannot hide it from
`verify_audit` without recomputing every later hash; someone who does recompute them can. Note
the head hash `verify_audit` prints somewhere else (a ticket, an e-mail) to pin the chain up to then.

The clip access log (ClipAccess) is kept consistent with the chain: `clip_access_record` writes a
ClipAccess row and its audit entry in one transaction, and `audit_verify` checks that every access
row made since the chain began has its entry, and every entry's access row is still there. Rows
older than the chain (written before the audit log existed) are counted, not failed.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from storages.backends.s3 import S3File

from alerts.models import (
    AccessAction,
    Alert,
    AuditAction,
    AuditEntry,
    AuditHead,
    ClipAccess,
    ClipFields,
    ClipPart,
    EventClip,
    clip_storage,
)
from cameras.models import Role, SiteMembership
from cameras.selectors import site_list_for

log = logging.getLogger("shoplift.audit")

GENESIS = "0" * 64  # the previous hash of entry 1
ACCESS_ACTIONS = {AccessAction.VIEW: AuditAction.CLIP_VIEW, AccessAction.DOWNLOAD: AuditAction.CLIP_DOWNLOAD,
                  AccessAction.EXPORT: AuditAction.EXPORT}


def _canonical(*, seq: int, at: datetime, actor_id: int | None, username: str, action: str, site_id: int | None,
               object_type: str, object_id: str, summary: str, detail: dict[str, Any], ip_address: str | None,
               prev_hash: str) -> bytes:
    fields = {
        "seq": seq, "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "actor_id": actor_id,
        "username": username, "action": action, "site_id": site_id, "object_type": object_type,
        "object_id": object_id, "summary": summary, "detail": detail, "ip_address": ip_address,
        "prev_hash": prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash_of(entry: AuditEntry) -> str:
    """The hash an entry's fields (as stored) should have."""
    return hashlib.sha256(_canonical(
        seq=entry.seq, at=entry.at, actor_id=entry.actor_id, username=entry.username, action=entry.action,
        site_id=entry.site_id, object_type=entry.object_type, object_id=entry.object_id, summary=entry.summary,
        detail=entry.detail, ip_address=entry.ip_address, prev_hash=entry.prev_hash,
    )).hexdigest()


def _json_safe(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail as the database gives it back (dates, decimals and other values as strings), so
    the hash computed now is the hash recomputed from the stored row later."""
    loaded: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return loaded


def _head_for_update() -> AuditHead:
    head = AuditHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    try:
        with transaction.atomic():  # a savepoint: a concurrent first append may create it first
            AuditHead.objects.create(pk=1)
    except IntegrityError:
        pass
    return AuditHead.objects.select_for_update().get(pk=1)


def audit_record(*, action: AuditAction, summary: str, user: AbstractBaseUser | AnonymousUser | None = None,
                 username: str = "", site_id: int | None = None, object_type: str = "", object_id: object = "",
                 detail: dict[str, Any] | None = None, ip_address: str | None = None) -> AuditEntry:
    """Append one entry. `user` is who did it (None for the system); `username` names an actor with
    no account (a failed sign-in's typed name). `site_id` decides which managers see it."""
    actor_id = user.pk if user is not None and user.is_authenticated else None
    name = user.get_username() if user is not None and user.is_authenticated else username
    with transaction.atomic():
        head = _head_for_update()
        entry = AuditEntry(
            seq=head.seq + 1, actor_id=actor_id, username=name[:150], action=action, site_id=site_id,
            object_type=object_type, object_id=str(object_id)[:50], summary=summary[:500],
            detail=_json_safe(detail or {}), ip_address=ip_address or None, prev_hash=head.entry_hash or GENESIS,
        )
        entry.entry_hash = entry_hash_of(entry)
        entry.save()
        head.seq, head.entry_hash = entry.seq, entry.entry_hash
        head.save(update_fields=["seq", "entry_hash"])
    log.info("audit #%s %s user=%s site=%s %s %s: %s", entry.seq, action, name or "-", site_id, object_type,
             entry.object_id, summary)
    return entry


def stored_sha256(name: str) -> str:
    """SHA-256 of a file in the clips storage, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with clip_storage().open(name, "rb") as handle:
        if isinstance(handle, S3File):
            # S3File.read would first copy the whole object to a temporary file: stream its body instead.
            body = handle.obj.get()["Body"]
            try:
                for chunk in body.iter_chunks(1 << 20):
                    digest.update(chunk)
            finally:
                body.close()
        else:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def audit_tamper(*, row: ClipFields, actual_sha256: str, via: str, user: AbstractBaseUser | AnonymousUser | None = None,
                 ip_address: str | None = None) -> AuditEntry:
    """Record that a stored clip no longer hashes to the SHA-256 recorded when it was built, and
    that it was refused (`via`: "download", "view", "export"). The entry goes to the alert's site,
    where its managers see it on the audit page."""
    if isinstance(row, EventClip):
        alert, part = row.alert, ClipPart.EVENT
    else:
        assert isinstance(row, Alert)
        alert, part = row, ClipPart.FIRST
    log.error("tampering: alert=%s part=%s file=%s has SHA-256 %s but %s was recorded when it was built; refused %s",
              alert.pk, part, row.clip.name, actual_sha256, row.clip_sha256, via)
    return audit_record(
        action=AuditAction.TAMPER, user=user, site_id=alert.camera.site_id, object_type="alert", object_id=alert.pk,
        summary=f"Alert #{alert.pk}: the stored {ClipPart(part).label.lower()} no longer matches the SHA-256 recorded "
                f"when it was built; the {via} was refused",
        detail={"part": str(part), "file": row.clip.name, "recorded_sha256": row.clip_sha256,
                "actual_sha256": actual_sha256, "via": via},
        ip_address=ip_address,
    )


def audit_entries_for(*, user: User | AnonymousUser) -> QuerySet[AuditEntry]:
    """The entries a user may read: a superuser, all of them; a manager, those of the sites they
    manage and the sign-ins, sign-outs and audit exports of those sites' members (and failed
    sign-ins typed with their user names); anyone else, none."""
    if not user.is_authenticated or not user.is_active:
        return AuditEntry.objects.none()
    if user.is_superuser:
        return AuditEntry.objects.all()
    sites = site_list_for(user=user, min_role=Role.MANAGER)
    members = SiteMembership.objects.filter(site__in=sites)
    return AuditEntry.objects.filter(
        Q(site_id__in=sites.values("pk"))
        | Q(site_id__isnull=True, action__in=[AuditAction.LOGIN, AuditAction.LOGOUT, AuditAction.AUDIT_EXPORT],
            actor_id__in=members.values("user_id"))
        | Q(site_id__isnull=True, action=AuditAction.LOGIN_FAILED, username__in=members.values("user__username"))
    )


@dataclass(frozen=True)
class ChainCheck:
    entries: int
    head_seq: int
    head_hash: str
    problem: str  # the first broken link, "" when the chain holds
    accesses_before_chain: int = 0  # clip access rows older than the chain's first entry (not a failure)


def _describe(entry: AuditEntry) -> str:
    return f"entry #{entry.seq} (row id {entry.pk}, {entry.at:%Y-%m-%d %H:%M:%S} UTC, {entry.action} by " \
           f"{entry.username or 'system'})"


def _walk(up_to: int) -> Iterator[AuditEntry]:
    return AuditEntry.objects.filter(seq__lte=up_to).order_by("seq").iterator(chunk_size=2000)


def audit_verify() -> ChainCheck:
    """Walk the chain from entry 1 to the head as it was when the walk began, and stop at the first
    link that does not hold. Entries appended while it runs are not walked (they are checked next
    time), but a row beyond the head as it is at the end is a failure: appends move the head in
    the same transaction, so only a row written outside `audit_record` lies beyond it."""
    head = AuditHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.entry_hash) if head is not None else (0, "")
    total = AuditEntry.objects.filter(seq__lte=head_seq).count()
    expected_seq, prev_hash = 1, GENESIS
    first_at: datetime | None = None
    audited: dict[int, int] = {}  # clip access id -> the seq of the entry that records it

    def broken(problem: str, before_chain: int = 0) -> ChainCheck:
        return ChainCheck(entries=total, head_seq=head_seq, head_hash=head_hash, problem=problem,
                          accesses_before_chain=before_chain)

    for entry in _walk(head_seq):
        first_at = first_at or entry.at
        if entry.action in ACCESS_ACTIONS.values() and isinstance(entry.detail, dict):
            access_id = entry.detail.get("clip_access_id")
            if isinstance(access_id, int):
                audited.setdefault(access_id, entry.seq)
        if entry.seq != expected_seq:
            missing = f"#{expected_seq}" if entry.seq == expected_seq + 1 else f"#{expected_seq} to #{entry.seq - 1}"
            return broken(f"{_describe(entry)}: entries {missing} before it are missing (deleted)")
        if entry.prev_hash != prev_hash:
            return broken(f"{_describe(entry)}: does not follow entry #{entry.seq - 1} (its previous hash is "
                          f"{entry.prev_hash[:12]}…, entry #{entry.seq - 1} hashes to {prev_hash[:12]}…): an entry "
                          "was inserted, deleted or rewritten here")
        if entry_hash_of(entry) != entry.entry_hash:
            return broken(f"{_describe(entry)}: its contents do not match its hash (modified)")
        prev_hash, expected_seq = entry.entry_hash, expected_seq + 1
    last_seq = expected_seq - 1
    if last_seq < head_seq:
        missing = f"entry #{head_seq} is" if last_seq + 1 == head_seq else f"entries #{last_seq + 1} to #{head_seq} are"
        return broken(f"the newest {missing} missing (deleted): the chain's head records #{head_seq}, the log ends at "
                      f"#{last_seq}")
    if last_seq and prev_hash != head_hash:
        return broken(f"the chain's head records entry #{head_seq} as {head_hash[:12]}…, but entry #{last_seq} hashes "
                      f"to {prev_hash[:12]}…: the head was altered")
    beyond = AuditEntry.objects.filter(seq__gt=head_seq).order_by("-seq").first()
    head_now = AuditHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0  # read after `beyond`
    if beyond is not None and beyond.seq > head_now:
        return broken(f"{_describe(beyond)}: lies beyond the chain's head (#{head_now}): it was inserted outside the "
                      "application")
    before_chain, problem = _check_accesses(audited, first_at, head_seq)
    return broken(problem, before_chain)


def _check_accesses(audited: dict[int, int], first_at: datetime | None, head_seq: int) -> tuple[int, str]:
    """The clip access log against the walked chain: (access rows older than the chain, the first
    inconsistency or "")."""
    before_chain, problem = 0, ""
    rows = ClipAccess.objects.order_by("pk").values_list("pk", "at", "username", "action", "alert_id")
    for pk, at, username, action, alert_id in rows.iterator(chunk_size=2000):
        if audited.pop(pk, None) is not None:
            continue
        if first_at is None or at < first_at:
            before_chain += 1
        elif not problem and not AuditEntry.objects.filter(  # appended since the walk began: checked next time
                seq__gt=head_seq, action__in=ACCESS_ACTIONS.values(), detail__clip_access_id=pk).exists():
            problem = (f"clip access #{pk} ({at:%Y-%m-%d %H:%M:%S} UTC, {action} of alert #{alert_id} by "
                       f"{username or 'unknown'}) has no audit entry: it was written to the access log outside the "
                       "application, or its audit entry was removed")
    if audited and not problem:
        access_id, seq = min(audited.items(), key=lambda item: item[1])
        problem = (f"{_describe(AuditEntry.objects.get(seq=seq))}: records clip access #{access_id}, which is no "
                   "longer in the clip access log (deleted)")
    return before_chain, problem
