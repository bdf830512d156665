"""Validating events against the vendored OpenLineage 2-0-2 schema and its facet schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openlineage"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


@cache
def registry() -> Registry:
    documents = [
        load("OpenLineage-2-0-2.json"),
        load("OpenLineage-1-0-2.json"),
        *(load(f"facets/{p.name}") for p in sorted((FIXTURES / "facets").glob("*.json"))),
    ]
    return Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
        for doc in documents
    )


def _facets(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from event["run"].get("facets", {}).values()
    yield from event["job"].get("facets", {}).values()
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        yield from dataset.get("facets", {}).values()


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``event`` and each of its facets are valid."""
    checker = Draft202012Validator.FORMAT_CHECKER
    Draft202012Validator(
        load("OpenLineage-2-0-2.json"), registry=registry(), format_checker=checker
    ).validate(event)
    for facet in _facets(event):
        Draft202012Validator(
            {"$ref": facet["_schemaURL"]}, registry=registry(), format_checker=checker
        ).validate(facet)
