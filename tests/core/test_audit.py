"""The audit hash chain catches edits, deletions and reordering."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import delete, text, update

from gyre.core.audit import GENESIS, event_hash
from gyre.core.store import MetadataStore
from gyre.core.store.tables import audit_events, audit_head


def _store_with_events(url: str, n: int = 5) -> MetadataStore:
    store = MetadataStore.open(url)
    for i in range(n):
        with store.transaction() as conn:
            store.audit.append(conn, action="test.event", entity=f"thing:{i}", payload={"i": i})
    return store


def test_a_clean_chain_verifies(store_url: str) -> None:
    store = _store_with_events(store_url)
    assert store.audit.verify() == (5, None)
    events = store.audit.recent()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))


def test_editing_a_payload_is_caught_at_that_event(store_url: str) -> None:
    store = _store_with_events(store_url)
    with store.transaction() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 3).values(payload='{"i":9}'))
    _, problem = store.audit.verify()
    assert problem is not None and problem.seq == 3 and "changed" in problem.reason


def test_rehashing_an_edited_event_is_still_caught_at_the_next(store_url: str) -> None:
    store = _store_with_events(store_url)
    event = store.audit.recent()[1]
    forged = event_hash(
        seq=event.seq,
        time=event.time,
        actor="mallory",
        action=event.action,
        entity=event.entity,
        payload=event.payload,
        prev_hash=event.prev_hash,
    )
    with store.transaction() as conn:
        conn.execute(
            update(audit_events).where(audit_events.c.seq == 2).values(actor="mallory", hash=forged)
        )
    _, problem = store.audit.verify()
    assert problem is not None and problem.seq == 3 and "prev_hash" in problem.reason


def test_deleting_a_middle_event_is_caught(store_url: str) -> None:
    store = _store_with_events(store_url)
    with store.transaction() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 2))
    _, problem = store.audit.verify()
    assert problem is not None and problem.seq == 3 and "deleted" in problem.reason


def test_deleting_the_last_event_is_caught_by_the_head(store_url: str) -> None:
    store = _store_with_events(store_url)
    with store.transaction() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 5))
    _, problem = store.audit.verify()
    assert problem is not None and "deleted from the end" in problem.reason


def test_reordering_events_is_caught(store_url: str) -> None:
    store = _store_with_events(store_url)
    with store.transaction() as conn:
        # Swap the contents of events 2 and 3 (keeping their sequence numbers).
        rows = {r.seq: r for r in conn.execute(audit_events.select()).all()}
        for seq, other in ((2, 3), (3, 2)):
            src = rows[other]
            conn.execute(
                update(audit_events)
                .where(audit_events.c.seq == seq)
                .values(
                    time=src.time,
                    actor=src.actor,
                    action=src.action,
                    entity=src.entity,
                    payload=src.payload,
                    prev_hash=src.prev_hash,
                    hash=src.hash,
                )
            )
    _, problem = store.audit.verify()
    assert problem is not None and problem.seq == 2


@pytest.mark.parametrize("column", ["time", "action", "entity"])
def test_any_field_edit_is_caught(store_url: str, column: str) -> None:
    store = _store_with_events(store_url)
    with store.transaction() as conn:
        conn.execute(text(f"UPDATE audit_events SET {column} = {column} || 'x' WHERE seq = 4"))
    _, problem = store.audit.verify()
    assert problem is not None and problem.seq == 4


def test_missing_head_is_caught(store_url: str) -> None:
    store = _store_with_events(store_url)
    with store.transaction() as conn:
        conn.execute(delete(audit_head))
    _, problem = store.audit.verify()
    assert problem is not None and "head" in problem.reason
