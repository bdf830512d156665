"""Rendering a lineage graph as a tree a person can follow."""

from __future__ import annotations

from rich.tree import Tree

from gyre.core.lineage import LineageGraph


def render_tree(graph: LineageGraph, direction: str) -> Tree:
    root = Tree(f"[bold]{graph.root}[/]")
    if direction in ("upstream", "both"):
        branch = root.add("[dim]upstream (made from)[/]") if direction == "both" else root
        _grow(graph, graph.root, branch, upstream=True, seen=set())
    if direction in ("downstream", "both"):
        branch = root.add("[dim]downstream (used by)[/]") if direction == "both" else root
        _grow(graph, graph.root, branch, upstream=False, seen=set())
    return root


def _grow(graph: LineageGraph, node: str, tree: Tree, *, upstream: bool, seen: set[str]) -> None:
    if node in seen:
        return
    seen.add(node)
    if upstream:
        run_ids = sorted(a for a, b in graph.edges if b == node and a in graph.runs)
    else:
        run_ids = sorted(b for a, b in graph.edges if a == node and b in graph.runs)
    for run_id in run_ids:
        run = graph.runs[run_id]
        run_branch = tree.add(
            f"[cyan]{run.kind}[/] {run.job} [dim]run {run.id[:8]} {run.status}[/]"
        )
        if upstream:
            nexts = sorted(a for a, b in graph.edges if b == run_id)
        else:
            nexts = sorted(b for a, b in graph.edges if a == run_id)
        for other in nexts:
            child = run_branch.add(other)
            _grow(graph, other, child, upstream=upstream, seen=seen)
