"""Recording lineage edges and walking the graph they form."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select

from gyre.core.errors import NotFoundError
from gyre.core.lineage import Direction, LineageGraph, RunNode
from gyre.core.store.tables import lineage_edges, runs

if TYPE_CHECKING:
    from gyre.core.store.base import MetadataStore


class LineageRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def record(
        self,
        conn: Connection,
        run_id: str,
        *,
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
    ) -> None:
        """Link ``run_id`` to its input and output nodes, inside the caller's transaction."""
        now = datetime.now(UTC)
        rows = [
            {"run_id": run_id, "node": node, "role": "input", "created_at": now}
            for node in dict.fromkeys(inputs)
        ] + [
            {"run_id": run_id, "node": node, "role": "output", "created_at": now}
            for node in dict.fromkeys(outputs)
        ]
        if rows:
            conn.execute(insert(lineage_edges), rows)

    def known(self, node: str) -> bool:
        with self._store.engine.connect() as conn:
            return (
                conn.execute(
                    select(lineage_edges.c.id).where(lineage_edges.c.node == node).limit(1)
                ).first()
                is not None
            )

    def graph(
        self, node: str, *, direction: Direction = "both", max_depth: int = 100_000
    ) -> LineageGraph:
        """The subgraph reachable from ``node`` upstream, downstream or both."""
        if not self.known(node):
            raise NotFoundError(
                f"'{node}' has no lineage recorded",
                hint="check the reference with `gyre datasets list` / `gyre models list`",
            )
        graph = LineageGraph(root=node)
        graph.nodes.add(node)
        with self._store.engine.connect() as conn:
            if direction in ("upstream", "both"):
                self._walk(conn, graph, node, upstream=True, max_depth=max_depth)
            if direction in ("downstream", "both"):
                self._walk(conn, graph, node, upstream=False, max_depth=max_depth)
        return graph

    def _walk(
        self, conn: Connection, graph: LineageGraph, start: str, *, upstream: bool, max_depth: int
    ) -> None:
        # Upstream: runs that output this node, then those runs' inputs. Downstream: the reverse.
        near_role, far_role = ("output", "input") if upstream else ("input", "output")
        queue: deque[tuple[str, int]] = deque([(start, 0)])
        seen_nodes = {start}
        seen_runs: set[str] = set()
        while queue:
            node, depth = queue.popleft()
            if depth >= max_depth:
                continue
            run_ids = conn.execute(
                select(lineage_edges.c.run_id).where(
                    lineage_edges.c.node == node, lineage_edges.c.role == near_role
                )
            ).scalars()
            for run_id in set(run_ids):
                graph.edges.add((run_id, node) if upstream else (node, run_id))
                if run_id in seen_runs:
                    continue
                seen_runs.add(run_id)
                run = conn.execute(select(runs).where(runs.c.id == run_id)).one()
                graph.runs[run_id] = RunNode(
                    run.id, run.kind, run.job, run.status, run.started_at.isoformat()
                )
                far_nodes = conn.execute(
                    select(lineage_edges.c.node).where(
                        lineage_edges.c.run_id == run_id, lineage_edges.c.role == far_role
                    )
                ).scalars()
                for far in far_nodes:
                    graph.nodes.add(far)
                    graph.edges.add((far, run_id) if upstream else (run_id, far))
                    if far not in seen_nodes:
                        seen_nodes.add(far)
                        queue.append((far, depth + 1))

    def edges_of_run(self, run_id: str) -> dict[str, list[str]]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(lineage_edges.c.node, lineage_edges.c.role).where(
                    lineage_edges.c.run_id == run_id
                )
            ).all()
        out: dict[str, list[str]] = {"input": [], "output": []}
        for row in rows:
            out[row.role].append(row.node)
        return out
