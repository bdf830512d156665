"""Monitor windows start where a person would expect: midnight, Monday, the first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gyre.monitor.run import window_start

NOW = datetime(2026, 11, 26, 15, 42, 7, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("day", datetime(2026, 11, 26, tzinfo=UTC)),
        ("week", datetime(2026, 11, 23, tzinfo=UTC)),
        ("month", datetime(2026, 11, 1, tzinfo=UTC)),
    ],
)
def test_window_start(window: str, expected: datetime) -> None:
    assert window_start(window, NOW) == expected


def test_unknown_window_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown monitor window"):
        window_start("year", NOW)
