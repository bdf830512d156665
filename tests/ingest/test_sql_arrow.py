"""The ADBC fast path of the SQL source against the SQLAlchemy path, on a real PostgreSQL.

Every read here runs twice, ``engine: adbc`` and ``engine: sqlalchemy``, and the batches must
match exactly: tables (values and Arrow types), row positions, states and origins, for every
column type, incremental resumes after each batch, ties on the cursor and empty results.
Reads ADBC cannot give exactly fall back to SQLAlchemy under ``engine: auto``, and so does
every read when the driver is not installed.

Each test gets a throwaway PostgreSQL database (tests/conftest.py) whose sessions run in
Europe/Paris, so timestamps with time zone in states keep the session's offset. The tests that
need the driver skip without it; the fallback tests run either way.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

from gyre.core.errors import ConfigError, MissingExtraError, SourceError
from gyre.ingest.source_batch import SourceBatch
from gyre.ingest.sql_arrow import _cut
from gyre.ingest.sql_source import SqlSourceConfig, read_batches


@pytest.fixture
def adbc() -> None:
    pytest.importorskip("adbc_driver_postgresql", reason="adbc-driver-postgresql not installed")


@pytest.fixture
def pg(postgres_url: str) -> Iterator[sa.Engine]:
    """A throwaway database whose sessions use Europe/Paris; its URL is ``engine.url``."""
    engine = sa.create_engine(postgres_url, poolclass=NullPool)
    with engine.begin() as conn:
        name = conn.exec_driver_sql("SELECT current_database()").scalar()
        conn.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET timezone TO 'Europe/Paris'")
    yield engine
    engine.dispose()


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run(engine: sa.Engine, sql: str) -> None:
    """Statements separated by ``;`` + newline, sent as written (``%`` is no placeholder)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in sql.split(";\n"):
            cursor.execute(statement)
        raw.commit()
    finally:
        raw.close()


def stored(state: dict[str, Any]) -> dict[str, Any]:
    """The state as the caller's store gives it back: through JSON."""
    loaded: dict[str, Any] = json.loads(json.dumps(state))
    return loaded


def both(config: SqlSourceConfig, state: dict[str, Any] | None = None) -> list[SourceBatch]:
    """Read ``config`` through ADBC and through SQLAlchemy; assert the batches are equal."""
    fast = list(read_batches(config.model_copy(update={"engine": "adbc"}), state))
    slow = list(read_batches(config.model_copy(update={"engine": "sqlalchemy"}), state))
    assert_same(fast, slow)
    return fast


def assert_same(fast: list[SourceBatch], slow: list[SourceBatch]) -> None:
    assert [b.num_rows for b in fast] == [b.num_rows for b in slow]
    for a, b in zip(fast, slow, strict=True):
        assert a.table.schema.equals(b.table.schema, check_metadata=True)
        differ = [n for n in a.table.column_names if not a.table[n].equals(b.table[n])]
        assert not differ, {n: (a.table[n].to_pylist(), b.table[n].to_pylist()) for n in differ}
        assert a.positions.equals(b.positions), (a.positions, b.positions)
        assert a.state == b.state
        assert a.origin == b.origin


# ---------------------------------------------------------------------------------- types

TYPES_DDL = """
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE typed (
    id integer PRIMARY KEY, i2 smallint, i8 bigint, r real, d8 double precision,
    n numeric(12, 3), big numeric(50, 2), nu numeric, b boolean, dt date, tm time,
    ts timestamp, tstz timestamptz, iv interval, tx text, vc varchar(20), ch char(4),
    u uuid, j json, jb jsonb, by bytea, m mood
)"""
TYPES = (
    TYPES_DDL
    + """;
INSERT INTO typed VALUES
 (1, 2, 9007199254740993, 1.1, 2.25, 123.456, 1234567890123456789012345678901234567890.12,
  1.10, true, '2024-02-29', '13:14:15.5', '2024-03-01 10:00:00.123456',
  '2024-03-01 10:00:00+02', '1 year 2 mons 3 days 04:05:06.789', 'it''s 100% a:b \\ ok',
  'vc', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b":1,  "a":[1.00, "\\u00e9", null]}',
  '{"k": [1, 2], "x": 1.50}', '\\xdeadbeef', 'sad'),
 (2, -32768, -1, 0.1, -0.0, -0.001, 0, -3, false, '0001-01-01', '00:00', '9999-12-31 23:59:59',
  '1970-01-01 00:00:00+00', '-1 mons 5 days -01:00', '', '', '',
  '00000000-0000-0000-0000-000000000000', '"text"', '[]', '\\x', 'ok'),
 (3, NULL, NULL, 3.4028235e38, NULL, NULL, NULL, 1e-20, NULL, NULL, NULL, NULL,
  '2024-07-01 12:00:00.5+00', NULL, 'é漢字', NULL, NULL, NULL, 'null', '{"a": {"b": 1e400}}',
  NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL)
"""
)


@pytest.mark.postgres
def test_every_type_reads_the_same_through_adbc(adbc: None, pg: sa.Engine) -> None:
    run(pg, TYPES)
    (batch,) = both(SqlSourceConfig(url=url_of(pg), table="typed"))
    types = dict(zip(batch.table.column_names, batch.table.schema.types, strict=True))
    # the documented mapping (sql_source's docstring), not ADBC's own types
    assert types["n"] == pa.decimal128(12, 3) and types["big"] == pa.decimal256(50, 2)
    assert types["nu"] == types["r"] == pa.float64()
    assert types["tstz"] == pa.timestamp("us", tz="UTC") and types["iv"] == pa.duration("us")
    assert types["j"] == types["jb"] == types["u"] == types["m"] == pa.string()
    first, second, third, _ = batch.table.to_pylist()
    assert first["r"] == 1.1 and first["nu"] == 1.1  # as psycopg parses them, not float32
    assert first["iv"] == dt.timedelta(days=365 + 60 + 3, seconds=4 * 3600 + 5 * 60 + 6.789)
    assert first["j"] == '{"b": 1, "a": [1.0, "é", null]}'  # written again by Python's json
    assert first["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and first["ch"] == "ab  "
    assert second["iv"] == dt.timedelta(days=-25, hours=-1) and second["j"] == "text"
    assert third["jb"] == '{"a": {"b": 1' + "0" * 400 + "}}"  # jsonb keeps every digit


@pytest.mark.postgres
def test_query_columns_and_literal_text_read_the_same(adbc: None, pg: sa.Engine) -> None:
    run(pg, TYPES)
    query = "SELECT id, n, tstz, u, tx, 'a:b%' AS tag, r * 2 AS r2 FROM typed WHERE tx LIKE '%';"
    config = SqlSourceConfig(url=url_of(pg), query=query, key=("id",), batch_rows=2)
    batches = both(config)
    assert [b.num_rows for b in batches] == [2, 1]
    assert set(batches[0].table.column("tag").to_pylist()) == {"a:b%"}
    assert both(config, stored(batches[0].state))[0].positions.to_pylist() == ["query#id=3"]


# ---------------------------------------------------------------------------- resumption

EVENTS = """
CREATE TABLE events (id bigint, name text, at timestamptz, amount numeric(8, 2), tag uuid,
                     PRIMARY KEY (name, id));
INSERT INTO events
SELECT g, CASE WHEN g % 3 = 0 THEN 'o''brien' WHEN g % 3 = 1 THEN '100% back\\slash' ELSE 'b:c' END,
       timestamptz '2024-03-30 22:00:00+00' + (g / 4) * interval '1 hour',
       g * 1.25, md5(g::text)::uuid
FROM generate_series(1, 37) g
"""


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("cursor", "key"),
    [("at", ("name", "id")), ("amount", ("tag",)), ("tag", ("id",)), ("name", ("id",))],
)
def test_incremental_resume_after_every_batch_matches(
    adbc: None, pg: sa.Engine, cursor: str, key: tuple[str, ...]
) -> None:
    # `at` crosses the switch to summer time in Paris: the states keep each row's offset
    run(pg, EVENTS)
    config = SqlSourceConfig(
        url=url_of(pg), table="events", mode="incremental", cursor=cursor, key=key, batch_rows=5
    )
    batches = both(config)
    assert sum(b.num_rows for b in batches) == 37
    if cursor == "at":
        offsets = {b.state["after"][0]["datetime"][-6:] for b in batches}
        assert offsets == {"+01:00", "+02:00"}
    for k, batch in enumerate(batches):  # a crash after each batch resumes the same way
        rest = both(config, stored(batch.state))
        got = [r["id"] for b in [*batches[: k + 1], *rest] for r in b.table.to_pylist()]
        assert sorted(got) == list(range(1, 38))
    run(
        pg,
        "UPDATE events SET at = now(), amount = 999, name = 'zzz', "
        "tag = 'ffffffff-ffff-ffff-ffff-ffffffffffff' WHERE id = 3",
    )
    later = both(config, stored(batches[-1].state))
    assert [r["id"] for b in later for r in b.table.to_pylist()] == [3]


@pytest.mark.postgres
def test_full_read_resumes_mid_way_and_ends_done(adbc: None, pg: sa.Engine) -> None:
    run(pg, EVENTS)
    config = SqlSourceConfig(url=url_of(pg), table="events", batch_rows=8)
    batches = both(config)
    assert [b.state["done"] for b in batches] == [False] * 4 + [True]
    both(config, stored(batches[1].state))
    assert sum(b.num_rows for b in both(config, stored(batches[-1].state))) == 37  # new snapshot


@pytest.mark.postgres
def test_ties_are_never_split_the_same_way(adbc: None, pg: sa.Engine) -> None:
    run(
        pg,
        "CREATE TABLE ties (v integer, w text, note text);\n"
        "INSERT INTO ties SELECT g / 7, CASE WHEN g % 2 = 0 THEN NULL ELSE 'x' END, g::text "
        "FROM generate_series(0, 60) g",
    )
    url = url_of(pg)
    incremental = SqlSourceConfig(
        url=url, table="ties", mode="incremental", cursor="v", batch_rows=3
    )
    batches = both(incremental)
    assert [b.num_rows for b in batches][:2] == [7, 7]  # each grew to keep its tie whole
    both(incremental, stored(batches[2].state))
    # a full read ties on NULL keys too (w is NULL on every other row)
    keyed = SqlSourceConfig(url=url, table="ties", key=("v", "w"), batch_rows=2)
    assert len(both(keyed)) > 1


@pytest.mark.postgres
def test_empty_results_read_the_same(adbc: None, pg: sa.Engine) -> None:
    run(pg, TYPES_DDL)
    full = SqlSourceConfig(url=url_of(pg), table="typed")
    (batch,) = both(full)
    assert batch.num_rows == 0 and batch.state["done"] is True
    assert batch.table.schema.field("iv").type == pa.duration("us")  # typed without values
    assert both(full.model_copy(update={"mode": "incremental", "cursor": "ts"})) == []


# ------------------------------------------------------------------------ fallback, errors


@pytest.mark.postgres
def test_columns_without_an_exact_conversion_fall_back_to_sqlalchemy(
    adbc: None, pg: sa.Engine
) -> None:
    run(
        pg,
        "CREATE TABLE odd (id int PRIMARY KEY, tags int[], price money, addr inet);\n"
        "INSERT INTO odd VALUES (1, '{{1,2},{3,4}}', 12.5, '10.0.0.1'), (2, NULL, NULL, NULL)",
    )
    config = SqlSourceConfig(url=url_of(pg), table="odd")
    auto = list(read_batches(config))
    assert_same(auto, list(read_batches(config.model_copy(update={"engine": "sqlalchemy"}))))
    assert auto[0].table.column("tags").to_pylist() == ["[[1, 2], [3, 4]]", None]
    with pytest.raises(SourceError, match="engine adbc cannot read this exactly: column 'tags'"):
        list(read_batches(config.model_copy(update={"engine": "adbc"})))
    # a JSON cursor has no place in a state: SQLAlchemy's error, under auto too
    run(
        pg, "CREATE TABLE docs (id int PRIMARY KEY, body jsonb);\nINSERT INTO docs VALUES (1, '{}')"
    )
    docs = SqlSourceConfig(url=url_of(pg), table="docs", mode="incremental", cursor="body")
    with pytest.raises(SourceError, match="cannot use a dict column as cursor or key"):
        list(read_batches(docs))


@pytest.mark.postgres
def test_without_the_driver_auto_reads_through_sqlalchemy(
    pg: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(pg, TYPES)
    config = SqlSourceConfig(url=url_of(pg), table="typed")
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)  # as if not installed
    (batch,) = read_batches(config)
    assert batch.num_rows == 4 and batch.table.schema.field("n").type == pa.decimal128(12, 3)
    with pytest.raises(MissingExtraError, match="adbc-driver-postgresql") as info:
        list(read_batches(config.model_copy(update={"engine": "adbc"})))
    assert info.value.hint == "pip install 'gyre[postgres]'"


def test_engine_adbc_is_for_postgresql_only(tmp_path: Any) -> None:
    config = SqlSourceConfig(url=f"sqlite:///{tmp_path / 'x.db'}", table="t", engine="adbc")
    with pytest.raises(ConfigError, match="engine adbc reads PostgreSQL only"):
        list(read_batches(config))


@pytest.mark.postgres
def test_values_python_cannot_hold_are_refused_by_both(adbc: None, pg: sa.Engine) -> None:
    run(
        pg,
        "CREATE TABLE bad (id int PRIMARY KEY, n numeric(6, 2), ts timestamp);\n"
        "INSERT INTO bad VALUES (1, 1, '2024-01-01'), (2, 'NaN', '2024-01-01')",
    )
    config = SqlSourceConfig(url=url_of(pg), table="bad")
    for engine in ("adbc", "sqlalchemy"):
        with pytest.raises(SourceError, match=r"column 'n' does not fit Arrow type decimal128"):
            list(read_batches(config.model_copy(update={"engine": engine})))
    run(pg, "UPDATE bad SET n = 2 WHERE id = 2;\nINSERT INTO bad VALUES (3, 3, 'infinity')")
    for engine in ("adbc", "sqlalchemy"):
        with pytest.raises(SourceError) as info:
            list(read_batches(config.model_copy(update={"engine": engine})))
        assert not info.value.retryable and "\n" not in info.value.message
        assert "infinity" in info.value.message
    with pytest.raises(SourceError, match=r"column 'ts' .* at bad#id=3: infinity"):
        list(read_batches(config.model_copy(update={"engine": "adbc"})))


@pytest.mark.postgres
def test_errors_are_one_line_and_hide_the_password(adbc: None, pg: sa.Engine) -> None:
    if pg.url.password is not None:
        pytest.skip("the test server's URL has a password already")
    url = url_of(pg).replace(f"://{pg.url.username}@", f"://{pg.url.username}:${{GYRE_TEST_PW}}@")
    env = {"GYRE_TEST_PW": "s3cr3t-pw"}  # the test server trusts: any password works
    run(pg, "CREATE TABLE t (id int PRIMARY KEY, d int);\nINSERT INTO t VALUES (1, 0)")
    config = SqlSourceConfig(url=url, query="SELECT id, 1 / d AS x FROM t", engine="adbc")
    with pytest.raises(SourceError) as info:
        list(read_batches(config, env=env))
    error = info.value
    assert ":***@" in error.message and "s3cr3t-pw" not in str(error)
    assert error.message.endswith("query: cannot read from the database: division by zero")
    assert not error.retryable
    (batch,) = read_batches(config.model_copy(update={"query": "SELECT id FROM t"}), env=env)
    assert batch.num_rows == 1 and ":***@" in batch.origin


def test_unreachable_server_is_the_same_retryable_error(adbc: None) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://etl:hunter22@127.0.0.1:{port}/erp"
    with pytest.raises(SourceError) as info:
        list(read_batches(SqlSourceConfig(url=url, table="orders", engine="adbc")))
    assert info.value.retryable and "hunter22" not in str(info.value)
    assert f"etl:***@127.0.0.1:{port}/erp table orders: cannot connect to the database" in (
        info.value.message
    )


@pytest.mark.postgres
def test_a_read_left_part_way_ends_its_session(adbc: None, pg: sa.Engine) -> None:
    run(
        pg,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
    )
    config = SqlSourceConfig(
        url=url_of(pg), table="big", key=("id",), batch_rows=1000, engine="adbc"
    )
    reader = read_batches(config)
    assert next(reader).num_rows == 1000
    reader.close()  # the caller stops: the read is cancelled and closed, not drained
    others = -1
    for _ in range(100):  # the server ends a closed session's backend a moment later
        with pg.connect() as conn:
            others = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalar_one()
        if others == 0:
            break
        time.sleep(0.1)
    assert others == 0


# ----------------------------------------------------------------------- cutting, property


def greedy_cuts(keys: list[int | None], size: int) -> list[int]:
    """Batch lengths by the SQLAlchemy reader's rule: ``size`` rows, grown through a tie."""
    lengths, start = [], 0
    while start < len(keys):
        end = min(start + size, len(keys))
        while end < len(keys) and keys[end] == keys[end - 1]:
            end += 1
        lengths.append(end - start)
        start = end
    return lengths


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.one_of(st.none(), st.integers(0, 5)), max_size=60).map(
        lambda ks: sorted(ks, key=lambda k: (k is None, k or 0))
    ),
    size=st.integers(1, 8),
    parts=st.lists(st.integers(1, 20), max_size=8),
)
def test_batches_are_cut_like_the_sqlalchemy_reader(
    keys: list[int | None], size: int, parts: list[int]
) -> None:
    table = pa.table({"k": pa.array(keys, pa.int64()), "row": pa.array(range(len(keys)))})
    bounds = list(itertools.accumulate(parts))
    edges = [0, *(b for b in bounds if b < len(keys)), len(keys)]
    pieces = (table.slice(a, b - a) for a, b in itertools.pairwise(edges))  # record batches
    cut = list(_cut(pieces, size, ["k"]))
    assert [t.num_rows for t in cut] == greedy_cuts(keys, size)
    assert [r for t in cut for r in t.column("row").to_pylist()] == list(range(len(keys)))


def test_decimal_and_text_keys_tie_by_value() -> None:
    keys = pa.table({"d": pa.array([Decimal("1.50")] * 3 + [Decimal("2")], pa.decimal128(4, 2))})
    assert [t.num_rows for t in _cut(iter([keys]), 2, ["d"])] == [3, 1]
