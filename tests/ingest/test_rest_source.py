"""Reading REST APIs against a real local HTTP server: every pagination style, retries that
honour Retry-After, rate limits, auth, clear errors, and resumption after a crash.

Nothing here waits for real: the reader's ``sleep`` and ``clock`` are injected, and the
tests assert the sleeps it asked for, never elapsed time.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gyre.core.errors import ConfigError, SourceError
from gyre.ingest.rest_source import RestSourceConfig, read_batches
from gyre.ingest.source_batch import SourceBatch

ITEMS = [
    {
        "id": i,
        "name": f"item {i}",
        "meta": {"score": i * 1.5, "tags": ["a", str(i)], "owner": {"login": f"u{i % 3}"}},
        "active": i % 2 == 0,
        "note": None,
    }
    for i in range(23)
]
HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
HTTP_DATE_TS = 1445412480.0  # the same instant as a Unix timestamp


# ---------------------------------------------------------------------------- the server


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Api:
    """Routes of the test API; records every request it serves."""

    base: str = ""
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [query for p, query, _ in self.requests if p == path]

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.requests.append((path, query, headers))
            self.counts[path] = n = self.counts.get(path, 0) + 1
        route = getattr(self, "route_" + path.strip("/").replace("-", "_"), None)
        if route is None:
            return 404, {"Content-Type": "text/plain"}, b"no route " + path.encode() + b"x" * 300
        reply: Reply = route(query, headers, n)
        return reply

    # --- pagination styles
    def route_none(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        return ok({"data": {"items": ITEMS[:5]}})

    def route_page(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        page, size = int(q.get("page", "1")), int(q.get("per_page", "10"))
        return ok({"results": ITEMS[(page - 1) * size : page * size]})

    def route_offset(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        offset, limit = int(q["offset"]), min(int(q["limit"]), 4)  # the server caps the limit
        return ok({"rows": ITEMS[offset : offset + limit]})

    def route_cursor(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        start = int(q.get("after", "c0")[1:])
        size = int(q.get("size", "5"))
        chunk = ITEMS[start : start + size]
        more = start + size < len(ITEMS)
        return ok({"items": chunk, "meta": {"next": f"c{start + size}" if more else None}})

    def route_link(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        page = int(q.get("p", "1"))
        headers = {}
        if page * 6 < len(ITEMS):  # a relative link, as GitHub-style APIs may send
            headers["Link"] = f'</link?p={page + 1}>; rel="next", </link?p=1>; rel="first"'
        return ok(ITEMS[(page - 1) * 6 : page * 6], headers)

    def route_link_keyed(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        if q.get("api_key") != "k-98765":
            return 403, {}, b"bad key"
        page = int(q.get("p", "1"))
        headers = {}
        if page * 10 < len(ITEMS):  # the next link repeats the key, as many APIs do
            headers["Link"] = f'<{self.base}/link-keyed?p={page + 1}&api_key=k-98765>; rel="next"'
        return ok(ITEMS[(page - 1) * 10 : page * 10], headers)

    def route_link_body(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        page = int(q.get("p", "1"))
        nxt = f"{self.base}/link-body?p={page + 1}" if page * 10 < len(ITEMS) else None
        return ok({"items": ITEMS[(page - 1) * 10 : page * 10], "links": {"next": nxt}})

    # --- failures
    def route_busy(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        if n == 1:
            return 429, {"Retry-After": "1"}, b'{"error": "slow down"}'
        return self.route_none(q, h, n)

    def route_busy_date(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        if n == 1:
            return 429, {"Retry-After": HTTP_DATE}, b"{}"
        return self.route_none(q, h, n)

    def route_busy_long(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        return 429, {"Retry-After": "3600"}, b"{}"

    def route_flaky(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        if n <= 2:
            return 503, {"Content-Type": "text/plain"}, b"service unavailable"
        return self.route_none(q, h, n)

    def route_down(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        return 500, {}, b"internal error"

    def route_html(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        return 200, {"Content-Type": "text/html"}, b"<html><body>Login required</body></html>"

    def route_secure(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        if h.get("authorization") != "Bearer s3cret-token":
            return 401, {}, b'{"error": "bad token"}'
        return self.route_none(q, h, n)

    def route_same_cursor(self, q: dict[str, str], h: dict[str, str], n: int) -> Reply:
        return ok({"items": ITEMS[:2], "meta": {"next": "again"}})


def ok(body: Any, headers: dict[str, str] | None = None) -> Reply:
    return 200, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


@pytest.fixture
def api() -> Iterator[Api]:
    app = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = app.handle(parts.path, query, headers)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    app.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield app
    server.shutdown()
    server.server_close()
    thread.join()


class FakeTime:
    """A clock that moves only when the reader sleeps; records every sleep asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def read(
    config: RestSourceConfig, state: dict[str, Any] | None = None, **kw: Any
) -> tuple[list[SourceBatch], FakeTime]:
    fake = FakeTime()
    kw.setdefault("sleep", fake.sleep)
    kw.setdefault("clock", fake.clock)
    return list(read_batches(config, state, **kw)), fake


def ids(batches: list[SourceBatch]) -> list[int]:
    return [int(v) for b in batches if b.num_rows for v in b.table.column("id").to_pylist()]


def cfg(api: Api, path: str, **kw: Any) -> RestSourceConfig:
    return RestSourceConfig(url=api.base + path, **kw)


STYLES: dict[str, Callable[[Api], RestSourceConfig]] = {
    "page": lambda a: cfg(
        a,
        "/page",
        records_path="results",
        pagination={"style": "page", "size_param": "per_page", "page_size": 10},
    ),
    "offset": lambda a: cfg(
        a, "/offset", records_path="rows", pagination={"style": "offset", "page_size": 5}
    ),
    "cursor": lambda a: cfg(
        a,
        "/cursor",
        records_path="items",
        pagination={
            "style": "cursor",
            "cursor_path": "meta.next",
            "cursor_param": "after",
            "size_param": "size",
            "page_size": 5,
        },
    ),
    "link": lambda a: cfg(a, "/link", pagination={"style": "link"}),
    "link-body": lambda a: cfg(
        a,
        "/link-body",
        records_path="items",
        pagination={"style": "link", "next_url_path": "links.next"},
    ),
}


# ---------------------------------------------------------------------------- pagination


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_reads_every_record_once_in_order(api: Api, style: str) -> None:
    batches, fake = read(STYLES[style](api))
    assert ids(batches) == list(range(23))
    assert fake.sleeps == []
    assert [b.state["done"] for b in batches] == [False] * (len(batches) - 1) + [True]
    for batch in batches:
        assert len(batch.positions) == batch.num_rows
        json.dumps(batch.state)  # what the caller stores must be JSON


def test_page_style_requests_and_positions(api: Api) -> None:
    batches, _ = read(STYLES["page"](api))
    assert [b.num_rows for b in batches] == [10, 10, 3]
    # page 4 came back empty: that ended the read, and the third batch is the last
    assert [q["page"] for q in api.hits("/page")] == ["1", "2", "3", "4"]
    assert {q["per_page"] for q in api.hits("/page")} == {"10"}
    assert batches[1].positions.to_pylist()[:2] == ["page=2#item=0", "page=2#item=1"]
    assert batches[0].state == {"style": "page", "page": 2, "done": False}
    assert batches[-1].state == {"style": "page", "done": True}


def test_offset_advances_by_what_the_server_returned(api: Api) -> None:
    # The server caps each page at 4 although 5 were asked for: a short page must not end
    # the read, and the next offset follows the rows actually received.
    batches, _ = read(STYLES["offset"](api))
    assert ids(batches) == list(range(23))
    offsets = [q["offset"] for q in api.hits("/offset")]
    assert offsets == ["0", "4", "8", "12", "16", "20", "23"]  # 23: the empty page that ends
    assert batches[0].positions.to_pylist()[0] == "offset=0#item=0"


def test_cursor_and_link_positions(api: Api) -> None:
    batches, _ = read(STYLES["cursor"](api))
    assert batches[0].positions[0].as_py() == "cursor=#item=0"
    assert batches[1].positions[0].as_py() == "cursor=c5#item=0"
    assert batches[0].state == {"style": "cursor", "cursor": "c5", "done": False}
    assert "after" not in api.hits("/cursor")[0]  # the first page has no cursor
    batches, _ = read(STYLES["link"](api))
    assert batches[1].state == {"style": "link", "url": api.base + "/link?p=3", "done": False}
    assert batches[1].positions[0].as_py() == f"url={api.base}/link?p=2#item=0"


def test_records_are_flattened_to_strings(api: Api) -> None:
    (batch,), _ = read(cfg(api, "/none", records_path="data.items"))
    table = batch.table
    assert table.column_names == [
        "id",
        "name",
        "meta.score",
        "meta.tags",
        "meta.owner.login",
        "active",
        "note",
    ]
    assert all(str(t) == "string" for t in table.schema.types)
    row = table.slice(3, 1).to_pylist()[0]
    assert row == {
        "id": "3",
        "name": "item 3",
        "meta.score": "4.5",
        "meta.tags": '["a", "3"]',
        "meta.owner.login": "u0",
        "active": "false",
        "note": None,
    }
    assert batch.state == {"style": "none", "done": True}
    assert batch.positions.to_pylist()[0] == f"url={api.base}/none#item=0"


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.floats(allow_nan=False)
)


@given(
    st.lists(
        st.dictionaries(
            st.text("abc", min_size=1, max_size=2),
            st.one_of(
                json_leaf,
                st.lists(json_leaf, max_size=2),
                st.dictionaries(st.text("xyz", min_size=1, max_size=2), json_leaf, max_size=2),
            ),
            max_size=4,
        ),
        max_size=5,
    )
)
def test_flattening_keeps_every_leaf(records: list[dict[str, Any]]) -> None:
    from gyre.ingest.rest_source import _to_table

    table = _to_table(records)
    assert table.num_rows == len(records)
    rows = table.to_pylist()
    for record, row in zip(records, rows, strict=False):
        for key, value in record.items():
            leaves = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, leaf in leaves:
                column = key if sub is None else f"{key}.{sub}"
                plain = leaf is None or isinstance(leaf, str)
                expected = leaf if plain else json.dumps(leaf, ensure_ascii=False)
                assert row[column] == expected


def test_empty_first_page_gives_one_empty_done_batch(api: Api) -> None:
    config = cfg(api, "/page", records_path="results", pagination={"style": "page"})
    batches, _ = read(config, {"style": "page", "page": 99, "done": False})
    assert len(batches) == 1
    assert batches[0].num_rows == 0
    assert batches[0].state == {"style": "page", "done": True}


# ---------------------------------------------------------------------------- resumption


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("crash_after", [1, 2])
def test_resume_after_a_crash_reads_only_uncommitted_pages(
    api: Api, style: str, crash_after: int
) -> None:
    config = STYLES[style](api)
    fake = FakeTime()
    reader = read_batches(config, {}, sleep=fake.sleep, clock=fake.clock)
    committed = list(itertools.islice(reader, crash_after))
    reader.close()  # the process dies before the next batch is committed
    state = json.loads(json.dumps(committed[-1].state))  # as the store would keep it

    before = len(api.requests)
    rest, _ = read(config, state)
    assert ids(committed) + ids(rest) == list(range(23))  # no loss, no duplicates
    first_new = api.requests[before]
    if style == "page":
        assert first_new[1]["page"] == str(crash_after + 1)  # pages 3.. only
        assert rest[0].positions[0].as_py() == f"page={crash_after + 1}#item=0"


def test_secrets_in_next_links_stay_out_of_states_and_positions(api: Api) -> None:
    config = cfg(api, "/link-keyed", params={"api_key": "${API_KEY}"}, pagination={"style": "link"})
    env = {"API_KEY": "k-98765"}
    fake = FakeTime()
    reader = read_batches(config, {}, sleep=fake.sleep, clock=fake.clock, env=env)
    first = next(reader)
    reader.close()
    assert first.state == {
        "style": "link",
        "url": api.base + "/link-keyed?p=2&api_key=${API_KEY}",
        "done": False,
    }
    rest, _ = read(config, stored := json.loads(json.dumps(first.state)), env=env)
    assert stored["url"].endswith("${API_KEY}")
    assert ids([first, *rest]) == list(range(23))
    text = json.dumps([b.state for b in rest]) + str([b.positions.to_pylist() for b in rest])
    assert "k-98765" not in text and "${API_KEY}" in text
    assert all(q["api_key"] == "k-98765" for q in api.hits("/link-keyed"))


def test_damaged_state_is_refused(api: Api) -> None:
    with pytest.raises(SourceError, match="stored state is damaged"):
        read(STYLES["page"](api), {"style": "page", "page": "three", "done": False})


def test_done_state_starts_a_new_full_read(api: Api) -> None:
    config = STYLES["page"](api)
    batches, _ = read(config)
    again, _ = read(config, batches[-1].state)
    assert ids(again) == list(range(23))


def test_state_of_another_style_is_refused(api: Api) -> None:
    with pytest.raises(SourceError, match="stored state is for 'cursor' pagination"):
        read(STYLES["page"](api), {"style": "cursor", "cursor": "c5", "done": False})


# ------------------------------------------------------------------------------- retries


def test_429_waits_for_retry_after_then_succeeds(api: Api) -> None:
    (batch,), fake = read(cfg(api, "/busy", records_path="data.items"))
    assert batch.num_rows == 5
    assert api.counts["/busy"] == 2
    assert fake.sleeps == [1.0]


def test_retry_after_as_http_date(api: Api) -> None:
    config = cfg(api, "/busy-date", records_path="data.items")
    (batch,), fake = read(config, wall_clock=lambda: HTTP_DATE_TS - 7)
    assert batch.num_rows == 5
    assert fake.sleeps == [7.0]


def test_retry_after_longer_than_allowed_fails_retryably(api: Api) -> None:
    config = cfg(api, "/busy-long", max_retry_after=60)
    with pytest.raises(SourceError, match="asks to wait 3600 s") as info:
        read(config)
    assert info.value.retryable
    assert api.counts["/busy-long"] == 1


def test_503_twice_then_success_backs_off_exponentially(api: Api) -> None:
    (batch,), fake = read(cfg(api, "/flaky", records_path="data.items", backoff_base=0.5))
    assert batch.num_rows == 5
    assert api.counts["/flaky"] == 3
    assert fake.sleeps == [0.5, 1.0]


def test_server_errors_past_max_retries(api: Api) -> None:
    config = cfg(api, "/down", max_retries=3, backoff_base=1, max_backoff=3)
    with pytest.raises(SourceError) as info:
        read(config)
    assert info.value.retryable
    assert "HTTP 500 after 4 attempt(s)" in info.value.message
    assert "internal error" in info.value.message
    assert api.counts["/down"] == 4


def test_connection_refused_is_retried_then_retryable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = RestSourceConfig(url=f"http://127.0.0.1:{port}/x", max_retries=2)
    fake = FakeTime()
    with pytest.raises(SourceError, match=f"127.0.0.1:{port}/x: cannot reach") as info:
        list(read_batches(config, {}, sleep=fake.sleep, clock=fake.clock))
    assert info.value.retryable
    assert fake.sleeps == [0.5, 1.0]


def test_rate_limit_spaces_requests_using_the_injected_clock(api: Api) -> None:
    config = STYLES["page"](api).model_copy(update={"rate_limit_per_second": 2.0})
    batches, fake = read(config)
    assert ids(batches) == list(range(23))
    assert len(api.hits("/page")) == 4
    assert fake.sleeps == [0.5, 0.5, 0.5]  # no sleep before the first request


def test_rate_limit_counts_time_already_spent_waiting(api: Api) -> None:
    # The 1 s Retry-After wait already spaces the retry; the limiter must not add more.
    config = cfg(api, "/busy", records_path="data.items", rate_limit_per_second=1.0)
    _, fake = read(config)
    assert fake.sleeps == [1.0]


# -------------------------------------------------------------------------------- errors


def test_404_is_permanent_and_names_url_status_and_body(api: Api) -> None:
    with pytest.raises(SourceError) as info:
        read(cfg(api, "/nowhere", max_retries=5))
    message = info.value.message
    assert message.startswith(f"{api.base}/nowhere: HTTP 404: 'no route /nowhere")
    assert "x" * 180 in message and "x" * 200 not in message  # the first 200 characters
    assert not info.value.retryable
    assert api.counts["/nowhere"] == 1


def test_bearer_token_from_the_environment_reaches_the_server(api: Api) -> None:
    config = cfg(
        api,
        "/secure",
        records_path="data.items",
        auth={"type": "bearer", "token": "${SHOP_TOKEN}"},
        headers={"X-Client": "gyre-${CLIENT}"},
    )
    (batch,), _ = read(config, env={"SHOP_TOKEN": "s3cret-token", "CLIENT": "tests"})
    assert batch.num_rows == 5
    _, _, headers = api.requests[-1]
    assert headers["authorization"] == "Bearer s3cret-token"
    assert headers["x-client"] == "gyre-tests"


def test_wrong_token_is_a_401_with_an_auth_hint_and_no_secret(api: Api) -> None:
    config = cfg(
        api,
        "/secure",
        params={"api_key": "${KEY}"},
        auth={"type": "bearer", "token": "${SHOP_TOKEN}"},
    )
    with pytest.raises(SourceError) as info:
        read(config, env={"SHOP_TOKEN": "wrong-token", "KEY": "k-123456"})
    assert "HTTP 401" in info.value.message
    assert "api_key=***" in info.value.message
    assert "k-123456" not in str(info.value) and "wrong-token" not in str(info.value)
    assert info.value.hint is not None and "auth" in info.value.hint


def test_url_encoded_secret_is_masked_too(api: Api) -> None:
    config = cfg(api, "/nowhere", params={"token": "${TOKEN}"})
    with pytest.raises(SourceError) as info:
        read(config, env={"TOKEN": "a b/c+d"})
    assert "token=***" in info.value.message
    assert "a+b" not in info.value.message and "%2F" not in info.value.message


def test_missing_environment_variable_is_a_config_error(api: Api) -> None:
    config = cfg(api, "/secure", auth={"type": "bearer", "token": "${NOT_SET_ANYWHERE}"})
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        read(config, env={})


def test_basic_and_header_auth_are_sent(api: Api) -> None:
    basic = {"type": "basic", "username": "ann", "password": "pw:1"}
    read(cfg(api, "/none", records_path="data.items", auth=basic))
    _, _, headers = api.requests[-1]
    assert base64.b64decode(headers["authorization"].removeprefix("Basic ")) == b"ann:pw:1"
    key = {"type": "header", "name": "X-API-Key", "value": "abc"}
    read(cfg(api, "/none", records_path="data.items", auth=key))
    _, _, headers = api.requests[-1]
    assert headers["x-api-key"] == "abc"


def test_body_that_is_not_json(api: Api) -> None:
    with pytest.raises(SourceError, match=r"/html: HTTP 200: the body is not JSON: '<html>"):
        read(cfg(api, "/html"))


def test_missing_records_path_lists_what_is_there(api: Api) -> None:
    with pytest.raises(SourceError, match=r"no 'data\.rows' in the body \(it has: data\)"):
        read(cfg(api, "/none", records_path="data.rows"))
    with pytest.raises(SourceError, match="are a dict, not a list"):
        read(cfg(api, "/none", records_path="data"))


def test_a_cursor_that_repeats_is_refused(api: Api) -> None:
    config = cfg(
        api,
        "/same-cursor",
        records_path="items",
        pagination={"style": "cursor", "cursor_path": "meta.next"},
    )
    with pytest.raises(SourceError, match="same cursor 'again' again"):
        read(config)


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError):
        RestSourceConfig(url="http://x", pagination={"style": "scroll"})
    with pytest.raises(ValidationError):
        RestSourceConfig(url="http://x", pagination={"style": "cursor"})  # needs cursor_path
    with pytest.raises(ValidationError):
        RestSourceConfig(url="http://x", retries=3)
    with pytest.raises(ValidationError):
        RestSourceConfig(url="http://x", auth={"type": "bearer"})
