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
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction

from alerts.models import AuditAction, AuditEntry, AuditHead

log = logging.getLogger("shoplift.audit")

GENESIS = "0" * 64  # the previous hash of entry 1


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


@dataclass(frozen=True)
class ChainCheck:
    entries: int
    head_seq: int
    head_hash: str
    problem: str  # the first broken link, "" when the chain holds


def _describe(entry: AuditEntry) -> str:
    return f"entry #{entry.seq} (row id {entry.pk}, {entry.at:%Y-%m-%d %H:%M:%S} UTC, {entry.action} by " \
           f"{entry.username or 'system'})"


def _walk() -> Iterator[AuditEntry]:
    return AuditEntry.objects.order_by("seq").iterator(chunk_size=2000)


def audit_verify() -> ChainCheck:
    """Walk the chain from entry 1 and stop at the first link that does not hold."""
    head = AuditHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.entry_hash) if head is not None else (0, "")
    expected_seq, prev_hash, count = 1, GENESIS, 0

    def broken(problem: str) -> ChainCheck:
        return ChainCheck(entries=count, head_seq=head_seq, head_hash=head_hash, problem=problem)

    for entry in _walk():
        count += 1
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                missing = f"#{expected_seq}" if entry.seq == expected_seq + 1 else f"#{expected_seq} to #{entry.seq - 1}"
                return broken(f"{_describe(entry)}: entries {missing} before it are missing (deleted)")
            return broken(f"{_describe(entry)}: out of sequence (inserted)")
        if entry.prev_hash != prev_hash:
            return broken(f"{_describe(entry)}: does not follow entry #{entry.seq - 1} (its previous hash is "
                          f"{entry.prev_hash[:12]}…, entry #{entry.seq - 1} hashes to {prev_hash[:12]}…): an entry "
                          "was inserted, deleted or rewritten here")
        if entry_hash_of(entry) != entry.entry_hash:
            return broken(f"{_describe(entry)}: its contents do not match its hash (modified)")
        prev_hash, expected_seq = entry.entry_hash, expected_seq + 1
    last_seq = expected_seq - 1
    if last_seq != head_seq or (last_seq and prev_hash != head_hash):
        if last_seq < head_seq:
            return broken(f"the newest entries #{last_seq + 1} to #{head_seq} are missing (deleted); the chain's head "
                          f"records #{head_seq}")
        return broken(f"the chain's head records entry #{head_seq} ({head_hash[:12]}…) but the log ends at entry "
                      f"#{last_seq} ({prev_hash[:12]}…): entries were added or the head was altered")
    return broken("")
