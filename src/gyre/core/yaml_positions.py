"""YAML with line numbers, and pydantic errors turned into ``file:line key: what was expected``.

Users edit ``gyre.yaml`` and contract files by hand, so every complaint about them must point at a
line. PyYAML's ``safe_load`` throws positions away; here the document is composed into nodes first
(which carry marks), positions are recorded for every mapping key and list item, and only then are
the Python values constructed from the same nodes, so values and positions cannot disagree.

    doc = load_yaml(Path("gyre.yaml"))
    try:
        cfg = ProjectConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise doc.validation_error(exc, ProjectConfig) from None

A pydantic error location such as ``("models", "demand", "trainer")`` is mapped to the line of
that key; a missing key points at its parent mapping, because the missing key has no line.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gyre.core.errors import ConfigError

PathKey = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a number, as YAML 1.2 does.

    PyYAML follows YAML 1.1, where a float needs a dot, so ``learning_rate: 1e-3`` would arrive
    as the *string* "1e-3" and fail far from the file. ML configs are full of such numbers.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)
_MAX_LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong at one place in a YAML document (``path`` is the key path)."""

    path: PathKey
    message: str
    hint: str | None = None


def format_key(path: Sequence[str | int]) -> str:
    """Dotted key for messages: ``models.demand.gates[1].metric``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML values plus the 1-based line of every key and list item."""

    data: Any
    file: str
    positions: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of ``path``, or of its nearest ancestor that exists in the file."""
        key = tuple(path)
        while True:
            if key in self.positions:
                return self.positions[key]
            if not key:
                return None
            key = key[:-1]

    def error(
        self, path: Sequence[str | int], message: str, *, hint: str | None = None
    ) -> ConfigError:
        """A :class:`ConfigError` pointing at ``path`` in this file."""
        return ConfigError(
            message,
            file=self.file,
            line=self.line_of(path),
            key=format_key(path) or None,
            hint=hint,
        )

    def problems_error(self, problems: Sequence[Problem]) -> ConfigError:
        """One error for several problems: the first (by line) leads, the others follow."""
        ordered = sorted(problems, key=lambda p: (self.line_of(p.path) or 0, format_key(p.path)))
        first, rest = ordered[0], ordered[1:]
        message = first.message
        for other in rest[:_MAX_LISTED_PROBLEMS]:
            where = self.file
            line = self.line_of(other.path)
            if line:
                where = f"{where}:{line}"
            message += f"\n  also {where} {format_key(other.path)}: {other.message}"
        if len(rest) > _MAX_LISTED_PROBLEMS:
            message += f"\n  ... and {len(rest) - _MAX_LISTED_PROBLEMS} more"
        return self.error(first.path, message, hint=first.hint)

    def resolve_loc(self, loc: Sequence[str | int]) -> PathKey:
        """Map a pydantic error location onto a key path of this document.

        Parts that are not keys of the data (union branch tags, ``[key]`` markers for dict-key
        errors) are dropped; a final key that is absent (a missing required key) is kept so the
        message can name it, while :meth:`line_of` falls back to its parent's line.
        """
        cur: Any = self.data
        out: list[str | int] = []
        for i, part in enumerate(loc):
            in_dict = isinstance(cur, dict) and part in cur
            in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
            if in_dict or in_list:
                out.append(part)
                cur = cur[part]
            elif (
                i == len(loc) - 1
                and isinstance(part, str)
                and not part.startswith("[")
                and (isinstance(cur, dict) or cur is None)
            ):
                out.append(part)
        return tuple(out)

    def validation_error(self, exc: ValidationError, model: type[BaseModel]) -> ConfigError:
        """Turn a pydantic ``ValidationError`` for this document into one readable error."""
        problems = []
        unknown: dict[PathKey, list[str]] = {}
        for err in exc.errors(include_url=False):
            path = self.resolve_loc(err["loc"])
            problems.append(_problem_from_pydantic(err, path, model))
            if err["type"] == "extra_forbidden" and path:
                unknown.setdefault(path[:-1], []).append(str(path[-1]))
        # A misspelt required key shows up twice: missing here, unknown there. Tie them together.
        for i, problem in enumerate(problems):
            if problem.message.startswith("required key") and problem.path:
                wanted = str(problem.path[-1])
                close = difflib.get_close_matches(wanted, unknown.get(problem.path[:-1], []), n=1)
                if close:
                    line = self.line_of((*problem.path[:-1], close[0]))
                    hint = f"'{close[0]}' on line {line} looks like a misspelling of '{wanted}'"
                    problems[i] = Problem(problem.path, problem.message, hint)
        return self.problems_error(problems)


def load_yaml(
    path: Path, *, display_name: str | None = None, missing_hint: str | None = None
) -> YamlDocument:
    """Read and parse a YAML file, keeping positions. Errors name the file (and line)."""
    name = display_name or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name} does not exist", hint=missing_hint) from None
    except IsADirectoryError:
        raise ConfigError(f"{name} is a directory, expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            file=name,
            line=line,
            hint="save the file as UTF-8",
        ) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text; ``file`` is only used in messages. An empty document is an error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError("the file is empty", file=file, hint="see `gyre init` for a template")
        positions: dict[PathKey, int] = {(): node.start_mark.line + 1}
        _walk(loader, node, (), positions, file, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        raise ConfigError(
            f"YAML syntax error: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            hint="check indentation, colons and brackets on this line or the one above",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error: {exc}", file=file) from None
    finally:
        loader.dispose()
    return YamlDocument(data=data, file=file, positions=positions)


def _walk(
    loader: _Loader,
    node: yaml.Node,
    path: PathKey,
    positions: dict[PathKey, int],
    file: str,
    active: set[int],
) -> None:
    # Aliases can make a node its own descendant; `active` stops the recursion there.
    if id(node) in active:
        return
    active.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    _walk_merge(loader, value_node, path, positions, file, active)
                    continue
                key = loader.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable key: construct_document reports it with its line
                if first is not None:
                    raise ConfigError(
                        f"duplicate key '{key}' (first defined at line {first})",
                        file=file,
                        line=line,
                        key=format_key((*path, key)),
                        hint="YAML keeps only the last value; remove one of them",
                    )
                seen[key] = line
                child = (*path, key)
                positions[child] = line
                _walk(loader, value_node, child, positions, file, active)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = (*path, i)
                positions[child] = item.start_mark.line + 1
                _walk(loader, item, child, positions, file, active)
    finally:
        active.discard(id(node))


def _walk_merge(
    loader: _Loader,
    node: yaml.Node,
    path: PathKey,
    positions: dict[PathKey, int],
    file: str,
    active: set[int],
) -> None:
    # `<<: *base` copies keys from elsewhere; their positions are the anchor's, and keys written
    # explicitly in this mapping win, as they do in the constructed value.
    merged: dict[PathKey, int] = {}
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for source in sources:
        _walk(loader, source, path, merged, file, active)
    for key, line in merged.items():
        positions.setdefault(key, line)


# ---------------------------------------------------------------- pydantic errors -> messages


def _describe_input(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_type": "a date (YYYY-MM-DD)",
}


def _problem_from_pydantic(err: ErrorDetails, path: PathKey, model: type[BaseModel]) -> Problem:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    last = path[-1] if path else ""
    if kind == "missing":
        return Problem(path, f"required key '{last}' is missing")
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, path[:-1])
        message = f"unknown key '{last}'"
        hint = None
        if allowed:
            message += f"; expected one of {', '.join(allowed)}"
            close = difflib.get_close_matches(str(last), allowed, n=1)
            if close:
                hint = f"did you mean '{close[0]}'?"
        return Problem(path, message, hint)
    if kind == "literal_error":
        return Problem(path, f"expected {ctx.get('expected')}, got {_describe_input(value)}")
    if kind in _EXPECTED:
        return Problem(path, f"expected {_EXPECTED[kind]}, got {_describe_input(value)}")
    if kind in ("value_error", "assertion_error"):
        msg = str(ctx.get("error", err["msg"]))
        return Problem(path, msg)
    msg = err["msg"]
    if msg.startswith("Input should be "):
        msg = "must be " + msg[len("Input should be ") :]
    elif msg:
        msg = msg[0].lower() + msg[1:]
    return Problem(path, f"{msg}, got {_describe_input(value)}")


def allowed_keys(model: type[BaseModel], path: Iterable[str | int]) -> list[str] | None:
    """Field names of the model found at ``path`` below ``model``, or None if not a model."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return None
    target = _as_model(current)
    return list(target.model_fields) if target is not None else None


def _as_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in _union_args(tp):
        found = _as_model(arg)
        if found is not None:
            return found
    return None


def _union_args(tp: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    if origin is typing.Annotated:
        return typing.get_args(tp)[:1]
    return ()


def _step(tp: Any, part: str | int) -> Any:
    model = _as_model(tp)
    if model is not None and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    for candidate in (tp, *_union_args(tp)):
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin is dict and len(args) == 2:
            return args[1]
        if origin in (list, tuple) and args and isinstance(part, int):
            return args[0]
    return None
