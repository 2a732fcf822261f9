"""The shared HTTP helpers the lean paths parse answers with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cloudstore._http import byte_range, content_range_total, http_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 01 Dec 2026 18:21:02 GMT", datetime(2026, 12, 1, 18, 21, 2, tzinfo=UTC)),
        ("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        # Other forms go to the email package's parser: same instant.
        ("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Sun, 06 Nov 1994 09:49:37 +0100", datetime(1994, 11, 6, 9, 49, 37, tzinfo=timezone(timedelta(hours=1)))),
    ],
)
def test_http_dates_parse_to_aware_datetimes(text: str, expected: datetime) -> None:
    parsed = http_date(text)
    assert parsed == expected and parsed.utcoffset() is not None


def test_ranges_and_content_range_totals() -> None:
    assert byte_range(None, None) is None
    assert byte_range(5, None) == "bytes=5-" and byte_range(None, 9) == "bytes=0-9"
    assert content_range_total("bytes 0-9/1234") == 1234
    assert content_range_total("bytes 0-9/*") is None and content_range_total(None) is None
