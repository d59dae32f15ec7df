"""Append-only, hash-chained audit log: hash = sha256(prev_hash + canonical JSON of the record)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.store.models import AuditHead, AuditRecord

GENESIS = "0" * 64
VERIFY_CHUNK = 1000


def canonical(seq: int, ts: datetime, actor: str, action: str, target: str, data: dict[str, Any]) -> str:
    record = {
        "seq": seq,
        "ts": ts.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "data": data,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(session: Session, ts: datetime, actor: str, action: str, target: str, data: dict[str, Any]) -> AuditRecord:
    """Add one record in the caller's transaction. Locks the chain head (FOR UPDATE on PostgreSQL;
    on SQLite the writer already holds the database write lock), so concurrent writers form one line."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    # JSON round trip now, so the hash is over exactly what the database will give back
    data = json.loads(json.dumps(data, default=str))
    ts = ts.astimezone(UTC)
    seq = head.seq + 1
    digest = chain_hash(head.hash, canonical(seq, ts, actor, action, target, data))
    record = AuditRecord(
        seq=seq, ts=ts, actor=actor, action=action, target=target, data=data, prev_hash=head.hash, hash=digest
    )
    session.add(record)
    head.seq = seq
    head.hash = digest
    session.flush()
    return record


def to_dict(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "ts": record.ts.isoformat(),
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "data": record.data,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def verify(session: Session) -> dict[str, Any]:
    """Recompute the whole chain: {"ok", "records", "first_bad"} (first_bad: the first seq that fails)."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    last_seq = 0
    while True:
        rows = (
            session.execute(
                select(AuditRecord).where(AuditRecord.seq >= expected_seq).order_by(AuditRecord.seq).limit(VERIFY_CHUNK)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for row in rows:
            count += 1
            if row.seq != expected_seq or row.prev_hash != prev:
                return {"ok": False, "records": count, "first_bad": expected_seq}
            body = canonical(row.seq, row.ts, row.actor, row.action, row.target, row.data)
            if chain_hash(prev, body) != row.hash:
                return {"ok": False, "records": count, "first_bad": row.seq}
            prev = row.hash
            last_seq = row.seq
            expected_seq += 1
    head = session.get(AuditHead, 1)
    if head is None or head.seq != last_seq or head.hash != prev:
        # records cut off the end of the chain: the head still remembers them
        return {"ok": False, "records": count, "first_bad": last_seq + 1}
    return {"ok": True, "records": count, "first_bad": None}
