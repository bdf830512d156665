"""Personal data at ingest: find columns that hold PII, tag them, and keep, mask, hash or drop them.

    findings = detect_pii(batch)               # [PiiFinding(column="email", kind="email", ...)]
    schema = tag_schema(batch.schema, findings) # field metadata gyre.pii = "email"
    safe = apply_pii_policy(batch, {"email": "hash", "card": "mask", "notes": "drop"},
                            secret=project_secret)

**Detection** looks at a sample of each text (or integer) column: up to ``sample_rows`` non-null,
non-blank values spread evenly over the column. A detector is an RE2 pattern that must match the
whole trimmed value, then an optional exact check run only on the matches (Luhn, mod-97, ...).
A column is tagged with a kind when at least ``min_share`` of its sampled values pass; a column
name that hints at the kind (``email``, ``phone_number``...) raises the confidence but never tags
a column whose values do not match, except ``person_name``, which a name such as ``last_name``
tags alone (single first names cannot be told from other words by their shape). Each column gets
at most one finding: the kind with the highest share, then the highest confidence.

The built-in kinds, in :data:`DETECTORS` (third parties add theirs with
:func:`register_detector`):

* ``email``: ``local@domain.tld``.
* ``phone``: international ``+CC ...`` (E.164, separators allowed), ``00CC`` followed by a
  separator, North American ``(555) 123-4567`` / ``555-123-4567``, and national numbers with a
  trunk ``0`` and separators (``020 7946 0958``, ``06 12 34 56 78``). Bare digit strings without
  ``+`` are never phones (they are usually ids), and at least 9 digits are needed without a
  ``+`` (7 with one), so dates such as ``01-02-2023`` do not match.
* ``card_number``: 13 to 19 digits, optionally grouped by spaces or dashes, not starting with 0,
  passing the Luhn check.
* ``iban``: country code, two check digits (02 to 98) and 11 to 30 letters or digits, spaces
  allowed, verified with the ISO 13616 mod-97 check (country lengths are not checked).
* ``national_id``: US SSN written ``ddd-dd-dddd`` (area not 000, 666 or 9xx, group not 00, serial
  not 0000; nine bare digits are not tagged: too many ids look like that) and UK National
  Insurance numbers (``AB 12 34 56 C``, with the official prefix letter rules and unallocated
  prefixes refused). French NIR and other national numbers are not detected.
* ``person_name``: two to four capitalised words (``Ada Lovelace``, ``Mary-Jane O'Neil``); place
  names look the same, hence a low confidence unless the column name agrees.

**Policy** per column: ``keep``; ``mask`` (text that keeps its shape: ``j***@example.com``,
``**** **** **** 1234``, ``***-**-6789``, otherwise all but the last 4 characters become ``*``,
and values under 8 characters are masked entirely); ``hash`` (HMAC-SHA256 of the value's UTF-8
text, hex); ``drop``. Masked and hashed columns become text; nulls stay null.

Hashing uses a **project secret** on purpose: a plain SHA-256 of a phone number, card or SSN is
reversible by brute force, since there are only about 10^9 to 10^16 candidates and GPUs hash
billions per second. With a secret key (HMAC), the same value gives the same digest in every
batch of the project, so joins and counts still work, but nobody without the secret can test
guesses. Values are hashed exactly as written: normalise them first (case, spaces) if two
spellings of one email must join.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from gyre.core.errors import ConfigError, DataError

PiiAction = Literal["keep", "mask", "hash", "drop"]
ACTIONS: tuple[str, ...] = get_args(PiiAction)

TAG_KIND = b"gyre.pii"
TAG_CONFIDENCE = b"gyre.pii.confidence"
TAG_ACTION = b"gyre.pii.action"

MIN_SECRET_BYTES = 16

Verifier = Callable[[pa.Array], pa.Array]
"""Exact check on values that matched a detector's pattern: string array in, bool array out."""


@dataclass(frozen=True)
class Detector:
    """One kind of PII: how its values look, and which column names suggest it."""

    name: str
    pattern: str
    """RE2 pattern matched against the whole trimmed value (anchors are added)."""
    verify: Verifier | None = None
    """Exact check run only on pattern matches, e.g. a checksum."""
    column_hint: str | None = None
    """Python regex searched in the column name, normalised to ``snake_case``."""
    confidence: float = 0.9
    """Confidence when the values match."""
    hinted_confidence: float = 0.99
    """Confidence when the values match and the column name agrees."""
    name_alone_confidence: float | None = None
    """When set, a hinting column name tags the column by itself, at this confidence."""
    ignore_case: bool = False

    def matches(self, values: pa.Array) -> np.ndarray:
        """Boolean mask over ``values`` (strings): which values are this kind of PII."""
        text = pc.utf8_upper(values) if self.ignore_case else values
        hit = pc.match_substring_regex(text, pattern=f"^(?:{self.pattern})$").fill_null(False)
        mask = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
        if self.verify is not None and mask.any():
            candidates = np.flatnonzero(mask)
            ok = self.verify(pc.take(text, pa.array(candidates, pa.int64())))
            mask[candidates] = np.asarray(ok.fill_null(False).to_numpy(zero_copy_only=False))
        return mask

    def hinted_by(self, column: str) -> bool:
        return self.column_hint is not None and bool(
            re.search(self.column_hint, normalise_column_name(column))
        )


@dataclass(frozen=True)
class PiiFinding:
    """A column that holds PII of one kind."""

    column: str
    kind: str
    share: float
    """Share of the sampled non-null values that matched (0 for a column tagged by name alone)."""
    sample_size: int
    """Non-null, non-blank values looked at."""
    confidence: float


DETECTORS: dict[str, Detector] = {}
"""The detectors :func:`detect_pii` uses by default, by kind name."""


def register_detector(detector: Detector, *, replace: bool = False) -> Detector:
    """Add a detector to :data:`DETECTORS`; refuses to shadow one unless ``replace``."""
    if detector.name in DETECTORS and not replace:
        raise ValueError(f"a PII detector named '{detector.name}' is already registered")
    try:
        pc.match_substring_regex(pa.array([""]), pattern=detector.pattern)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"detector '{detector.name}': invalid RE2 pattern: {exc}") from None
    DETECTORS[detector.name] = detector
    return detector


def normalise_column_name(name: str) -> str:
    """``firstName`` / ``First Name`` / ``FIRST-NAME`` -> ``first_name``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", snake.lower()).strip("_")


# ------------------------------------------------------------------------------ exact checks


def _char_matrix(values: pa.Array, width: int) -> np.ndarray:
    """ASCII strings of at most ``width`` characters, left-padded with ``0``, as uint8 rows."""
    padded = pc.utf8_lpad(values, width=width, padding="0").cast(pa.string())
    if len(padded) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)
    offsets = offsets[padded.offset : padded.offset + len(padded) + 1]
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[-1]].reshape(len(padded), width)


def _digits_only(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(values, pattern="[^0-9]", replacement="")


def luhn_valid(values: pa.Array) -> pa.Array:
    """Luhn check on digit strings (separators ignored, at most 19 digits), vectorised."""
    digits = _digits_only(values)
    # Left padding with zeros does not change a Luhn sum, so every value fits one width.
    d = _char_matrix(digits, 19).astype(np.int64) - ord("0")
    doubled = np.zeros(19, dtype=bool)
    doubled[-2::-2] = True  # every second digit from the right, starting with the second
    twice = d * 2
    twice = np.where(twice > 9, twice - 9, twice)
    total = np.where(doubled, twice, d).sum(axis=1)
    leading = pc.not_equal(pc.utf8_slice_codeunits(digits, 0, 1), "0")
    return pc.and_(pa.array(total % 10 == 0), leading)


def iban_valid(values: pa.Array) -> pa.Array:
    """ISO 13616 mod-97 check on IBANs (spaces ignored, any case), vectorised."""
    iban = pc.utf8_upper(pc.replace_substring(values, " ", ""))
    check = pc.utf8_slice_codeunits(iban, 2, 4)
    plausible = pc.invert(pc.is_in(check, value_set=pa.array(["00", "01", "99"])))
    moved = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(iban, 4, 34), pc.utf8_slice_codeunits(iban, 0, 4), ""
    )
    chars = _char_matrix(moved, 34).astype(np.int64)
    letter = chars >= ord("A")
    value = np.where(letter, chars - ord("A") + 10, chars - ord("0"))
    scale = np.where(letter, 100, 10)  # a letter stands for two decimal digits
    rest = np.zeros(len(chars), dtype=np.int64)
    for j in range(chars.shape[1]):
        rest = (rest * scale[:, j] + value[:, j]) % 97
    return pc.and_(pa.array(rest == 1), plausible)


_SSN_SHAPE = r"[0-9]{3}-[0-9]{2}-[0-9]{4}"
_NINO_SHAPE = r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]"
_NINO_UNALLOCATED = ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"]


def national_id_valid(values: pa.Array) -> pa.Array:
    """US SSN range rules and UK NINO prefix rules on values of either shape."""
    area = pc.utf8_slice_codeunits(values, 0, 3)
    ssn_ok = pc.and_(
        pc.and_(
            pc.invert(pc.is_in(area, value_set=pa.array(["000", "666"]))),
            pc.invert(pc.starts_with(area, "9")),
        ),
        pc.and_(
            pc.not_equal(pc.utf8_slice_codeunits(values, 4, 6), "00"),
            pc.not_equal(pc.utf8_slice_codeunits(values, 7, 11), "0000"),
        ),
    )
    prefix = pc.utf8_slice_codeunits(values, 0, 2)
    nino_ok = pc.invert(pc.is_in(prefix, value_set=pa.array(_NINO_UNALLOCATED)))
    is_ssn = pc.match_substring_regex(values, pattern=f"^{_SSN_SHAPE}$")
    return pc.if_else(is_ssn, ssn_ok, nino_ok)


def phone_valid(values: pa.Array) -> pa.Array:
    """Digit counts: 7 to 15 after a ``+`` (E.164), otherwise 9 to 17 (trunk or ``00`` prefix)."""
    count = pc.utf8_length(_digits_only(values))
    international = pc.and_(pc.greater_equal(count, 7), pc.less_equal(count, 15))
    national = pc.and_(pc.greater_equal(count, 9), pc.less_equal(count, 17))
    return pc.if_else(pc.starts_with(values, "+"), international, national)


# ------------------------------------------------------------------------------ built-ins

_APOSTROPHE = "['\u2019]"  # the plain apostrophe or the typographic one (U+2019)
_WORD = (
    rf"\p{{Lu}}(?:\p{{Ll}}+(?:{_APOSTROPHE}?\p{{Lu}}\p{{Ll}}+)*|{_APOSTROPHE}\p{{Lu}}\p{{Ll}}+)"
    r"(?:-\p{Lu}\p{Ll}+)?"
)

for _detector in (
    Detector(
        name="email",
        pattern=r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}",
        column_hint=r"(^|_)e_?mail(_|$)",
        confidence=0.95,
    ),
    Detector(
        name="phone",
        pattern=r"\+[1-9][0-9 ().-]{5,20}[0-9]"
        r"|00[1-9][0-9]{0,3}[ .-][0-9 ().-]{3,20}[0-9]"
        r"|(?:\+?1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}"
        r"|\(?0[0-9]{1,4}\)?[ ./-][0-9]{2,8}(?:[ ./-][0-9]{2,8}){0,4}",
        verify=phone_valid,
        column_hint=r"(^|_)(phone|telephone|tel|mobile|cell|fax|msisdn)(_|$)",
        confidence=0.8,
        hinted_confidence=0.95,
    ),
    Detector(
        name="card_number",
        pattern=r"[0-9](?:[ -]?[0-9]){12,18}",
        verify=luhn_valid,
        column_hint=r"(^|_)(card|cc|pan|credit_card)(_|$)|card_?(number|num|no)",
        confidence=0.95,
    ),
    Detector(
        name="iban",
        pattern=r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
        verify=iban_valid,
        column_hint=r"(^|_)(iban|bank_account|account_number)(_|$)",
        confidence=0.95,
        ignore_case=True,
    ),
    Detector(
        name="national_id",
        pattern=f"{_SSN_SHAPE}|{_NINO_SHAPE}",
        verify=national_id_valid,
        column_hint=r"(^|_)(ssn|social_security|nino|ni_number|national_(id|insurance)|tax_id)"
        r"(_|$)",
        confidence=0.9,
        ignore_case=True,
    ),
    Detector(
        name="person_name",
        pattern=rf"{_WORD}(?: \p{{Lu}}\.)?(?: {_WORD}){{1,3}}",
        column_hint=r"(^|_)(first|last|full|given|family|middle|maiden|sur|fore)_?name$|^name$"
        r"|^(customer|contact|person|employee|patient|client|holder|cardholder)_name$",
        confidence=0.4,
        hinted_confidence=0.9,
        name_alone_confidence=0.6,
    ),
):
    register_detector(_detector)


# ------------------------------------------------------------------------------ detection


def detect_pii(
    table: pa.Table,
    *,
    sample_rows: int = 1000,
    min_share: float = 0.8,
    detectors: Mapping[str, Detector] | None = None,
) -> list[PiiFinding]:
    """Columns of ``table`` that look like PII, in column order (see the module docstring)."""
    if sample_rows < 1:
        raise ValueError("sample_rows must be at least 1")
    if not 0 < min_share <= 1:
        raise ValueError("min_share must be in (0, 1]")
    chosen = DETECTORS if detectors is None else detectors
    findings: list[PiiFinding] = []
    for name in table.column_names:
        column = table.column(name)
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        textual = _is_text(kind)
        if not (textual or pa.types.is_integer(kind)):
            continue
        sample = spread_sample(column, sample_rows)
        best: PiiFinding | None = None
        for detector in chosen.values():
            found = _judge(detector, name, sample, min_share, textual)
            if found is not None and (
                best is None or (found.share, found.confidence) > (best.share, best.confidence)
            ):
                best = found
        if best is not None:
            findings.append(best)
    return findings


def _judge(
    detector: Detector, column: str, sample: pa.Array, min_share: float, textual: bool
) -> PiiFinding | None:
    n = len(sample)
    share = float(detector.matches(sample).mean()) if n else 0.0
    hinted = detector.hinted_by(column)
    if n and share >= min_share:
        confidence = detector.hinted_confidence if hinted else detector.confidence
    elif hinted and textual and detector.name_alone_confidence is not None:
        confidence = detector.name_alone_confidence
    else:
        return None
    return PiiFinding(column, detector.name, share, n, confidence)


_OVERSAMPLE = 4  # rows looked at per value sampled, so mostly-blank columns still fill a sample


def even_picks(count: int, size: int) -> np.ndarray:
    """About ``size`` positions spread evenly from 0 to ``count - 1`` (both ends included),
    ascending, each once. Rounded from evenly spaced points, so already in order: repeats are
    dropped by comparing neighbours (``np.unique`` hashed and sorted them, 0.5 ms for 3,000
    picks, which every block paid per column)."""
    picks = np.linspace(0, count - 1, size).round().astype(np.int64)
    if len(picks) > 1:
        keep = np.empty(len(picks), dtype=bool)
        keep[0] = True
        np.not_equal(picks[1:], picks[:-1], out=keep[1:])
        picks = picks[keep]
    return picks


def spread_sample(column: pa.ChunkedArray | pa.Array, size: int) -> pa.Array:
    """Up to ``size`` non-null, non-blank values, trimmed, spread evenly over the column (what
    detection looks at; a file read in blocks keeps such a sample of each block)."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    # Thin the column first (its non-null values; a few times ``size`` of them, evenly
    # spread), then trim and drop blanks: trimming five million values to keep a thousand
    # cost seconds per column, and copying the non-null ones out first cost most of the rest.
    present = len(column) - column.null_count
    if present > size * _OVERSAMPLE:
        picks = even_picks(present, size * _OVERSAMPLE)
        if column.null_count:  # the picks count non-null values: find the rows they are in
            rows = pc.indices_nonzero(pc.is_valid(column)).to_numpy()
            picks = rows[picks]
        column = column.take(pa.array(picks))
    else:
        column = pc.drop_null(column)
    values = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    values = pc.utf8_trim_whitespace(values.cast(pa.string()))
    values = values.filter(pc.greater(pc.utf8_length(values), 0))  # drops nulls too
    if len(values) > size:
        picks = even_picks(len(values), size)
        values = values.take(pa.array(picks))
    return values


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or getattr(pa.types, "is_string_view", lambda _: False)(kind)
    )


def tag_schema(schema: pa.Schema, findings: Sequence[PiiFinding]) -> pa.Schema:
    """``schema`` with each finding recorded in its field's metadata (``gyre.pii``...)."""
    by_column = {f.column: f for f in findings}
    fields = []
    for field in schema:
        found = by_column.get(field.name)
        if found is not None:
            meta = dict(field.metadata or {})
            meta[TAG_KIND] = found.kind.encode()
            meta[TAG_CONFIDENCE] = f"{found.confidence:.2f}".encode()
            field = field.with_metadata(meta)
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


def pii_tags(schema: pa.Schema) -> dict[str, str]:
    """Column -> PII kind, as recorded by :func:`tag_schema`."""
    return {
        f.name: f.metadata[TAG_KIND].decode()
        for f in schema
        if f.metadata is not None and TAG_KIND in f.metadata
    }


# ------------------------------------------------------------------------------ policy


class PiiPolicy(BaseModel):
    """What happens to each PII column; columns not listed are kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: dict[str, PiiAction] = {}

    @classmethod
    def parse(cls, mapping: Mapping[str, str]) -> PiiPolicy:
        """Build from a plain mapping; an unknown action is a :class:`ConfigError`."""
        for column, action in mapping.items():
            if action not in ACTIONS:
                raise ConfigError(
                    f"unknown PII action {action!r} for column '{column}'",
                    key=column,
                    hint=f"use one of: {', '.join(ACTIONS)}",
                )
        return cls.model_validate({"columns": dict(mapping)})


def apply_pii_policy(
    table: pa.Table, policy: PiiPolicy | Mapping[str, str], *, secret: bytes
) -> pa.Table:
    """``table`` with each listed column kept, masked, hashed (HMAC-SHA256 with ``secret``) or
    dropped. Masked and hashed columns become ``string``; their field records the action."""
    if not isinstance(policy, PiiPolicy):
        policy = PiiPolicy.parse(policy)
    missing = [c for c in policy.columns if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"the PII policy names column(s) {', '.join(missing)}, which the table lacks",
            key=missing[0],
            hint=f"the table has: {', '.join(table.column_names)}",
        )
    if "hash" in policy.columns.values():
        _check_secret(secret)
    for column, action in policy.columns.items():
        if action == "keep":
            continue
        if action == "drop":
            table = table.drop_columns([column])
            continue
        i = table.schema.get_field_index(column)
        field = table.schema.field(i)
        values = table.column(i)
        out = mask_values(values, column) if action == "mask" else hash_values(values, secret)
        meta = {**(field.metadata or {}), TAG_ACTION: action.encode()}
        table = table.set_column(i, pa.field(column, pa.string(), metadata=meta), out)
    return table


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"hashing PII needs a project secret of at least {MIN_SECRET_BYTES} bytes",
            hint="generate one with `python -c 'import secrets; print(secrets.token_hex(32))'` "
            "and keep it out of version control",
        )


def hash_values(values: pa.Array | pa.ChunkedArray, secret: bytes) -> pa.Array:
    """HMAC-SHA256 hex digest of each value's text (bytes as they are); nulls stay null.

    Each distinct value is hashed once: Python's ``hmac`` is the one per-value loop here.
    """
    _check_secret(secret)
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    encoded = arr if pa.types.is_dictionary(arr.type) else _encodable(arr).dictionary_encode()
    distinct = _encodable(encoded.dictionary)
    base = hmac.new(secret, digestmod=hashlib.sha256)
    digests: list[str | None] = []
    for value in distinct.to_pylist():
        if value is None:
            digests.append(None)
            continue
        h = base.copy()
        h.update(value.encode() if isinstance(value, str) else value)
        digests.append(h.hexdigest())
    return pa.array(digests, pa.string()).take(encoded.indices)


def _encodable(arr: pa.Array) -> pa.Array:
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type) or _is_text(arr.type):
        return arr
    try:
        return arr.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"values of type {arr.type} cannot be hashed as text",
            hint="hash scalar columns only, or drop this one",
        ) from None


_EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+$"
_DIGITS_SHAPE = r"^[0-9 +().\-/]+$"
_LAST_FOUR_DIGITS = r"^(?P<head>.*?)(?P<tail>(?:[0-9][^0-9]*){4})$"
_KEPT_TAIL = 4
_MIN_LENGTH_FOR_TAIL = 8


def mask_values(values: pa.Array | pa.ChunkedArray, column: str = "") -> pa.Array:
    """Values with most characters replaced by ``*``, keeping their shape; nulls stay null.

    Emails keep their first character and domain, digit strings (cards, phones, SSNs) their
    separators and last 4 digits, anything else its last 4 characters; values with fewer than
    8 characters (or digits) keep nothing.
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not _is_text(arr.type):
        if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            raise DataError(
                f"column '{column}' holds bytes, which cannot be masked as text",
                hint="hash or drop binary columns",
            )
        arr = _encodable(arr)
    text = arr.cast(pa.string())

    length = pc.utf8_length(text)
    stars_all = pc.binary_repeat(pa.scalar("*"), length)
    stars_head = pc.binary_repeat(pa.scalar("*"), pc.max_element_wise(pc.subtract(length, 4), 0))
    tail = pc.utf8_slice_codeunits(text, -_KEPT_TAIL)
    generic = pc.if_else(
        pc.greater_equal(length, _MIN_LENGTH_FOR_TAIL),
        pc.binary_join_element_wise(stars_head, tail, ""),
        stars_all,
    )

    digit_count = pc.utf8_length(_digits_only(text))
    digit_shaped = pc.and_(
        pc.match_substring_regex(text, pattern=_DIGITS_SHAPE),
        pc.greater_equal(digit_count, _MIN_LENGTH_FOR_TAIL),
    )
    parts = pc.extract_regex(text, pattern=_LAST_FOUR_DIGITS)
    head = pc.replace_substring_regex(pc.struct_field(parts, "head"), "[0-9]", "*")
    digits = pc.binary_join_element_wise(head, pc.struct_field(parts, "tail"), "")

    email_shaped = pc.match_substring_regex(text, pattern=_EMAIL_SHAPE)
    email = pc.replace_substring_regex(text, pattern="^([^@])[^@]*@", replacement=r"\1***@")

    masked = pc.if_else(email_shaped, email, pc.if_else(digit_shaped, digits, generic))
    return masked.cast(pa.string())
