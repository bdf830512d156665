"""Model references as users type them: ``demand`` or ``demand:3``."""

from __future__ import annotations

import re

from gyre.core.errors import UsageError

_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(:(?P<version>\d+))?$")


def parse_model_ref(text: str) -> tuple[str, int | None]:
    match = _REF.match(text.removeprefix("model:"))
    if not match:
        raise UsageError(
            f"'{text}' is not a model reference", hint="write NAME or NAME:VERSION, e.g. demand:2"
        )
    version = match.group("version")
    return match.group("name"), int(version) if version else None
