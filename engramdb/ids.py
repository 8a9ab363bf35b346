"""Ids of what a memory stores: a prefix and 32 hex digits, ordered by when they were made.

The first 12 digits are the milliseconds since the epoch, the other 20 are random (80 bits),
as in UUIDv7 and ULID. A row's id goes into a unique index; a random id lands each insert on a
random page of it, which an add then writes out (to the WAL, then the database file at a
checkpoint): dozens of pages per add for episodes, entities, facts and changes. Ids that
grow with time append to the index's last pages. They also sort in the order things were
made; the time they carry is when a row was stored, which its ``recorded_at`` says anyway.
"""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """``prefix`` followed by 32 hex digits: milliseconds now, then 80 random bits."""
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
