"""Memory over a lifetime: strength, importance, tiers and recognition — pure, no storage.

**Strength** is the chance a memory is still retrievable, after Ebbinghaus's forgetting curve as
MemoryBank uses it: ``R = exp(-t / S)``, with ``t`` the days since the memory was last used (or
formed) and ``S`` its *stability* in days. A new memory starts at ``S = BASE_DAYS * (0.5 + 2 *
importance)`` (importance 0.5: 10.5 days). Each use — a recall the caller shows, or
:meth:`Memory.reinforce` — raises it as spaced repetition does (SuperMemo, FSRS): the lower ``R``
at the time of use, the larger the gain, ``S' = S * (1 + w * GAIN * (1 - R)) + w * MIN_GAIN_DAYS``
with ``w`` how fully it was used. A recall right after the last adds half a day; one after a
long gap multiplies ``S`` up to ``1 + GAIN`` (10) times.

**Importance** is given by the caller (``importance`` on a message), or estimated: people's
self-disclosures count for more and small talk for less (:func:`estimate_importance`), and
consolidation adds surprise, the episode's distance from the conversation so far.

**Tiers**: an active memory is recalled; an archived one is not (``include_archived`` reaches
it), but is still *recognised* from its **gist**: the hashed stems of its content words, ~4
bytes each, against ~1.5 KB for one vector alone (:func:`recognition_scores`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Sequence

import numpy as np

from .forget import DeletionReceipt
from .index.lexical import query_keys
from .model import Episode

DAY = 86_400.0
BASE_DAYS = 7.0
GAIN = 9.0  # chosen on the forgetting bench's tune half (2, 4, 9)
MIN_GAIN_DAYS = 0.5


def initial_stability(importance: float) -> float:
    """Stability in days of a memory just formed with this importance (0..1)."""
    return BASE_DAYS * (0.5 + 2.0 * min(max(importance, 0.0), 1.0))


def retrievability(elapsed_days: np.ndarray | float, stability: np.ndarray | float) -> Any:
    """``exp(-t / S)``: 1 when just used, 1/e after S days unused."""
    return np.exp(-np.maximum(elapsed_days, 0.0) / np.maximum(stability, 1e-6))


def reinforced(stability: float, elapsed_days: float, weight: float = 1.0) -> float:
    """The stability after a use ``elapsed_days`` after the last one (spacing effect);
    ``weight`` (0..1) grades the use: the first hit of a search is used fully, the third a
    ninth as much (1 / rank², chosen over 1 / rank and 1 / rank³ on the forgetting bench's tune
    half: what an agent uses is mostly its first hits)."""
    r = float(retrievability(elapsed_days, stability))
    w = min(max(weight, 0.0), 1.0)
    return stability * (1.0 + w * GAIN * (1.0 - r)) + w * MIN_GAIN_DAYS


_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|my|me|mine|we|our|we're|we've)\b", re.I)
_PHATIC = re.compile(
    r"^\W*(?:ok(?:ay)?|thanks?(?: you)?|thank you(?: so much)?|cool|nice|great|wow|haha+|lol|yes|yeah|yep|no|nope|"
    r"sure|sounds good|good (?:morning|night)|hi|hello|hey|bye|see you|you too|same|right|awesome|exactly)\b[\W\w]{0,20}$",
    re.I,
)


def estimate_importance(text: str, role: str | None) -> float:
    """Importance from the text alone (consolidation adds surprise): a person telling about
    themselves 0.7, other statements 0.5, a question 0.4, small talk 0.2; an assistant's
    reply 0.4 (it is derived; what the user said is the memory)."""
    t = text.strip()
    if _PHATIC.match(t) or len(t) < 12:
        return 0.2
    if role == "assistant":
        return 0.4
    if t.endswith("?"):
        return 0.4
    if _FIRST_PERSON.search(t):
        return 0.7
    return 0.5


SURPRISE_WEIGHT = 0.2  # how much a topic shift adds to an estimated importance
RECOGNITION_MIX = 0.5  # recognition: weight of the words' gist against the sign code of the meaning


def gist(text: str, speaker: str | None = None) -> bytes:
    """The compact trace recognition reads: sorted distinct 32-bit keys of the content word
    stems of the text and its speaker's name ("what did Caroline say about…")."""
    words = f"{text} {speaker}" if speaker else text
    keys = np.unique(np.asarray(query_keys(words), dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    return keys.tobytes()


def recognition_scores(query: str, gists: Sequence[bytes]) -> np.ndarray:
    """How much of the query each gist holds: the idf-weighted share of the query's content
    stems found in it (0..1), idf over these gists."""
    q = np.unique(np.asarray(query_keys(query), dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    n = len(gists)
    if not q.size or not n:
        return np.zeros(n)
    sizes = np.fromiter((len(g) // 4 for g in gists), dtype=np.int64, count=n)
    flat = np.frombuffer(b"".join(gists), dtype=np.uint32)
    doc = np.repeat(np.arange(n), sizes)
    hit = np.isin(flat, q)
    pos = np.searchsorted(q, flat[hit])
    df = np.bincount(pos, minlength=q.size)
    idf = np.log1p(n / np.maximum(df, 1))
    idf[df == 0] = 0.0  # a word no memory holds says nothing about which one is meant
    total = idf.sum()
    if total <= 0:
        return np.zeros(n)
    score = np.bincount(doc[hit], weights=idf[pos], minlength=n)
    # a stem the memories never hold still counts against: "have we talked about X?" with X unknown
    return np.asarray(score / (total + np.log1p(n) * (df == 0).sum()))


def sign_code(vector: np.ndarray) -> bytes:
    """A vector's sign bits, packed: 48 bytes for 384 dimensions, 1/32 of the float32 vector.
    The share of equal bits between two codes estimates the angle between the vectors."""
    return np.packbits(np.asarray(vector) > 0).tobytes()


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def code_similarity(query_vector: np.ndarray, codes: Sequence[bytes | None]) -> np.ndarray:
    """Estimated cosine between the query vector and each code's vector (0 where no code):
    cos(pi * differing bits / bits)."""
    n = len(codes)
    out = np.zeros(n)
    q = np.frombuffer(sign_code(query_vector), dtype=np.uint8)
    have = [i for i, c in enumerate(codes) if c is not None and len(c) == q.size]
    if not have:
        return out
    mat = np.frombuffer(b"".join(codes[i] for i in have), dtype=np.uint8).reshape(len(have), q.size)  # type: ignore[misc]
    differ = _POPCOUNT[np.bitwise_xor(mat, q)].sum(axis=1, dtype=np.int64)
    out[have] = np.cos(np.pi * differ / (8 * q.size))
    return out


@dataclass(frozen=True)
class Policy:
    """What :meth:`Memory.maintain` does to a user's memories.

    ``archive_below``: archive active memories whose strength has fallen below this (0..1);
    ``max_active``: keep at most this many active, archiving the weakest; ``ttl``: delete memories
    older than this (``timedelta`` or days), verifiably, as :meth:`Memory.forget` does.
    ``horizon_days``: over capacity, the memories kept are those that will be strongest this
    many days ahead, so a memory used often (high stability) outlasts one merely recent.
    """

    archive_below: float | None = None
    max_active: int | None = None
    ttl: timedelta | float | None = None
    horizon_days: float = 90.0  # over capacity, keep what will be strongest this far ahead

    def __post_init__(self) -> None:
        from .errors import InputError

        if self.archive_below is not None and (
            isinstance(self.archive_below, bool) or not isinstance(self.archive_below, (int, float))
            or not 0 <= self.archive_below <= 1
        ):
            raise InputError("archive_below must be a number in [0, 1]", field="archive_below")
        if self.max_active is not None and (
            isinstance(self.max_active, bool) or not isinstance(self.max_active, int) or self.max_active < 0
        ):
            raise InputError("max_active must be a non-negative integer", field="max_active")
        if isinstance(self.horizon_days, bool) or not isinstance(self.horizon_days, (int, float)) or not (
            0 <= self.horizon_days <= 36500
        ):
            raise InputError("horizon_days must be a number of days in [0, 36500]", field="horizon_days")
        if self.ttl is not None:
            days = self.ttl.total_seconds() / DAY if isinstance(self.ttl, timedelta) else self.ttl
            if isinstance(days, bool) or not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
                raise InputError("ttl must be a positive timedelta or number of days", field="ttl")

    @property
    def ttl_days(self) -> float | None:
        if self.ttl is None:
            return None
        return self.ttl.total_seconds() / DAY if isinstance(self.ttl, timedelta) else float(self.ttl)

    def to_dict(self) -> dict[str, Any]:
        return {"archive_below": self.archive_below, "max_active": self.max_active, "ttl_days": self.ttl_days,
                "horizon_days": self.horizon_days}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        return cls(d.get("archive_below"), d.get("max_active"), d.get("ttl_days"), d.get("horizon_days", 90.0))


@dataclass(frozen=True)
class Recognition:
    """``Memory.recognise``'s answer: ``known`` when the best match holds at least the threshold
    of the query; ``episodes`` (best first, archived or not) with their ``scores``, to show or
    :meth:`Memory.restore`; ``when``: their times."""

    known: bool
    score: float
    episodes: tuple[Episode, ...] = ()
    scores: tuple[float, ...] = ()

    @property
    def when(self) -> tuple[datetime, ...]:
        return tuple(e.timestamp for e in self.episodes)

    @property
    def episode_ids(self) -> list[str]:
        return [e.id for e in self.episodes]

    def to_dict(self) -> dict[str, Any]:
        from .wire import dump  # the one serialisation

        out: dict[str, Any] = dump(self)
        return out


@dataclass(frozen=True)
class MaintenanceReport:
    """What :meth:`Memory.maintain` did (or, with ``dry_run``, would do)."""

    user_id: str
    policy: Policy | None
    archived: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    active_before: int = 0
    active_after: int = 0
    dry_run: bool = False
    receipt: DeletionReceipt | None = None  # of a TTL deletion

    def to_dict(self) -> dict[str, Any]:
        from .wire import dump  # the one serialisation

        out: dict[str, Any] = dump(self)
        return out
