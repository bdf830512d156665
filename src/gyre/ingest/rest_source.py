"""Read records from a paginated JSON REST API, one batch per page, resumable by page.

    config = RestSourceConfig(
        url="https://api.example.com/v1/orders",
        auth={"type": "bearer", "token": "${SHOP_TOKEN}"},
        records_path="data.items",
        pagination={"style": "cursor", "cursor_path": "meta.next_cursor", "page_size": 200},
        rate_limit_per_second=5,
    )
    for batch in read_batches(config, state=last_committed_state):
        ...  # commit batch.table with batch.state, atomically

Pagination styles: ``page`` (page number parameter), ``offset`` (offset and limit parameters),
``cursor`` (the next cursor is read from the body at ``cursor_path`` and sent back as
``cursor_param``) and ``link`` (the next URL comes from the ``Link: <...>; rel="next"`` header,
or from the body at ``next_url_path``). ``page`` and ``offset`` end at the first empty page:
one request more than strictly needed, but never stops early when a server quietly caps the
page size; ``cursor`` and ``link`` end when no next cursor or link is given.

**State** is the request that comes next (``{"style": "page", "page": 4, "done": false}``). A
reader resumed with the state of the last committed batch starts at the first page not
committed. The reader fetches one page ahead, so that the last batch of a read can say
``done``; a resumed read after ``done`` starts again from the first page (a new full read).
If the very first page is empty, one empty batch carries the ``done`` state.

**Records** are the list at ``records_path`` (dotted; the body itself when unset). Nested
objects are flattened into dotted columns (``{"customer": {"id": 7}}`` → ``customer.id``), lists
are kept as JSON text, and every column is a string: text as is, numbers and booleans as their
JSON text (``7``, ``2.5``, ``true``), null as null. Typing is the contract's job, as for CSV.
Columns appear in first-seen order; a page may lack columns other pages have.

**Failures.** 429, 5xx and connection errors are retried up to ``max_retries`` times with
exponential backoff (``backoff_base * 2**attempt``, at most ``max_backoff``), or after the
server's ``Retry-After`` (seconds or an HTTP date) when it sends one. Other 4xx answers, a body
that is not JSON, or a missing ``records_path`` raise :class:`SourceError` with the URL, the
status and the start of the body. ``${NAME}`` references in the URL, parameters, headers and
auth are expanded from the environment, and their values are masked in every message.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import quote, quote_plus

import httpx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from gyre.core.errors import SourceError
from gyre.ingest.source_batch import SourceBatch, expand_env

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "CursorPagination",
    "HeaderAuth",
    "LinkPagination",
    "NoPagination",
    "OffsetPagination",
    "PagePagination",
    "RestSourceConfig",
    "read_batches",
]

_BODY_CHARS = 200
_MIN_SECRET = 4  # shorter values are no secret, and masking them would garble messages
_ENV_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BearerAuth(_Frozen):
    type: Literal["bearer"]
    token: str


class BasicAuth(_Frozen):
    type: Literal["basic"]
    username: str
    password: str


class HeaderAuth(_Frozen):
    """An API key in a header of its own, e.g. ``X-API-Key``."""

    type: Literal["header"]
    name: str
    value: str


class NoPagination(_Frozen):
    style: Literal["none"] = "none"


class PagePagination(_Frozen):
    style: Literal["page"]
    page_param: str = "page"
    first_page: int = 1
    size_param: str | None = None
    page_size: int | None = Field(default=None, ge=1)


class OffsetPagination(_Frozen):
    style: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int = Field(default=100, ge=1)


class CursorPagination(_Frozen):
    style: Literal["cursor"]
    cursor_path: str
    """Dotted path of the next cursor in the body; missing, null or empty ends the read."""
    cursor_param: str = "cursor"
    size_param: str | None = None
    page_size: int | None = Field(default=None, ge=1)


class LinkPagination(_Frozen):
    style: Literal["link"]
    next_url_path: str | None = None
    """Dotted path of the next URL in the body; unset: the ``Link`` header's ``rel="next"``."""


Auth = Annotated[BearerAuth | BasicAuth | HeaderAuth, Field(discriminator="type")]
Pagination = Annotated[
    NoPagination | PagePagination | OffsetPagination | CursorPagination | LinkPagination,
    Field(discriminator="style"),
]


class RestSourceConfig(_Frozen):
    """Where and how to read one REST API."""

    url: str
    method: Literal["GET"] = "GET"
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    records_path: str | None = None
    pagination: Pagination = Field(default_factory=NoPagination)
    max_retries: int = Field(default=5, ge=0)
    backoff_base: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=60.0, gt=0)
    max_retry_after: float = Field(default=300.0, ge=0)
    """A longer ``Retry-After`` fails the read (retryable) instead of sleeping that long."""
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=30.0, gt=0)


def read_batches(
    config: RestSourceConfig,
    state: Mapping[str, Any] | None = None,
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    env: Mapping[str, str] | None = None,
) -> Iterator[SourceBatch]:
    """Yield one batch per page of ``config``'s API, from the page after ``state``.

    ``sleep``, ``clock`` (monotonic, for the rate limit) and ``wall_clock`` (for
    ``Retry-After`` dates) are injectable so tests need not wait. A ``client`` passed in is
    used as is and left open.
    """
    http = _Http(config, client, sleep, clock, wall_clock, env)
    pager = _Pager(config, http)
    origin = f"{config.url} ({config.pagination.style} pagination)"
    try:
        request = pager.start(state, origin)
        page = http.fetch(request)
        while True:
            following = pager.following(request, page)
            ahead = http.fetch(following) if following is not None else None
            if ahead is not None and not ahead.records and pager.empty_page_ends:
                following, ahead = None, None
            done = following is None
            if page.records or done:
                table = _to_table(page.records)
                positions = pa.array(
                    [f"{request.label}#item={i}" for i in range(len(page.records))], pa.string()
                )
                yield SourceBatch(table, positions, pager.state(following), origin)
            if following is None or ahead is None:
                return
            request, page = following, ahead
    finally:
        http.close()


# --------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class _Request:
    url: str
    params: dict[str, str]
    label: str
    """Names the page in row positions, e.g. ``page=3``."""
    position: dict[str, Any]
    """What the state stores to make this request again."""


@dataclass
class _Page:
    records: list[Any]
    body: Any
    response: httpx.Response


@dataclass
class _Http:
    config: RestSourceConfig
    client_in: httpx.Client | None
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    env: Mapping[str, str] | None
    secrets: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)
    """Value of each environment variable the URL or parameters use -> its ``${NAME}``."""
    last_start: float | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        self.url = self._expand(cfg.url, "url", remember=True)
        self.params = {
            k: self._expand(v, f"params.{k}", remember=True) for k, v in cfg.params.items()
        }
        self.headers = {k: self._expand(v, f"headers.{k}") for k, v in cfg.headers.items()}
        auth = cfg.auth
        if isinstance(auth, BearerAuth):
            token = self._expand(auth.token, "auth.token")
            self.secrets.append(token)
            self.headers["Authorization"] = f"Bearer {token}"
        elif isinstance(auth, BasicAuth):
            user = self._expand(auth.username, "auth.username")
            password = self._expand(auth.password, "auth.password")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.secrets.append(password)
            self.headers["Authorization"] = f"Basic {token}"
        elif isinstance(auth, HeaderAuth):
            self.headers[auth.name] = self._expand(auth.value, "auth.value")
            self.secrets.append(self.headers[auth.name])
        self.client = self.client_in or httpx.Client(follow_redirects=True)

    def _expand(self, text: str, key: str, *, remember: bool = False) -> str:
        value = expand_env(text, key=key, env=self.env)
        # Mask each referenced variable's value rather than the whole setting, so a URL
        # with ?api_key=${KEY} still shows its host and path in messages.
        environ = os.environ if self.env is None else self.env
        for name in _ENV_NAME.findall(text):
            secret = environ.get(name, "")
            if len(secret) < _MIN_SECRET:
                continue
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:  # as in URLs
                self.secrets.append(form)
                if remember:
                    self.refs[form] = "${" + name + "}"
        return value

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= _MIN_SECRET:
                text = text.replace(secret, "***")
        return text

    def templatize(self, url: str) -> str:
        """``url`` with the environment's values put back as ``${NAME}``: a next link that
        repeats ``?api_key=...`` is stored in states and row positions without the key."""
        for secret in sorted(self.refs, key=len, reverse=True):
            url = url.replace(secret, self.refs[secret])
        return url

    def expand(self, url: str) -> str:
        return expand_env(url, key="state.url", env=self.env)

    def close(self) -> None:
        if self.client_in is None:
            self.client.close()

    def fetch(self, request: _Request) -> _Page:
        response = self._send(request)
        where = self.redact(str(response.request.url))
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SourceError(
                f"{where}: HTTP {response.status_code}: the body is not JSON: "
                f"{self.redact(_snippet(response))!r}",
                hint="check the URL; the API may have answered with an HTML error page",
            ) from None
        path = self.config.records_path
        records = body if path is None else _dig(body, path)
        if records is _MISSING:
            keys = ", ".join(body) if isinstance(body, dict) else type(body).__name__
            raise SourceError(
                f"{where}: HTTP {response.status_code}: no {path!r} in the body "
                f"(it has: {keys}): {self.redact(_snippet(response))!r}",
                hint="set `records_path` to the dotted path of the list of records",
            )
        if not isinstance(records, list):
            raise SourceError(
                f"{where}: HTTP {response.status_code}: the records at "
                f"{path or 'the top of the body'!r} are a {type(records).__name__}, not a list: "
                f"{self.redact(_snippet(response))!r}",
                hint="set `records_path` to the dotted path of the list of records",
            )
        return _Page(records, body, response)

    def _send(self, request: _Request) -> httpx.Response:
        cfg = self.config
        # httpx replaces a URL's query with `params`; merging keeps ?filters in `url`.
        url = httpx.URL(request.url).copy_merge_params(request.params)
        where = self.redact(str(url))
        attempt = 0
        while True:
            self._throttle()
            try:
                response = self.client.request(
                    cfg.method, url, headers=self.headers, timeout=cfg.timeout
                )
            except httpx.TransportError as exc:
                if attempt >= cfg.max_retries:
                    raise SourceError(
                        f"{where}: cannot reach the server after {attempt + 1} attempt(s): "
                        f"{self.redact(str(exc)) or type(exc).__name__}",
                        hint="check the URL and that the server is up; the read can be retried",
                        retryable=True,
                    ) from None
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                if attempt >= cfg.max_retries:
                    raise SourceError(
                        f"{where}: HTTP {status} after {attempt + 1} attempt(s): "
                        f"{self.redact(_snippet(response))!r}",
                        hint="the server is busy or failing; the read can be retried later",
                        retryable=True,
                    )
                wait = self._retry_after(response)
                if wait is None:
                    wait = self._backoff(attempt)
                elif wait > cfg.max_retry_after:
                    raise SourceError(
                        f"{where}: HTTP {status}: the server asks to wait {wait:.0f} s, "
                        f"more than max_retry_after={cfg.max_retry_after:g} s",
                        hint="retry the read later, or raise `max_retry_after`",
                        retryable=True,
                    )
                self.sleep(wait)
                attempt += 1
                continue
            if status >= 400:
                hint = (
                    "check the credentials in `auth` / `headers`"
                    if status in (401, 403)
                    else "check the URL and parameters"
                )
                raise SourceError(
                    f"{where}: HTTP {status}: {self.redact(_snippet(response))!r}", hint=hint
                )
            return response

    def _throttle(self) -> None:
        rate = self.config.rate_limit_per_second
        if rate is None:
            return
        if self.last_start is not None:
            wait = self.last_start + 1.0 / rate - self.clock()
            if wait > 0:
                self.sleep(wait)
        self.last_start = self.clock()

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        return float(min(cfg.max_backoff, cfg.backoff_base * 2**attempt))

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # unreadable: fall back to our own backoff
        return max(0.0, when.timestamp() - self.wall_clock())


def _snippet(response: httpx.Response) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        text = response.content.decode("utf-8", "replace")
    return text[:_BODY_CHARS]


# --------------------------------------------------------------------------------- pages


@dataclass
class _Pager:
    """Knows, for the configured style, the first request, the next one, and the state."""

    config: RestSourceConfig
    http: _Http

    @property
    def empty_page_ends(self) -> bool:
        return self.config.pagination.style in ("page", "offset")

    def start(self, state: Mapping[str, Any] | None, origin: str) -> _Request:
        p = self.config.pagination
        if not state or state.get("done"):
            initial: dict[str, dict[str, Any]] = {
                "none": {},
                "page": {"page": getattr(p, "first_page", 1)},
                "offset": {"offset": 0},
                "cursor": {"cursor": None},
                "link": {"url": None},
            }
            return self._request(initial[p.style])
        if state.get("style") != p.style:
            raise SourceError(
                f"{origin}: the stored state is for {state.get('style')!r} pagination",
                hint="reset the source's stored state to read from the first page",
            )
        try:
            return self._request({k: v for k, v in state.items() if k not in ("style", "done")})
        except (KeyError, TypeError, ValueError):
            raise SourceError(
                f"{origin}: the stored state is damaged: {dict(state)!r}",
                hint="reset the source's stored state to read from the first page",
            ) from None

    def state(self, following: _Request | None) -> dict[str, Any]:
        style = self.config.pagination.style
        if following is None:
            return {"style": style, "done": True}
        return {"style": style, **following.position, "done": False}

    def following(self, request: _Request, page: _Page) -> _Request | None:
        p = self.config.pagination
        if isinstance(p, PagePagination):
            return (
                None if not page.records else self._request({"page": request.position["page"] + 1})
            )
        if isinstance(p, OffsetPagination):
            if not page.records:
                return None
            return self._request({"offset": request.position["offset"] + len(page.records)})
        if isinstance(p, CursorPagination):
            cursor = _dig(page.body, p.cursor_path)
            if cursor is _MISSING or cursor is None or cursor == "":
                return None
            if cursor == request.position["cursor"]:
                raise self._repeat_error(page, "cursor", cursor)
            return self._request({"cursor": cursor})
        if isinstance(p, LinkPagination):
            if p.next_url_path is None:
                link = page.response.links.get("next", {}).get("url")
            else:
                found = _dig(page.body, p.next_url_path)
                link = None if found is _MISSING else found
            if not link:
                return None
            url = str(page.response.request.url.join(str(link)))
            if url == str(page.response.request.url):
                raise self._repeat_error(page, "next link", url)
            return self._request({"url": self.http.templatize(url)})
        return None

    def _repeat_error(self, page: _Page, what: str, value: Any) -> SourceError:
        return SourceError(
            self.http.redact(
                f"{page.response.request.url}: the API returned the same {what} {value!r} "
                "again; reading on would loop forever"
            ),
            hint="check `pagination` against the API's documentation",
        )

    def _request(self, position: dict[str, Any]) -> _Request:
        p = self.config.pagination
        base, params = self.http.url, dict(self.http.params)
        if isinstance(p, PagePagination):
            page = int(position["page"])
            params[p.page_param] = str(page)
            if p.size_param and p.page_size:
                params[p.size_param] = str(p.page_size)
            return _Request(base, params, f"page={page}", {"page": page})
        if isinstance(p, OffsetPagination):
            offset = int(position["offset"])
            params[p.offset_param] = str(offset)
            params[p.limit_param] = str(p.page_size)
            return _Request(base, params, f"offset={offset}", {"offset": offset})
        if isinstance(p, CursorPagination):
            cursor = position.get("cursor")
            if cursor is not None:
                params[p.cursor_param] = str(cursor)
            if p.size_param and p.page_size:
                params[p.size_param] = str(p.page_size)
            label = "cursor=" + ("" if cursor is None else str(cursor))
            return _Request(base, params, label, {"cursor": cursor})
        if isinstance(p, LinkPagination) and position.get("url"):
            stored = str(position["url"])  # with ${NAME} where a secret was
            return _Request(self.http.expand(stored), {}, f"url={stored}", {"url": stored})
        label = "url=" + self.http.templatize(base)
        return _Request(base, params, label, dict(position))


# ------------------------------------------------------------------------------- records


class _Missing:
    pass


_MISSING: Any = _Missing()


def _dig(body: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``body`` (list items by number), or ``_MISSING``."""
    current = body
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _to_table(records: list[Any]) -> pa.Table:
    rows = []
    columns: dict[str, None] = {}
    for record in records:
        flat: dict[str, str | None] = {}
        _flatten(record if isinstance(record, dict) else {"value": record}, "", flat)
        columns.update(dict.fromkeys(flat))
        rows.append(flat)
    if not columns:  # records that are all empty objects still count as rows
        return pa.table({"_": pa.nulls(len(rows), pa.string())}).drop_columns(["_"])
    return pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in columns})


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, str | None]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, f"{name}.", out)
        elif value is None or isinstance(value, str):
            out[name] = value
        else:  # numbers, booleans, lists: their JSON text
            out[name] = json.dumps(value, ensure_ascii=False)
