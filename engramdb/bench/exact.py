"""The exact-lookup probe: does a memory holding a rare token (a code, an id, a name) come first
when the question asks for that token?

Generated with a fixed seed, no data files: ``n`` memories in sessions of 25, written from a few
templates so that many of them are near-identical to the others (the hard case for similarity
recall: every memory resembles the question about as much), each carrying one token found in
no other memory. Each memory is then looked up once, by a question of its template's kind
("What is the ticket UX-4821 about?", "Who is Varkelin?", or the bare token), and the rank of
the memory among the hits is recorded.

Reported: how many came first, how many in the top 3, and the worst ranks.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from ..memory import Memory

SESSION = 25
_SYLLABLES = ("var", "kel", "in", "dro", "mu", "zan", "tho", "rel", "quo", "bri", "ste", "la", "gon", "pha", "ix", "or")
_ITEMS = ("blender", "standing desk", "hiking boots", "router", "espresso machine", "bike lock", "monitor", "tent")
_PLACES = ("gym", "office", "station", "pool", "library", "warehouse")
_TOPICS = ("battery chemistry", "supply chains", "soil health", "compilers", "urban planning", "vaccines")


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _code(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(2, 4)))
    return f"{letters}-{rng.randint(1000, 99999)}"


def _memory(i: int, rng: random.Random, used: set[str]) -> tuple[str, str, str]:
    """(memory text, question, the token) for memory ``i``; the token is new."""
    while True:
        kind = i % 5
        if kind == 0:
            token = f"tok{rng.randint(0, 9)}x{i}q{rng.randrange(10**6)}"
            text, question = f"Writer {i % 7} noted {token} during the sync.", token
        elif kind == 1:
            token = _code(rng)
            item = rng.choice(_ITEMS)
            text, question = f"My order number for the {item} is {token}.", f"Which order was {token}?"
        elif kind == 2:
            token = _code(rng)
            text = f"The ticket {token} is about the login bug in the {rng.choice(_PLACES)} app."
            question = f"What is the ticket {token} about?"
        elif kind == 3:
            token = str(rng.randint(10_000, 999_999))
            text = f"Remember that the locker code at the {rng.choice(_PLACES)} is {token}."
            question = f"Where is the locker code {token} for?"
        else:
            token = _name(rng)
            text = f"I met {token} at the conference yesterday; they work on {rng.choice(_TOPICS)}."
            question = f"Who is {token}?"
        if token.lower() not in used:
            used.add(token.lower())
            return text, question, token


def run(n: int = 3000, *, seed: int = 0, cache: str | None = None, db: str = ":memory:", config: str = "default",
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Add ``n`` generated memories to a fresh memory at ``db``, look each up; see the module.
    ``config``: one of ``engramdb bench``'s configurations (e.g. ``no-exact``)."""
    from .runner import memory_kwargs

    kwargs = memory_kwargs(config)
    rng = random.Random(seed)
    used: set[str] = set()
    items = [_memory(i, rng, used) for i in range(n)]
    ranks: list[int] = []
    misses: list[dict[str, Any]] = []
    started = time.perf_counter()
    with Memory(db, embedding_cache=cache, **kwargs) as mem:
        ids: list[str] = []
        for s in range(0, n, SESSION):
            ids += mem.add([{"role": "user", "content": t} for t, _, _ in items[s:s + SESSION]],
                           user_id="probe", session_id=f"s{s // SESSION}")
        for i, ((text, question, token), eid) in enumerate(zip(items, ids)):
            hits = mem.search(question, user_id="probe", limit=min(n, 1000))
            order = [e.id for h in hits for e in h.episodes]
            rank = order.index(eid) + 1 if eid in order else n + 1
            ranks.append(rank)
            if rank > 1:
                misses.append({"question": question, "rank": rank, "text": text,
                               "first": hits[0].episodes[0].text if hits else None})
            if progress:
                progress(i + 1, n)
    return {
        "n": n,
        "seed": seed,
        "config": config,
        "first": sum(r == 1 for r in ranks),
        "top3": sum(r <= 3 for r in ranks),
        "worst": sorted(ranks)[-5:],
        "misses": sorted(misses, key=lambda m: -m["rank"])[:20],
        "seconds": round(time.perf_counter() - started, 1),
    }
