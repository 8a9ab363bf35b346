"""Timestamps: parse what callers and datasets send, and keep everything in UTC.

Naive datetimes and strings without an offset are taken as UTC; aware ones are converted.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from .errors import TimestampError

UTC = timezone.utc

# Formats seen in conversation datasets, tried after ISO 8601.
_FORMATS = (
    "%I:%M %p on %d %B, %Y",  # LoCoMo: "1:56 pm on 8 May, 2023"
    "%I:%M %p on %d %b, %Y",
    "%Y/%m/%d (%a) %H:%M",  # LongMemEval: "2023/05/20 (Sat) 07:46"
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d.%m.%Y, %H:%M:%S",  # LoCoMo-format datasets: "29.12.2023, 22:42:04"
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d %B %Y",
    "%d %B, %Y",
    "%B %d, %Y",
    "%Y-%m-%d %H:%M:%S",
)


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_timestamp(value: object, *, field: str = "timestamp") -> datetime:
    """Parse a datetime, date, epoch seconds or a timestamp string into an aware UTC datetime.

    Raises :class:`TimestampError` (naming ``field``) when the value cannot be read.
    """
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise TimestampError(f"{field} must be a timestamp, not a boolean", field=field, value=value)
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise TimestampError(f"{field} {value!r} is out of range", field=field, value=value) from exc
    if not isinstance(value, str):
        raise TimestampError(
            f"{field} must be an ISO 8601 string or a datetime, not {type(value).__name__}",
            field=field,
            value=value,
        )
    text = value.strip()
    if not text:
        raise TimestampError(f"{field} is empty", field=field, value=value)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return to_utc(datetime.fromisoformat(iso))
    except ValueError:
        pass
    cleaned = re.sub(r"\s+", " ", text)
    for fmt in _FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise TimestampError(
        f"cannot parse {field} {value!r}: use ISO 8601, e.g. 2023-05-08T13:56:00",
        field=field,
        value=value,
    )


def iso(value: datetime) -> str:
    return to_utc(value).isoformat()


def display(value: datetime) -> str:
    """Short, unambiguous form used in text handed to an LLM: 2023-05-08 13:56."""
    return to_utc(value).strftime("%Y-%m-%d %H:%M")
