"""Timestamp parsing for callers and datasets."""

from datetime import date, datetime, timedelta, timezone

import pytest

from engramdb import TimestampError
from engramdb.timeutil import parse_timestamp


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2023-05-08T13:56:00", datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)),
        ("2023-05-08T13:56:00Z", datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)),
        ("2023-05-08T15:56:00+02:00", datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)),
        ("2023-05-08", datetime(2023, 5, 8, tzinfo=timezone.utc)),
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)),
        ("2023/05/20 (Sat) 07:46", datetime(2023, 5, 20, 7, 46, tzinfo=timezone.utc)),
        ("29.12.2023, 22:42:04", datetime(2023, 12, 29, 22, 42, 4, tzinfo=timezone.utc)),
        (date(2023, 1, 2), datetime(2023, 1, 2, tzinfo=timezone.utc)),
        (datetime(2023, 1, 2, 3, 4), datetime(2023, 1, 2, 3, 4, tzinfo=timezone.utc)),
        (0, datetime(1970, 1, 1, tzinfo=timezone.utc)),
    ],
)
def test_parses(value: object, expected: datetime) -> None:
    assert parse_timestamp(value) == expected


def test_aware_datetime_converted_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert parse_timestamp(datetime(2023, 1, 1, 12, tzinfo=cet)).hour == 11


@pytest.mark.parametrize("bad", ["yesterday-ish", "", "2023-13-45", True, [2023], None])
def test_rejects_with_typed_error(bad: object) -> None:
    with pytest.raises(TimestampError) as info:
        parse_timestamp(bad, field="timestamp")
    assert "timestamp" in str(info.value)
