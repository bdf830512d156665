"""Appending to and reading the audit hash chain (see gyre.core.audit for the chain itself)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from gyre.core.audit import (
    GENESIS,
    AuditEvent,
    ChainProblem,
    canonical_json,
    event_hash,
    utc_timestamp,
    verify_chain,
)
from gyre.core.store.tables import audit_events, audit_head

if TYPE_CHECKING:
    from gyre.core.store.base import MetadataStore

_BATCH = 5000


class AuditRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def append(
        self,
        conn: Connection,
        *,
        action: str,
        entity: str,
        payload: dict[str, Any],
        actor: str | None = None,
    ) -> AuditEvent:
        """Append one event inside the caller's transaction.

        Locking the head row (``FOR UPDATE``) makes concurrent appenders queue up on PostgreSQL;
        SQLite's ``BEGIN IMMEDIATE`` already serialises writers.
        """
        from gyre.core.store.base import current_actor

        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        ).first()
        seq = (head.seq if head else 0) + 1
        prev = head.hash if head else GENESIS
        when = utc_timestamp()
        who = actor or current_actor()
        body = canonical_json(payload)
        digest = event_hash(
            seq=seq,
            time=when,
            actor=who,
            action=action,
            entity=entity,
            payload=body,
            prev_hash=prev,
        )
        conn.execute(
            insert(audit_events).values(
                seq=seq,
                time=when,
                actor=who,
                action=action,
                entity=entity,
                payload=body,
                prev_hash=prev,
                hash=digest,
            )
        )
        if head is None:
            conn.execute(insert(audit_head).values(id=1, seq=seq, hash=digest))
        else:
            conn.execute(
                update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest)
            )
        return AuditEvent(seq, when, who, action, entity, body, prev, digest)

    def iter_events(self, *, since: int = 0) -> Iterator[AuditEvent]:
        """Events in sequence order, read in batches so a long trail needs little memory."""
        last = since
        while True:
            with self._store.engine.connect() as conn:
                rows = conn.execute(
                    select(audit_events)
                    .where(audit_events.c.seq > last)
                    .order_by(audit_events.c.seq)
                    .limit(_BATCH)
                ).all()
            if not rows:
                return
            for row in rows:
                yield AuditEvent(
                    row.seq,
                    row.time,
                    row.actor,
                    row.action,
                    row.entity,
                    row.payload,
                    row.prev_hash,
                    row.hash,
                )
            last = rows[-1].seq

    def recent(
        self, *, limit: int | None = None, action: str | None = None, entity: str | None = None
    ) -> list[AuditEvent]:
        """The newest ``limit`` events (all when None), oldest first, optionally filtered."""
        query = select(audit_events).order_by(audit_events.c.seq.desc())
        if action:
            query = query.where(audit_events.c.action == action)
        if entity:
            query = query.where(audit_events.c.entity == entity)
        if limit:
            query = query.limit(limit)
        with self._store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEvent(r.seq, r.time, r.actor, r.action, r.entity, r.payload, r.prev_hash, r.hash)
            for r in reversed(rows)
        ]

    def verify(self) -> tuple[int, ChainProblem | None]:
        with self._store.engine.connect() as conn:
            head_row = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).first()
        head = (head_row.seq, head_row.hash) if head_row else None
        return verify_chain(self.iter_events(), head)
