"""PII: detectors (true and false positives), column tagging, and the keep/mask/hash/drop policy."""

from __future__ import annotations

import hashlib
import hmac
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gyre.core.errors import ConfigError, DataError
from gyre.ingest.pii import (
    DETECTORS,
    TAG_ACTION,
    Detector,
    PiiFinding,
    PiiPolicy,
    apply_pii_policy,
    detect_pii,
    hash_values,
    iban_valid,
    luhn_valid,
    mask_values,
    normalise_column_name,
    pii_tags,
    register_detector,
    tag_schema,
)

SECRET = b"project-secret-0123456789"


def matches(kind: str, value: str) -> bool:
    return bool(DETECTORS[kind].matches(pa.array([value]))[0])


def luhn_reference(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_reference(body + d))


def iban_with_check(country: str, bban: str) -> str:
    moved = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in moved))
    return f"{country}{98 - number % 97:02d}{bban}"


def finding(table: pa.Table, column: str, **kwargs: float) -> PiiFinding | None:
    found = [f for f in detect_pii(table, **kwargs) if f.column == column]  # type: ignore[arg-type]
    return found[0] if found else None


# ---------------------------------------------------------------------------- detectors


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("email", "john.doe@example.com", True),
        ("email", "a+tag@mail.example.co.uk", True),
        ("email", "John.Doe@Example.COM", True),
        ("email", "john@", False),
        ("email", "@example.com", False),
        ("email", "john at example.com", False),
        ("email", "john@localhost", False),
        ("email", "two@@example.com", False),
        ("phone", "+44 20 7946 0958", True),
        ("phone", "+4915112345678", True),
        ("phone", "+1 (555) 123-4567", True),
        ("phone", "(555) 123-4567", True),
        ("phone", "555-123-4567", True),
        ("phone", "555.123.4567", True),
        ("phone", "020 7946 0958", True),
        ("phone", "06 12 34 56 78", True),
        ("phone", "0049 30 123456", True),
        ("phone", "030/1234567", True),
        ("phone", "3", False),
        ("phone", "12345", False),
        ("phone", "5551234567", False),  # bare digits: an id as often as a phone
        ("phone", "0612345678", False),
        ("phone", "00123456789", False),
        ("phone", "+12", False),
        ("phone", "2021-03-04", False),
        ("phone", "01-02-2023", False),
        ("phone", "01/02/2023", False),
        ("phone", "01.02.2023", False),
        ("phone", "192.168.100.100", False),
        ("phone", "123-45-6789", False),
        ("phone", "4111 1111 1111 1111", False),
        ("card_number", "4111 1111 1111 1111", True),
        ("card_number", "4111-1111-1111-1111", True),
        ("card_number", "4111111111111111", True),
        ("card_number", "378282246310005", True),
        ("card_number", "6011111111111117", True),
        ("card_number", "4222222222222", True),
        ("card_number", "5500 0000 0000 0004", True),
        ("card_number", "4111111111111112", False),  # Luhn fails
        ("card_number", "4111 1111 1111 1121", False),
        ("card_number", "0000000000000000", False),  # passes Luhn, but no issuer starts with 0
        ("card_number", "411111111111", False),  # 12 digits
        ("card_number", "41111111111111111111", False),  # 20 digits
        ("card_number", "4111  1111 1111 1111", False),
        ("card_number", "4111_1111_1111_1111", False),
        ("iban", "DE89 3704 0044 0532 0130 00", True),
        ("iban", "GB82WEST12345698765432", True),
        ("iban", "gb82 west 1234 5698 7654 32", True),
        ("iban", "NL91ABNA0417164300", True),
        ("iban", "FR1420041010050500013M02606", True),
        ("iban", "DE88 3704 0044 0532 0130 00", False),  # wrong check digits
        ("iban", "GB82WEST12345698765433", False),
        ("iban", "DE89", False),
        ("iban", "DE89 3704", False),
        ("national_id", "123-45-6789", True),
        ("national_id", "078-05-1120", True),
        ("national_id", "AB 12 34 56 C", True),
        ("national_id", "ab123456c", True),
        ("national_id", "JG103759A", True),
        ("national_id", "000-12-3456", False),
        ("national_id", "666-12-3456", False),
        ("national_id", "900-12-3456", False),
        ("national_id", "123-00-4567", False),
        ("national_id", "123-45-0000", False),
        ("national_id", "123456789", False),  # nine bare digits are not an SSN here
        ("national_id", "BG 12 34 56 C", False),  # unallocated prefix
        ("national_id", "QQ123456C", False),  # Q is never a first letter
        ("national_id", "AO123456A", False),  # O is never a second letter
        ("national_id", "AB123456E", False),  # suffix is A to D
        ("person_name", "Ada Lovelace", True),
        ("person_name", "Mary-Jane O'Neil", True),
        ("person_name", "Ronald McDonald", True),
        ("person_name", "John F. Kennedy", True),
        ("person_name", "Élodie Durand", True),
        ("person_name", "Ada", False),
        ("person_name", "ada lovelace", False),
        ("person_name", "ADA LOVELACE", False),
        ("person_name", "A B", False),
        ("person_name", "Ada Lovelace 3", False),
    ],
)
def test_detector(kind: str, value: str, expected: bool) -> None:
    assert matches(kind, value) is expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=19))
def test_vectorised_luhn_agrees_with_the_textbook(digits: str) -> None:
    expected = luhn_reference(digits) and not digits.startswith("0")
    assert luhn_valid(pa.array([digits])).to_pylist() == [expected]


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(alphabet="0123456789", min_size=12, max_size=18).filter(lambda s: s[0] != "0"),
    sep=st.sampled_from(["", " ", "-"]),
)
def test_valid_card_numbers_are_always_detected(body: str, sep: str) -> None:
    card = with_check_digit(body)
    written = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    assert matches("card_number", written)
    broken = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert not matches("card_number", broken)
    found = finding(pa.table({"payment": [written] * 3}), "payment")
    assert found is not None
    assert (found.kind, found.share, found.confidence) == ("card_number", 1.0, 0.95)


@settings(max_examples=200, deadline=None)
@given(
    country=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    bban=st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=11, max_size=30),
    data=st.data(),
)
def test_mod97_accepts_valid_ibans_and_catches_one_digit_errors(
    country: str, bban: str, data: st.DataObject
) -> None:
    iban = iban_with_check(country, bban)
    if iban[2:4] in ("00", "01", "99"):  # never produced by the ISO algorithm, refused
        return
    assert iban_valid(pa.array([iban])).to_pylist() == [True]
    assert matches("iban", iban.lower())
    digits = [i for i, c in enumerate(iban) if c.isdigit()]
    i = data.draw(st.sampled_from(digits))
    wrong = str((int(iban[i]) + data.draw(st.integers(1, 9))) % 10)
    assert iban_valid(pa.array([iban[:i] + wrong + iban[i + 1 :]])).to_pylist() == [False]


# ---------------------------------------------------------------------------- detect_pii


def test_detect_pii_tags_columns_and_weighs_names() -> None:
    table = pa.table(
        {
            "email": ["john@example.com", "ada@example.org", None, "  "],
            "contact": ["john@example.com", "ada@example.org", "x@y.io", "q@r.de"],
            "customerName": ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Linus Torvalds"],
            "city": ["New York", "San Francisco", "Los Angeles", "Buenos Aires"],
            "first_name": ["Ada", "Alan", "Grace", None],
            "name": [1, 2, 3, 4],
            "phone": ["+44 20 7946 0958", "(555) 123-4567", "06 12 34 56 78", "+4915112345678"],
            "amount": [1.5, 2.0, 3.0, 4.0],
        }
    )
    found = {f.column: f for f in detect_pii(table)}
    assert found["email"] == PiiFinding("email", "email", 1.0, 2, 0.99)
    assert found["contact"] == PiiFinding("contact", "email", 1.0, 4, 0.95)
    assert found["customerName"] == PiiFinding("customerName", "person_name", 1.0, 4, 0.9)
    # Place names look like person names: tagged, but with low confidence.
    assert found["city"] == PiiFinding("city", "person_name", 1.0, 4, 0.4)
    # Single first names do not match by value; the column name tags them alone.
    assert found["first_name"] == PiiFinding("first_name", "person_name", 0.0, 3, 0.6)
    assert found["phone"].kind == "phone"
    assert found["phone"].confidence == 0.95
    assert "name" not in found  # a name hint never tags numbers
    assert "amount" not in found
    assert list(found) == [c for c in table.column_names if c in found]


def test_column_names_alone_do_not_tag() -> None:
    table = pa.table(
        {
            "email": ["n/a", "unknown", "none", "-"],
            "card_number": pa.array([4111111111111112, 1234567890123456, 42, 7]),
            "ssn": ["123456789", "987654321", "111223333", "123456780"],
            "phone": pa.array([1, 2, 3, 45], pa.int32()),
            "iban": ["DE88 3704 0044 0532 0130 00"] * 4,
        }
    )
    assert detect_pii(table) == []


def test_integer_card_numbers_are_checked_as_text() -> None:
    cards = pa.array([4111111111111111, 4012888888881881, 5500000000000004, None], pa.int64())
    found = finding(pa.table({"pan": cards}), "pan")
    assert found == PiiFinding("pan", "card_number", 1.0, 3, 0.99)
    ids = pa.table({"id": pa.array(np.arange(10**15, 10**15 + 500), pa.int64())})
    assert detect_pii(ids) == []  # a tenth pass Luhn by chance: far below min_share


def test_min_share_and_sample_size() -> None:
    values = ["a@example.com", "b@example.com", "c@example.com", "not an email"]
    table = pa.table({"mixed": values})
    assert finding(table, "mixed") is None
    found = finding(table, "mixed", min_share=0.75)
    assert found is not None
    assert (found.share, found.sample_size) == (0.75, 4)
    with pytest.raises(ValueError, match="min_share"):
        detect_pii(table, min_share=0)
    with pytest.raises(ValueError, match="sample_rows"):
        detect_pii(table, sample_rows=0)


def test_sample_spreads_over_the_whole_column() -> None:
    n = 100_000
    emails = pa.array([f"user{i}@example.com" for i in range(n // 2)])
    words = pa.array(["lorem"] * (n // 2))
    column = pa.chunked_array([words, emails])  # sorted data: the head alone would mislead
    table = pa.table({"mostly_null": pa.array([None] * (n - 5) + ["x@y.io"] * 5), "c": column})
    found = finding(table, "c", min_share=0.4)
    assert found is not None
    assert found.sample_size == 1000
    assert 0.45 <= found.share <= 0.55
    sparse = finding(table, "mostly_null")
    assert sparse is not None
    assert (sparse.kind, sparse.sample_size) == ("email", 5)


def test_dictionary_and_large_string_columns() -> None:
    table = pa.table(
        {
            "d": pa.array(["123-45-6789", "078-05-1120"] * 3).dictionary_encode(),
            "l": pa.array(["GB82WEST12345698765432"] * 6, pa.large_string()),
        }
    )
    assert [(f.column, f.kind) for f in detect_pii(table)] == [("d", "national_id"), ("l", "iban")]


def test_custom_detectors() -> None:
    employee = Detector(name="employee_id", pattern=r"EMP-[0-9]{6}", column_hint="employee")
    table = pa.table({"employee": ["EMP-000001", "EMP-123456"], "e": ["a@b.io", "c@d.io"]})
    found = detect_pii(table, detectors={"employee_id": employee})
    assert found == [PiiFinding("employee", "employee_id", 1.0, 2, 0.99)]
    register_detector(employee)
    try:
        assert [f.kind for f in detect_pii(table)] == ["employee_id", "email"]
        with pytest.raises(ValueError, match="already registered"):
            register_detector(employee)
        register_detector(employee, replace=True)
    finally:
        del DETECTORS["employee_id"]
    with pytest.raises(ValueError, match="invalid RE2 pattern"):
        register_detector(Detector(name="bad", pattern="(unclosed"))
    assert "bad" not in DETECTORS


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("firstName", "first_name"),
        ("First Name", "first_name"),
        ("E-Mail", "e_mail"),
        ("SSN", "ssn"),
    ],
)
def test_normalise_column_name(name: str, normalised: str) -> None:
    assert normalise_column_name(name) == normalised


def test_tag_schema_records_findings() -> None:
    table = pa.table({"email": ["a@b.io"], "n": [1]})
    schema = tag_schema(table.schema, detect_pii(table))
    assert pii_tags(schema) == {"email": "email"}
    assert schema.field("email").metadata[b"gyre.pii.confidence"] == b"0.99"
    assert schema.field("n").metadata is None
    assert table.cast(schema).schema.equals(schema, check_metadata=True)


# ---------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("john.doe@example.com", "j***@example.com"),
        ("a@b.co", "a***@b.co"),
        ("4111 1111 1111 1234", "**** **** **** 1234"),
        ("4111-1111-1111-1234", "****-****-****-1234"),
        ("4111111111111234", "************1234"),
        ("123-45-6789", "***-**-6789"),
        ("+44 20 7946 0958", "+** ** **** 0958"),
        ("(555) 123-4567", "(***) ***-4567"),
        ("DE89 3704 0044 0532 0130 00", "***********************0 00"),  # no shape: generic
        ("Ada Lovelace", "********lace"),
        ("Ada", "***"),
        ("1234567", "*******"),  # too short to keep a tail
        ("", ""),
        ("Zoë Ångström", "********tröm"),
    ],
)
def test_mask_examples(value: str, masked: str) -> None:
    assert mask_values(pa.array([value])).to_pylist() == [masked]


def test_mask_non_text_columns() -> None:
    cards = pa.chunked_array([[4111111111111234, None], [5500000000000004]])
    assert mask_values(cards).to_pylist() == ["************1234", None, "************0004"]
    codes = pa.array(["a@b.io", "a@b.io", None]).dictionary_encode()
    assert mask_values(codes).to_pylist() == ["a***@b.io", "a***@b.io", None]
    with pytest.raises(DataError, match="holds bytes"):
        mask_values(pa.array([b"\x00\x01"]), "blob")


text_values = st.text(min_size=0, max_size=40).filter(lambda s: "*" not in s)


@settings(max_examples=300, deadline=None)
@given(value=text_values)
def test_generic_mask_keeps_only_the_tail(value: str) -> None:
    (masked,) = mask_values(pa.array([value])).to_pylist()
    # RE2's \s is [\t\n\f\r ], narrower than Python's.
    if re.fullmatch(r"[^@\t\n\f\r ]+@[^@\t\n\f\r ]+", value) or re.fullmatch(
        r"[0-9 +().\-/]+", value
    ):
        return  # shaped masks, checked below
    assert len(masked) == len(value)
    kept = 4 if len(value) >= 8 else 0
    assert masked == "*" * (len(value) - kept) + value[len(value) - kept :]
    if value:
        assert value not in masked


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=8, max_size=19),
    sep=st.sampled_from(["", " ", "-", "."]),
)
def test_digit_mask_keeps_separators_and_last_four_digits(digits: str, sep: str) -> None:
    written = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    (masked,) = mask_values(pa.array([written])).to_pylist()
    assert re.sub("[^0-9]", "", masked) == digits[-4:]
    assert re.sub("[0-9*]", "", masked) == re.sub("[0-9]", "", written)
    assert written not in masked


@settings(max_examples=200, deadline=None)
@given(
    local=st.text(alphabet="abcdefghijklmnopqrstuvwxyz.+_0123456789", min_size=1, max_size=20),
    domain=st.from_regex(r"[a-z]{1,10}\.[a-z]{2,4}", fullmatch=True),
)
def test_email_mask_keeps_first_letter_and_domain(local: str, domain: str) -> None:
    (masked,) = mask_values(pa.array([f"{local}@{domain}"])).to_pylist()
    assert masked == f"{local[0]}***@{domain}"
    if len(local) > 1:
        assert local not in masked.split("@")[0]


# ---------------------------------------------------------------------------- hashing


def test_hash_is_keyed_hmac_sha256() -> None:
    values = pa.array(["john@example.com", None, "john@example.com", "ada@example.org"])
    digests = hash_values(values, SECRET).to_pylist()
    expected = hmac.new(SECRET, b"john@example.com", hashlib.sha256).hexdigest()
    assert digests[0] == digests[2] == expected
    assert digests[1] is None
    assert digests[3] != expected
    assert hashlib.sha256(b"john@example.com").hexdigest() not in digests  # never unkeyed
    # Numbers hash as their text, so typed and untyped copies of a column still join.
    assert (
        hash_values(pa.array([42]), SECRET).to_pylist()
        == hash_values(pa.array(["42"]), SECRET).to_pylist()
    )
    assert (
        hash_values(pa.array([b"42"]), SECRET).to_pylist()
        == hash_values(pa.array(["42"]), SECRET).to_pylist()
    )
    encoded = pa.array(["x", None, "x"]).dictionary_encode()
    assert (
        hash_values(encoded, SECRET).to_pylist()
        == hash_values(pa.array(["x", None, "x"]), SECRET).to_pylist()
    )


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=20)), min_size=1, max_size=10),
    secret_a=st.binary(min_size=16, max_size=40),
    secret_b=st.binary(min_size=16, max_size=40),
)
def test_hash_is_deterministic_per_secret(
    values: list[str | None], secret_a: bytes, secret_b: bytes
) -> None:
    arr = pa.array(values, pa.string())
    first = hash_values(arr, secret_a).to_pylist()
    assert first == hash_values(arr, secret_a).to_pylist()
    assert [d is None for d in first] == [v is None for v in values]
    if secret_a != secret_b:
        other = hash_values(arr, secret_b).to_pylist()
        assert all(a != b for a, b in zip(first, other, strict=True) if a is not None)


# ---------------------------------------------------------------------------- the policy


def people() -> pa.Table:
    return pa.table(
        {
            "id": [1, 2, 3],
            "email": ["john@example.com", None, "ada@example.org"],
            "card": ["4111 1111 1111 1111", "5500 0000 0000 0004", None],
            "notes": [None, "likes tea", "x"],
            "name": ["John Smith", "Ada Lovelace", None],
        }
    )


def test_apply_policy_on_a_table_with_nulls() -> None:
    table = people()
    policy = {"email": "hash", "card": "mask", "notes": "drop", "name": "keep"}
    out = apply_pii_policy(table, policy, secret=SECRET)
    assert out.column_names == ["id", "email", "card", "name"]
    assert out["id"].equals(table["id"])
    assert out["name"].equals(table["name"])
    assert out["card"].to_pylist() == ["**** **** **** 1111", "**** **** **** 0004", None]
    emails = out["email"].to_pylist()
    assert emails[1] is None
    assert emails[0] == hmac.new(SECRET, b"john@example.com", hashlib.sha256).hexdigest()
    assert out.schema.field("email").metadata == {TAG_ACTION: b"hash"}
    assert out.schema.field("card").metadata == {TAG_ACTION: b"mask"}
    # A policy object works the same, and unlisted columns are kept.
    again = apply_pii_policy(table, PiiPolicy(columns=policy), secret=SECRET)
    assert again.equals(out, check_metadata=True)
    assert apply_pii_policy(table, {}, secret=b"").equals(table)


def test_policy_keeps_existing_field_metadata() -> None:
    table = people()
    tagged = table.cast(tag_schema(table.schema, detect_pii(table)))
    out = apply_pii_policy(tagged, {"email": "mask"}, secret=b"")
    assert pii_tags(out.schema) == {"email": "email", "card": "card_number", "name": "person_name"}
    assert out.schema.field("email").metadata[TAG_ACTION] == b"mask"


def test_unknown_action_is_a_config_error_listing_the_actions() -> None:
    with pytest.raises(ConfigError, match="unknown PII action 'encrypt' for column 'email'") as err:
        apply_pii_policy(people(), {"email": "encrypt"}, secret=SECRET)
    assert err.value.hint == "use one of: keep, mask, hash, drop"
    with pytest.raises(ValidationError, match="'keep', 'mask', 'hash' or 'drop'"):
        PiiPolicy.model_validate({"columns": {"email": "encrypt"}})
    with pytest.raises(ValidationError):
        PiiPolicy.model_validate({"columns": {}, "default": "mask"})


def test_policy_names_missing_columns() -> None:
    with pytest.raises(ConfigError, match="names column\\(s\\) phone") as err:
        apply_pii_policy(people(), {"phone": "drop"}, secret=SECRET)
    assert err.value.hint == "the table has: id, email, card, notes, name"


def test_hashing_needs_a_real_secret() -> None:
    for secret in (b"", b"short"):
        with pytest.raises(ConfigError, match="project secret of at least 16 bytes"):
            apply_pii_policy(people(), {"email": "hash"}, secret=secret)
    with pytest.raises(ConfigError):
        apply_pii_policy(people(), {"email": "hash"}, secret="a text secret!!!!!!")  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    policy = PiiPolicy(columns={"email": "mask"})
    with pytest.raises(ValidationError):
        policy.columns = {}  # type: ignore[misc]


@given(count=st.integers(1, 100_000), size=st.integers(1, 5_000))
def test_even_picks_are_the_unique_rounded_even_points(count: int, size: int) -> None:
    from gyre.ingest.pii import even_picks

    expected = np.unique(np.linspace(0, count - 1, size).round().astype(np.int64))
    picks = even_picks(count, size)
    assert picks.dtype == np.int64
    assert np.array_equal(picks, expected)
