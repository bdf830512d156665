"""The audit trail: every state change as an event in a hash chain.

Each event's hash covers its own fields and the previous event's hash, so editing, deleting or
reordering any stored row breaks the chain at that row. ``verify_chain`` walks the events in
order and names the first one that does not fit; the store also keeps the newest sequence
number and hash in a separate head row, so deleting the last events is caught too.

The hash is BLAKE3 over canonical JSON (sorted keys, no spaces): independent of database,
driver or dictionary order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import blake3

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: one text per value, for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def utc_timestamp(moment: datetime | None = None) -> str:
    """A fixed-width ISO-8601 UTC timestamp with microseconds (``2026-01-02T03:04:05.000006Z``)."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    time: str
    actor: str
    action: str
    entity: str
    payload: str  # canonical JSON text, stored and hashed exactly as is
    prev_hash: str
    hash: str

    @property
    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "entity": self.entity,
            "payload": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def event_hash(
    *, seq: int, time: str, actor: str, action: str, entity: str, payload: str, prev_hash: str
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "time": time,
            "actor": actor,
            "action": action,
            "entity": entity,
            "payload": payload,
            "prev_hash": prev_hash,
        }
    )
    return blake3.blake3(body.encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    """Where the chain breaks: the event (by sequence number) and what is wrong with it."""

    seq: int
    reason: str


def verify_chain(
    events: Iterable[AuditEvent], head: tuple[int, str] | None
) -> tuple[int, ChainProblem | None]:
    """Check every event against its predecessor. Returns (events checked, first problem)."""
    expected_seq = 1
    prev_hash = GENESIS
    count = 0
    for event in events:
        count += 1
        if event.seq != expected_seq:
            missing = "deleted" if event.seq > expected_seq else "duplicated or reordered"
            return count, ChainProblem(
                event.seq,
                f"expected event #{expected_seq} but found #{event.seq}: events were {missing}",
            )
        if event.prev_hash != prev_hash:
            return count, ChainProblem(
                event.seq, "its prev_hash does not match the previous event's hash"
            )
        recomputed = event_hash(
            seq=event.seq,
            time=event.time,
            actor=event.actor,
            action=event.action,
            entity=event.entity,
            payload=event.payload,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return count, ChainProblem(
                event.seq, "its contents were changed after it was written (hash mismatch)"
            )
        prev_hash = event.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head is not None and (head[0] != last_seq or head[1] != prev_hash):
        return count, ChainProblem(
            last_seq + 1 if head[0] > last_seq else head[0],
            f"the chain head records event #{head[0]} but the trail ends at #{last_seq}: "
            "events were deleted from the end, or the head was edited",
        )
    if head is None and count:
        return count, ChainProblem(1, "the audit head row is missing")
    return count, None
