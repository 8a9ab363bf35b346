"""What a message's text alone gives, worked out once per text.

An add analyses every new message: its passages and their index terms, its gist, its
estimated importance, the poisoning check's score, where its time expressions are, the rule
extractor's facts, its place tags, the words it writes in lower case. None of that depends on
whose memory the message goes to. The same text stored again — in another user's or agent's
scope, a copy of a conversation, a benchmark's shared sessions — reuses it, as its vectors are
reused from the store, so that only the writes are paid again.

:class:`Analyses` holds them per text, least recently used first out, up to a budget of
characters analysed. A deletion clears it (see ``Memory.delete``): a deleted text must not
outlive it in the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

#: The default budget: 16M characters of text (10k turns of LongMemEval's chats hold ~12M, the
#: per-text overhead counted). What is derived from a text takes ~8.5 bytes per character of it
#: (measured on those turns): ~140 MB when full.
LIMIT_CHARS = 16_000_000

#: What a text held costs beyond its length (its dict, the slot, small results), in characters.
OVERHEAD = 200


class Analyses:
    """Per text, the analyses made of it: (kind of analysis, settings) -> result. Bounded by
    the characters of the texts held, least recently used first out; shared by threads.

    Results are shared, not copied: callers treat them as read-only. ``limit_chars=0`` keeps
    nothing (every analysis is made again).
    """

    def __init__(self, limit_chars: int = LIMIT_CHARS) -> None:
        self.limit = max(0, int(limit_chars))
        self._texts: OrderedDict[str, dict[Hashable, object]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str, kind: Hashable, make: Callable[[], T]) -> T:
        """The result of the analysis ``kind`` of ``text`` kept from before, or ``make()``'s,
        kept. ``make`` runs outside the lock: two threads may both make one, and the results
        are equal."""
        with self._lock:
            known = self._texts.get(text)
            if known is not None:
                self._texts.move_to_end(text)
                if kind in known:
                    self.hits += 1
                    return known[kind]  # type: ignore[return-value]
            self.misses += 1
        value = make()
        cost = len(text) + OVERHEAD
        if cost > self.limit:
            return value
        with self._lock:
            known = self._texts.get(text)
            if known is None:
                known = self._texts[text] = {}
                self._size += cost
                while self._size > self.limit:
                    gone, _ = self._texts.popitem(last=False)
                    self._size -= len(gone) + OVERHEAD
            known[kind] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._texts.clear()
            self._size = 0

    def __len__(self) -> int:
        """The texts held."""
        return len(self._texts)

    @property
    def size(self) -> int:
        """The characters held, overhead included."""
        return self._size
