"""Lineage nodes and the graph that links them through runs.

A node is named by a short reference string, the same one users type on the command line:

    dataset:features@3        a dataset version          (typed as features@3)
    model:demand:2            a model version            (typed as demand:2)
    endpoint:demand           an endpoint
    file:<path>@b3:<hash>     a raw input file, by content
    source:rentals            a configured source

Runs connect their input nodes to their output nodes (``lineage_edges``). Walking upstream
from an endpoint goes through its deploy runs to model versions, their training runs, the
dataset versions those read, the prepare and ingest runs, and the raw files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from gyre.core.errors import UsageError

KINDS = ("dataset", "model", "endpoint", "file", "source")
Direction = Literal["upstream", "downstream", "both"]

_DATASET = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)@(?P<version>\d+)$")
_MODEL = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+):(?P<version>\d+)$")


def dataset_node(name: str, version: int) -> str:
    return f"dataset:{name}@{version}"


def model_node(name: str, version: int) -> str:
    return f"model:{name}:{version}"


def endpoint_node(name: str) -> str:
    return f"endpoint:{name}"


def file_node(path: str, content_id: str) -> str:
    return f"file:{path}@{content_id}"


def source_node(name: str) -> str:
    return f"source:{name}"


def parse_node(text: str) -> str:
    """Turn what a user typed into a canonical node reference, or explain the grammar."""
    if ":" in text and text.split(":", 1)[0] in KINDS:
        kind, rest = text.split(":", 1)
        if kind == "dataset" and not _DATASET.match(rest):
            raise UsageError(f"'{text}' is not a dataset version", hint="write dataset:NAME@N")
        if kind == "model" and not _MODEL.match(rest):
            raise UsageError(f"'{text}' is not a model version", hint="write model:NAME:N")
        return text
    if _DATASET.match(text):
        return f"dataset:{text}"
    if _MODEL.match(text):
        return f"model:{text}"
    raise UsageError(
        f"cannot tell what '{text}' refers to",
        hint="use NAME@N for a dataset version, NAME:N for a model version, endpoint:NAME "
        "for an endpoint",
    )


def node_kind(node: str) -> str:
    return node.split(":", 1)[0]


@dataclass(frozen=True)
class RunNode:
    id: str
    kind: str
    job: str
    status: str
    started_at: str


@dataclass
class LineageGraph:
    """A subgraph: nodes, runs, and edges (node -> run for inputs, run -> node for outputs)."""

    root: str
    nodes: set[str] = field(default_factory=set)
    runs: dict[str, RunNode] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def as_dict(self) -> dict[str, object]:
        return {
            "root": self.root,
            "nodes": sorted(self.nodes),
            "runs": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "job": r.job,
                    "status": r.status,
                    "started_at": r.started_at,
                }
                for r in sorted(self.runs.values(), key=lambda r: r.started_at)
            ],
            "edges": [{"from": a, "to": b} for a, b in sorted(self.edges)],
        }
