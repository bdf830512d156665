"""Reading SQL sources on real PostgreSQL and MariaDB servers (and SQLite): full and
incremental reads, ties on the cursor, crash and resume without loss or duplicates, type
mapping to Arrow, and one-line errors that never show a password.

Each test creates its own uniquely named table and drops it. PostgreSQL tests carry the
``postgres`` marker; both servers follow tests/conftest.py's rule: skipped when unreachable,
failed instead when GYRE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.pool import NullPool

from gyre.core.errors import ConfigError, SourceError
from gyre.ingest.source_batch import SourceBatch
from gyre.ingest.sql_source import SqlSourceConfig, read_batches

PG_URL = os.environ.get("GYRE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("GYRE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _unavailable(what: str) -> None:
    if os.environ.get("GYRE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (GYRE_REQUIRE_SERVICES=1)")
    pytest.skip(what)


@dataclass
class Db:
    kind: str
    url: str
    engine: sa.Engine
    table: str

    def execute(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql)

    def insert(self, rows: list[dict[str, Any]], table: str | None = None) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            target = sa.Table(table or self.table, sa.MetaData(), autoload_with=conn)
            conn.execute(target.insert(), rows)

    def update(self, sql: str) -> None:
        self.execute(sql.replace("{t}", self.table))


def _connect(kind: str, url: str) -> sa.Engine:
    if kind == "mariadb":
        try:
            import pymysql  # noqa: F401
        except ImportError:
            _unavailable("PyMySQL is not installed (pip install 'gyre[mysql]')")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        _unavailable(f"{kind} unreachable at {url}: {str(exc).splitlines()[0]}")
    return engine


def _database(kind: str) -> Iterator[Db]:
    url = PG_URL if kind == "postgresql" else MARIADB_URL
    engine = _connect(kind, url)
    database = Db(kind, url, engine, f"gyre_src_{uuid.uuid4().hex[:12]}")
    yield database
    database.execute(f"DROP TABLE IF EXISTS {database.table}")
    engine.dispose()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    """A uniquely named table (not created yet) on PostgreSQL, then on MariaDB."""
    yield from _database(request.param)


@pytest.fixture
def pg() -> Iterator[Db]:
    yield from _database("postgresql")


@pytest.fixture
def mariadb() -> Iterator[Db]:
    yield from _database("mariadb")


T0 = dt.datetime(2024, 5, 1, 9, 0, 0)


def orders(db: Db, n: int = 7, *, versions: list[int] | None = None, key: bool = True) -> None:
    """``id``, ``customer``, ``amount``, ``updated_at`` and an int ``version`` with ties."""
    pk = "PRIMARY KEY" if key else ""
    db.execute(
        f"CREATE TABLE {db.table} (id INTEGER NOT NULL {pk}, customer VARCHAR(20), "
        "amount NUMERIC(10, 2), updated_at TIMESTAMP NULL, version INTEGER)"
    )
    versions = versions or list(range(n))
    db.insert(
        [
            {
                "id": i + 1,
                "customer": f"c{i % 3}",
                "amount": Decimal(f"{i}.25"),
                "updated_at": T0 + dt.timedelta(minutes=versions[i]),
                "version": versions[i],
            }
            for i in range(n)
        ]
    )


def all_rows(batches: list[SourceBatch]) -> list[dict[str, Any]]:
    return [row for b in batches for row in b.table.to_pylist()]


def ids(batches: list[SourceBatch]) -> list[int]:
    return [row["id"] for row in all_rows(batches)]


def table_ids(db: Db) -> list[int]:
    with db.engine.connect() as conn:
        return sorted(r[0] for r in conn.exec_driver_sql(f"SELECT id FROM {db.table}"))


def stored(state: dict[str, Any]) -> dict[str, Any]:
    """The state as the caller's store would give it back: through JSON."""
    loaded: dict[str, Any] = json.loads(json.dumps(state))
    return loaded


# --------------------------------------------------------------------------------- full


def test_full_load_in_batches(db: Db) -> None:
    orders(db)
    config = SqlSourceConfig(url=db.url, table=db.table, batch_rows=3)
    batches = list(read_batches(config))
    assert [b.num_rows for b in batches] == [3, 3, 1]
    assert ids(batches) == [1, 2, 3, 4, 5, 6, 7]
    first = all_rows(batches)[0]
    assert first == {
        "id": 1,
        "customer": "c0",
        "amount": Decimal("0.25"),
        "updated_at": T0,
        "version": 0,
    }
    assert batches[0].positions.to_pylist() == [f"{db.table}#id={i}" for i in (1, 2, 3)]
    assert [b.state for b in batches] == [
        {"mode": "full", "columns": ["id"], "after": [3], "done": False},
        {"mode": "full", "columns": ["id"], "after": [6], "done": False},
        {"mode": "full", "columns": ["id"], "after": [7], "done": True},
    ]
    assert batches[0].origin == f"{db.url} table {db.table}"


@pytest.mark.postgres
def test_table_in_a_named_schema(pg: Db) -> None:
    orders(pg, 3)
    config = SqlSourceConfig(
        url=pg.url, table=f"public.{pg.table}", mode="incremental", cursor="id"
    )
    batches = list(read_batches(config))
    assert ids(batches) == [1, 2, 3]
    assert batches[0].positions[0].as_py() == f"public.{pg.table}#id=1"


def test_full_read_after_done_is_a_new_snapshot(db: Db) -> None:
    orders(db, 4)
    config = SqlSourceConfig(url=db.url, table=db.table, batch_rows=3)
    first = list(read_batches(config))
    db.insert([{"id": 9, "customer": "new", "version": 1}])
    again = list(read_batches(config, stored(first[-1].state)))
    assert ids(again) == [1, 2, 3, 4, 9]


def test_empty_table_full_read_yields_one_empty_batch(db: Db) -> None:
    orders(db, 0, versions=[0])
    config = SqlSourceConfig(url=db.url, table=db.table)
    (batch,) = read_batches(config)
    assert batch.num_rows == 0
    assert batch.table.column_names == ["id", "customer", "amount", "updated_at", "version"]
    assert batch.state["done"] is True
    incremental = config.model_copy(update={"mode": "incremental", "cursor": "version"})
    assert list(read_batches(incremental)) == []


# -------------------------------------------------------------------------- incremental


def test_incremental_round_trip_reads_only_new_and_changed_rows(db: Db) -> None:
    orders(db, 5)
    config = SqlSourceConfig(
        url=db.url, table=db.table, mode="incremental", cursor="updated_at", key=("id",)
    )
    first = list(read_batches(config))
    assert ids(first) == [1, 2, 3, 4, 5]
    state = stored(first[-1].state)
    assert state == {
        "mode": "incremental",
        "columns": ["updated_at", "id"],
        "after": [{"datetime": (T0 + dt.timedelta(minutes=4)).isoformat()}, 5],
    }
    assert (
        first[0].positions[0].as_py() == f"{db.table}#updated_at={T0:%Y-%m-%dT%H:%M:%S}.000000,id=1"
    )

    later = T0 + dt.timedelta(hours=1)
    db.insert([{"id": i, "customer": "new", "updated_at": later} for i in (6, 7)])
    # same cursor value as the last committed row but a higher key: still new
    db.insert([{"id": 8, "customer": "tie", "updated_at": T0 + dt.timedelta(minutes=4)}])
    db.update(f"UPDATE {{t}} SET updated_at = '{later:%Y-%m-%d %H:%M:%S}' WHERE id = 2")
    second = list(read_batches(config, state))
    assert ids(second) == [8, 2, 6, 7]  # in (updated_at, id) order
    assert list(read_batches(config, stored(second[-1].state))) == []


def test_ties_on_the_cursor_split_across_batches_with_a_key(db: Db) -> None:
    versions = [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    orders(db, 10, versions=versions)
    config = SqlSourceConfig(
        url=db.url, table=db.table, mode="incremental", cursor="version", batch_rows=3
    )  # key defaults to the primary key
    batches = list(read_batches(config))
    assert [b.num_rows for b in batches] == [3, 3, 3, 1]
    assert ids(batches) == list(range(1, 11))
    assert batches[0].state["after"] == [1, 3]  # mid-tie: the key says where
    # resume after every batch: each resumed read gives exactly the rest
    for k, batch in enumerate(batches):
        rest = list(read_batches(config, stored(batch.state)))
        assert ids(batches[: k + 1]) + ids(rest) == list(range(1, 11))


def test_ties_without_a_key_are_never_split(db: Db) -> None:
    versions = [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    orders(db, 10, versions=versions, key=False)
    config = SqlSourceConfig(
        url=db.url, table=db.table, mode="incremental", cursor="version", batch_rows=3
    )
    batches = list(read_batches(config))
    assert [b.num_rows for b in batches] == [4, 3, 3]  # the batch grew to keep the tie whole
    seen = [set(b.table.column("version").to_pylist()) for b in batches]
    assert seen == [{1}, {2}, {3}]
    assert sorted(ids(batches)) == list(range(1, 11))
    assert batches[0].state == {"mode": "incremental", "columns": ["version"], "after": [1]}
    rest = list(read_batches(config, stored(batches[0].state)))
    assert sorted(ids(rest)) == list(range(5, 11))


# PyMySQL warns when a stream is closed unread: the reader must drop it instead of draining.
@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_crash_after_k_batches_then_resume_gives_the_table_exactly(db: Db, mode: str) -> None:
    versions = [5, 1, 1, 3, 2, 2, 2, 4, 1, 3, 5]
    orders(db, len(versions), versions=versions)
    config = SqlSourceConfig(
        url=db.url,
        table=db.table,
        mode=mode,  # type: ignore[arg-type]
        cursor="version" if mode == "incremental" else None,
        batch_rows=2,
    )
    total = len(list(read_batches(config)))
    assert total == 6
    for k in range(1, total):
        reader = read_batches(config)
        committed = list(itertools.islice(reader, k))
        reader.close()  # the process dies; only k batches were committed
        rest = list(read_batches(config, stored(committed[-1].state)))
        got = ids(committed) + ids(rest)
        assert sorted(got) == table_ids(db)  # no loss
        assert len(got) == len(set(got))  # no duplicates
    # after the last batch: nothing new for incremental, a new snapshot for full
    last = list(read_batches(config))[-1].state
    assert ids(list(read_batches(config, stored(last)))) == (
        [] if mode == "incremental" else table_ids(db)
    )


# ------------------------------------------------------------------------------- query


def test_query_mode_incremental_with_literal_colons_and_percent(db: Db) -> None:
    orders(db)
    query = (
        f"SELECT id, amount, customer, 'a:b%' AS tag FROM {db.table} "
        "WHERE customer LIKE 'c%' AND id <> 3;"
    )
    config = SqlSourceConfig(url=db.url, query=query, mode="incremental", cursor="id")
    batches = list(read_batches(config))
    assert ids(batches) == [1, 2, 4, 5, 6, 7]
    assert set(batches[0].table.column("tag").to_pylist()) == {"a:b%"}
    assert batches[0].positions[0].as_py() == "query#id=1"
    assert batches[0].origin == f"{db.url} query"
    assert pa.types.is_decimal(batches[0].table.schema.field("amount").type)
    assert batches[0].table.schema.field("amount").type.scale == 2
    db.insert([{"id": 8, "customer": "c9", "version": 0}])
    again = list(read_batches(config, stored(batches[-1].state)))
    assert ids(again) == [8]


def test_query_mode_full_without_key_cannot_resume_mid_way(db: Db) -> None:
    orders(db)
    config = SqlSourceConfig(url=db.url, query=f"SELECT * FROM {db.table}", batch_rows=3)
    batches = list(read_batches(config))
    assert [b.positions[0].as_py() for b in batches] == [
        "query#row=1",
        "query#row=4",
        "query#row=7",
    ]
    assert sorted(ids(batches)) == list(range(1, 8))
    with pytest.raises(SourceError, match="without a key stopped part-way") as info:
        list(read_batches(config, stored(batches[0].state)))
    assert info.value.hint is not None and "`key`" in info.value.hint
    keyed = config.model_copy(update={"key": ("id",)})
    first = next(iter(read_batches(keyed)))
    assert ids(list(read_batches(keyed, stored(first.state)))) == [4, 5, 6, 7]


# ------------------------------------------------------------------------------- types


# One line per column: name, SQL type, SQL literal, Arrow type it must map to, value read.
Column = tuple[str, str, str, pa.DataType, Any]
# fmt: off
PG_COLUMNS: list[Column] = [
    ("id", "integer PRIMARY KEY", "1", pa.int32(), 1),
    ("i2", "smallint", "2", pa.int16(), 2),
    ("i8", "bigint", "9007199254740993", pa.int64(), 9007199254740993),
    ("r", "real", "1.5", pa.float64(), 1.5),
    ("d8", "double precision", "2.25", pa.float64(), 2.25),
    ("n", "numeric(12, 3)", "123.456", pa.decimal128(12, 3), Decimal("123.456")),
    ("nu", "numeric", "1.1", pa.float64(), 1.1),  # no fixed scale: float64
    ("big", "numeric(50, 2)", "1234567890123456789012345678901234567890.12",
     pa.decimal256(50, 2), Decimal("1234567890123456789012345678901234567890.12")),
    ("b", "boolean", "true", pa.bool_(), True),
    ("dt", "date", "'2024-02-29'", pa.date32(), dt.date(2024, 2, 29)),
    ("tm", "time", "'13:14:15.5'", pa.time64("us"), dt.time(13, 14, 15, 500000)),
    ("ts", "timestamp", "'2024-03-01 10:00:00.123456'", pa.timestamp("us"),
     dt.datetime(2024, 3, 1, 10, 0, 0, 123456)),
    ("tstz", "timestamptz", "'2024-03-01 10:00:00+02'", pa.timestamp("us", tz="UTC"),
     dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC)),
    ("iv", "interval", "'1 day 2 hours'", pa.duration("us"), dt.timedelta(days=1, hours=2)),
    ("tx", "text", "'text'", pa.string(), "text"),
    ("vc", "varchar(20)", "'vc'", pa.string(), "vc"),
    ("u", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", pa.string(),
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("j", "jsonb", """'{"k": [1, 2]}'""", pa.string(), '{"k": [1, 2]}'),
    ("by", "bytea", "'\\xdeadbeef'", pa.binary(), b"\xde\xad\xbe\xef"),
    ("arr", "integer[]", "'{1,2}'", pa.string(), "[1, 2]"),
]
MARIADB_COLUMNS: list[Column] = [
    ("id", "int PRIMARY KEY", "1", pa.int32(), 1),
    ("ti", "tinyint", "-5", pa.int8(), -5),
    ("tu", "tinyint unsigned", "250", pa.int16(), 250),
    ("si", "smallint", "-300", pa.int16(), -300),
    ("mi", "mediumint", "70000", pa.int32(), 70000),
    ("iu", "int unsigned", "4000000000", pa.int64(), 4000000000),
    ("bi", "bigint", "-9007199254740993", pa.int64(), -9007199254740993),
    ("bu", "bigint unsigned", "18446744073709551615", pa.uint64(), 18446744073709551615),
    ("f", "float", "1.5", pa.float64(), 1.5),
    ("d", "double", "2.25", pa.float64(), 2.25),
    ("n", "decimal(12, 3)", "123.456", pa.decimal128(12, 3), Decimal("123.456")),
    ("b", "boolean", "true", pa.int8(), 1),  # BOOLEAN is TINYINT(1): kept as the integer it is
    ("dt", "date", "'2024-02-29'", pa.date32(), dt.date(2024, 2, 29)),
    ("tm", "time", "'13:14:15'", pa.time64("us"), dt.time(13, 14, 15)),
    ("ts", "datetime(6)", "'2024-03-01 10:00:00.123456'", pa.timestamp("us"),
     dt.datetime(2024, 3, 1, 10, 0, 0, 123456)),
    ("tx", "text", "'text'", pa.string(), "text"),
    ("vc", "varchar(20)", "'vc'", pa.string(), "vc"),
    ("e", "enum('x', 'y')", "'y'", pa.string(), "y"),
    ("j", "json", """'{"k": [1, 2]}'""", pa.string(), '{"k": [1, 2]}'),
    ("bl", "blob", "x'deadbeef'", pa.binary(), b"\xde\xad\xbe\xef"),
    ("y", "year", "2024", pa.int16(), 2024),
]
# fmt: on


def typed_table(db: Db) -> list[Column]:
    """Create ``db.table`` with every column of its dialect: one full row, one of NULLs."""
    columns = PG_COLUMNS if db.kind == "postgresql" else MARIADB_COLUMNS
    db.execute(f"CREATE TABLE {db.table} ({', '.join(f'{c[0]} {c[1]}' for c in columns)})")
    nulls = ", ".join(["2"] + ["NULL"] * (len(columns) - 1))
    db.execute(f"INSERT INTO {db.table} VALUES ({', '.join(c[2] for c in columns)}), ({nulls})")
    return columns


def test_type_mapping(db: Db) -> None:
    columns = typed_table(db)
    (batch,) = read_batches(SqlSourceConfig(url=db.url, table=db.table))
    assert list(zip(batch.table.column_names, batch.table.schema.types, strict=True)) == [
        (c[0], c[3]) for c in columns
    ]
    full, empty = batch.table.to_pylist()
    expected = {c[0]: c[4] for c in columns}
    if db.kind == "postgresql":  # jsonb keeps its own key order and spacing
        assert json.loads(full.pop("j")) == json.loads(expected.pop("j"))
    assert full == expected
    assert set(empty.values()) == {None, 2}


def test_query_types_come_from_the_result_description(db: Db) -> None:
    pg = db.kind == "postgresql"
    typed_table(db)
    query = f"SELECT id, n, ts, dt, tx FROM {db.table}"
    (batch,) = read_batches(SqlSourceConfig(url=db.url, query=query, key=("id",)))
    types = dict(zip(batch.table.column_names, batch.table.schema.types, strict=True))
    assert types == {
        "id": pa.int32() if pg else pa.int64(),  # MySQL's description hides unsigned
        "n": pa.decimal128(12, 3) if pg else pa.decimal128(38, 3),
        "ts": pa.timestamp("us"),
        "dt": pa.date32(),
        "tx": pa.string(),
    }
    assert batch.table.to_pylist()[0]["n"] == Decimal("123.456")


def test_value_that_does_not_fit_names_column_and_row(mariadb: Db) -> None:
    # MySQL's result description hides UNSIGNED, so a query's BIGINT UNSIGNED reads as int64.
    db = mariadb
    db.execute(f"CREATE TABLE {db.table} (id int PRIMARY KEY, bu bigint unsigned)")
    db.execute(f"INSERT INTO {db.table} VALUES (1, 5), (2, 18446744073709551615)")
    query = SqlSourceConfig(url=db.url, query=f"SELECT id, bu FROM {db.table}", key=("id",))
    with pytest.raises(
        SourceError, match=r"column 'bu' does not fit Arrow type int64 at query#id=2"
    ):
        list(read_batches(query))
    (batch,) = read_batches(SqlSourceConfig(url=db.url, table=db.table))  # the table knows
    assert batch.table.column("bu").to_pylist() == [5, 18446744073709551615]


# ------------------------------------------------------------------------------ errors


def test_missing_table(db: Db) -> None:
    config = SqlSourceConfig(url=db.url, table="gyre_no_such_table_here")
    with pytest.raises(SourceError) as info:
        list(read_batches(config))
    message = info.value.message
    assert message.startswith(f"{db.url} table gyre_no_such_table_here: ")
    assert "'gyre_no_such_table_here' does not exist" in message
    assert "\n" not in message and not info.value.retryable


def test_missing_column(db: Db) -> None:
    orders(db)
    config = SqlSourceConfig(url=db.url, table=db.table, mode="incremental", cursor="changed")
    with pytest.raises(SourceError, match="no column 'changed' \\(columns: id, customer,"):
        list(read_batches(config))
    query = SqlSourceConfig(url=db.url, query=f"SELECT nope FROM {db.table}")
    with pytest.raises(SourceError, match="nope") as info:
        list(read_batches(query))
    assert info.value.message.startswith(f"{db.url} query: ")
    assert not info.value.retryable


def test_bad_credentials_are_not_retryable(db: Db) -> None:
    url = sa.make_url(db.url)
    if db.kind == "postgresql":  # the test server trusts any password: use an unknown role
        bad = url.set(username="gyre_nobody", password="wr0ng-pass")
    else:
        bad = url.set(password="wr0ng-pass")
    config = SqlSourceConfig(url=bad.render_as_string(hide_password=False), table="t")
    with pytest.raises(SourceError, match="refused the login") as info:
        list(read_batches(config))
    assert not info.value.retryable
    assert "wr0ng-pass" not in str(info.value)
    assert bad.render_as_string(hide_password=True) in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://etl:hunter22@127.0.0.1:{port}/erp",
        "mysql+pymysql://etl:hunter22@127.0.0.1:{port}/erp",
    ],
)
def test_unreachable_server_is_retryable_and_hides_the_password(url: str) -> None:
    if "pymysql" in url:
        pytest.importorskip("pymysql")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = SqlSourceConfig(url=url.format(port=port), table="orders")
    with pytest.raises(SourceError) as info:
        list(read_batches(config))
    error = info.value
    assert error.retryable
    assert f"etl:***@127.0.0.1:{port}/erp table orders: cannot connect to the database" in (
        error.message
    )
    assert "hunter22" not in str(error) and "\n" not in error.message


@pytest.mark.postgres
def test_environment_references_in_the_url(pg: Db) -> None:
    if "://postgres@" not in PG_URL:
        pytest.skip("GYRE_TEST_PG_URL has a password already")
    template = PG_URL.replace("://postgres@", "://postgres:${GYRE_TEST_DB_PASSWORD}@")
    orders(pg, 2)
    config = SqlSourceConfig(url=template, table=pg.table)
    env = {"GYRE_TEST_DB_PASSWORD": "s3cr3t-pw"}  # the test server trusts: any password works
    (batch,) = read_batches(config, env=env)
    assert batch.num_rows == 2
    assert "s3cr3t-pw" not in batch.origin and ":***@" in batch.origin
    with pytest.raises(SourceError) as info:
        list(read_batches(config.model_copy(update={"table": "gyre_absent"}), env=env))
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(ConfigError, match="GYRE_TEST_DB_PASSWORD is not set"):
        list(read_batches(config, env={}))


def test_state_for_another_mode_or_order_is_refused(db: Db) -> None:
    orders(db, 3)
    incremental = SqlSourceConfig(url=db.url, table=db.table, mode="incremental", cursor="id")
    state = next(iter(read_batches(incremental))).state
    full = SqlSourceConfig(url=db.url, table=db.table)
    with pytest.raises(SourceError, match="stored state is for a incremental read"):
        list(read_batches(full, state))
    by_version = incremental.model_copy(update={"cursor": "version"})
    with pytest.raises(SourceError, match="ordered by"):
        list(read_batches(by_version, state))


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="exactly one of `table` and `query`"):
        SqlSourceConfig(url="sqlite://", table="a", query="SELECT 1")
    with pytest.raises(ValidationError, match="exactly one"):
        SqlSourceConfig(url="sqlite://")
    with pytest.raises(ValidationError, match="needs `cursor`"):
        SqlSourceConfig(url="sqlite://", table="a", mode="incremental")
    with pytest.raises(ValidationError, match="repeats the cursor"):
        SqlSourceConfig(url="sqlite://", table="a", cursor="id", key=("id",))
    with pytest.raises(ValidationError):
        SqlSourceConfig(url="sqlite://", table="a", batch_rows=0)
    with pytest.raises(ValidationError):
        SqlSourceConfig(url="sqlite://", table="a", cursor_column="x")


def test_bad_url_and_unknown_dialect_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL"):
        list(read_batches(SqlSourceConfig(url="not a url", table="a")))
    with pytest.raises(ConfigError, match="no dialect"):
        list(read_batches(SqlSourceConfig(url="nosuchdb://h/x", table="a")))


# ------------------------------------------------------------------------ SQLite, property


def _sqlite(path: Path, cursors: list[int], with_pk: bool) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url, poolclass=NullPool)
    pk = "PRIMARY KEY" if with_pk else ""
    rows = [{"id": i, "v": v, "big": 2**40 + i} for i, v in enumerate(cursors)]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE t (id INTEGER {pk}, v INTEGER, big INTEGER)")
        if rows:
            conn.execute(sa.text("INSERT INTO t VALUES (:id, :v, :big)"), rows)
    engine.dispose()
    return url


@settings(max_examples=60, deadline=None)
@given(
    cursors=st.lists(st.integers(0, 4), max_size=25),
    batch_rows=st.integers(1, 6),
    with_key=st.booleans(),
    crashes=st.lists(st.integers(1, 3), max_size=4),
)
def test_any_sequence_of_crashes_reads_every_row_once(
    cursors: list[int], batch_rows: int, with_key: bool, crashes: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = _sqlite(Path(tmp) / "src.db", cursors, with_pk=with_key)
        config = SqlSourceConfig(
            url=url, table="t", mode="incremental", cursor="v", batch_rows=batch_rows
        )
        state: dict[str, Any] = {}
        got: list[SourceBatch] = []
        for k in [*crashes, 10**6]:  # each crash commits k batches; the last run finishes
            reader = read_batches(config, state)
            committed = list(itertools.islice(reader, k))
            reader.close()
            got += committed
            if committed:
                state = stored(committed[-1].state)
        rows = all_rows(got)
        assert sorted(r["id"] for r in rows) == list(range(len(cursors)))
        assert [r["v"] for r in rows] == sorted(cursors)  # read in cursor order
        for batch in got[:-1]:
            assert batch.num_rows >= batch_rows
            if with_key:
                assert batch.num_rows == batch_rows
        if not with_key:  # no cursor value is split between two batches
            values = [set(b.table.column("v").to_pylist()) for b in got]
            assert all(a.isdisjoint(b) for a, b in itertools.combinations(values, 2))
        if rows:
            assert got[0].table.schema.field("big").type == pa.int64()
