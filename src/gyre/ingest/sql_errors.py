"""How a database driver's error becomes one line of :class:`SourceError` for the SQL readers.

    except sa.exc.SQLAlchemyError as exc:
        raise database_error(exc, "cannot read from", origin, url.password) from None

The message names the source (URL without its password) and keeps the first line of the
driver's text with the password replaced by ``***``. It tells a refused login and a missing
table or column (permanent: fix the source) from a dropped or unreachable server (retryable).
Errors from SQLAlchemy (any DB-API driver) and from ADBC drivers are understood.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import sqlalchemy as sa

from gyre.core.errors import SourceError

__all__ = ["database_error"]

# Error codes meaning "the server answered, and said no": retrying will not help.
_LOGIN_SQLSTATES = ("28", "3D")
_LOGIN_MYSQL = {1044, 1045, 1049, 1698}
_LOGIN_WORDS = ("authentication failed", "does not exist", "no pg_hba.conf entry")
_MISSING_SQLSTATES = {"42P01", "42703", "42S02", "42S22"}
_MISSING_MYSQL = {1146, 1054}
_TRANSIENT_SQLSTATES = ("08", "40", "53", "57P")
_TRANSIENT_MYSQL = {1205, 1213, 2003, 2006, 2013}
# ADBC prefixes the server's text with its status, the library and what it was doing:
# "NOT_FOUND: Failed to prepare query: ERROR:  relation "x" does not exist".
_ADBC_PREFIX = re.compile(
    r"^(?:[A-Z_]+: )?(?:\[libpq\] )?"
    r"(?:(?:Failed to (?:connect|prepare query|execute query)|Execution error \[\w+\]): )?"
    r"(?:(?:ERROR|FATAL):  )?"
)
# A stream that ends in one of these lost its connection (the server went away or was shut
# down); an ``ERROR`` (a bad value, a failed cast) is the query's own and permanent.
_ADBC_LOST = re.compile(
    r"FATAL:|server closed the connection|could not receive data|connection to server"
)


class _Failure(NamedTuple):
    detail: str
    sqlstate: str
    mysql_code: int | None
    disconnected: bool
    """The driver says the connection failed or dropped."""


def database_error(exc: Exception, doing: str, origin: str, password: str | None) -> SourceError:
    """``exc`` (from SQLAlchemy or an ADBC driver) as a one-line :class:`SourceError`;
    ``doing`` is ``"cannot connect to"`` or ``"cannot read from"``."""
    failure = _sqlalchemy_failure(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else None
    failure = failure or _adbc_failure(exc)
    detail = failure.detail
    if password:
        detail = detail.replace(password, "***")
    sqlstate, mysql_code = failure.sqlstate, failure.mysql_code
    # libpq reports a refused login with no SQLSTATE, only its (stable, English) message.
    refused = doing == "cannot connect to" and any(w in detail for w in _LOGIN_WORDS)
    if sqlstate.startswith(_LOGIN_SQLSTATES) or mysql_code in _LOGIN_MYSQL or refused:
        return SourceError(
            f"{origin}: the server refused the login: {detail}",
            hint="check the user, password and database name in the URL",
        )
    if sqlstate in _MISSING_SQLSTATES or mysql_code in _MISSING_MYSQL:
        return SourceError(
            f"{origin}: {detail}", hint="check the table, query and column names in the source"
        )
    transient = (
        failure.disconnected
        or sqlstate.startswith(_TRANSIENT_SQLSTATES)
        or mysql_code in _TRANSIENT_MYSQL
    )
    return SourceError(
        f"{origin}: {doing} the database: {detail}",
        hint="check that the database server is running and reachable from here"
        if transient
        else None,
        retryable=transient,
    )


def _first_line(text: str, fallback: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else fallback


def _sqlalchemy_failure(exc: sa.exc.SQLAlchemyError) -> _Failure:
    orig = getattr(exc, "orig", None)
    args: Any = getattr(orig, "args", ())
    return _Failure(
        detail=_first_line(str(orig if orig is not None else exc), type(exc).__name__),
        sqlstate=str(getattr(orig, "sqlstate", None) or ""),
        mysql_code=args[0] if args and isinstance(args[0], int) else None,
        disconnected=isinstance(
            exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)
        )
        or bool(getattr(exc, "connection_invalidated", False)),
    )


def _adbc_failure(exc: Exception) -> _Failure:
    line = _first_line(str(exc), type(exc).__name__)
    # ADBC's DB-API errors follow PEP 249, whose OperationalError is a failed or lost
    # connection; a record batch stream reports a lost connection as a plain OSError.
    classes = {c.__name__ for c in type(exc).__mro__}
    return _Failure(
        detail=_ADBC_PREFIX.sub("", line, count=1) or line,
        sqlstate=str(getattr(exc, "sqlstate", None) or ""),
        mysql_code=None,
        disconnected="OperationalError" in classes or bool(_ADBC_LOST.search(line)),
    )
