"""Rule patterns tried only where they may begin: the literal words every match starts with.

Most rule patterns (time expressions, poisoning cues) begin with a word from a list:
``\\b(?:ignore|disregard|override)\\b…``. Python's ``re`` tries such a pattern at every position of
the text; finding its first words with ``str.find`` is far cheaper, and most texts hold few of
them. :func:`literal_starts` reads the pattern's parse tree for the strings every match must
begin with (lower case, at most ``width`` characters; an optional part both ways); a pattern that
may begin with anything (``\\d``, ``.``, ``\\s*``) gets ``None`` and is searched whole.
:func:`finditer` then tries the pattern only at those places, which gives ``finditer``'s matches:
a match must begin at one of them. Text that is not ASCII is searched whole, since case folding
of some letters differs between ``str.lower`` and ``re.IGNORECASE``.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

try:  # Python 3.11+
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as P  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as C  # type: ignore[no-redef,unused-ignore]
    import sre_parse as P  # type: ignore[no-redef,unused-ignore]

#: Starts longer than this are cut (enough to tell words apart; fewer strings to look for).
WIDTH = 5
#: A pattern with more starts than this is always run (the test would cost what it saves).
MAX_STARTS = 48
_ZERO_WIDTH = {C.AT, C.ASSERT, C.ASSERT_NOT}
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT} | ({C.POSSESSIVE_REPEAT} if hasattr(C, "POSSESSIVE_REPEAT") else set())

_Starts = list[tuple[str, bool]]  # (string, whether it is a whole match of the part)


def _one(op: Any, av: Any, width: int) -> _Starts | None:
    if op is C.LITERAL:
        return [(chr(av).lower(), True)]
    if op is C.IN:
        chars: list[str] = []
        for sop, sav in av:
            if sop is C.LITERAL:
                chars.append(chr(sav).lower())
            elif sop is C.RANGE and sav[1] - sav[0] < 10:
                chars += [chr(c).lower() for c in range(sav[0], sav[1] + 1)]
            else:  # a category (\w, \d), a negation, a wide range
                return None
        return [(c, True) for c in dict.fromkeys(chars)]
    if op is C.SUBPATTERN:
        return _seq(list(av[-1]), width)
    if op is C.BRANCH:
        out: _Starts = []
        for branch in av[1]:
            got = _seq(list(branch), width)
            if got is None:
                return None
            out += got
        return out
    if op in _REPEATS and av[0] >= 1:
        got = _seq(list(av[2]), width)  # once at least; whole only if exactly once
        return None if got is None else [(s, whole and av[1] == 1) for s, whole in got]
    return None


def _seq(items: list[Any], width: int, cur: _Starts | None = None) -> _Starts | None:
    """The starts of a sequence of parse items, each string continued from ``cur``."""
    cur = [("", True)] if cur is None else cur
    for i, (op, av) in enumerate(items):
        if op in _ZERO_WIDTH:
            continue
        if all(not whole or len(s) >= width for s, whole in cur):
            break
        if op in _REPEATS and av[0] == 0:  # optional: the starts with it once or more, and without it
            once = _seq([(op, (1, av[1], av[2]))] + items[i + 1 :], width, cur)
            without = _seq(items[i + 1 :], width, cur)
            if once is None or without is None:
                return None
            both = dict(without)
            for s, whole in once:
                both[s] = both.get(s, True) and whole
            return None if len(both) > MAX_STARTS else list(both.items())
        nxt = _one(op, av, width)
        if nxt is None:
            cur = [(s, False) for s, _ in cur]
            break
        grown: dict[str, bool] = {}
        for s, whole in cur:
            if not whole or len(s) >= width:
                grown[s] = False
                continue
            for t, t_whole in nxt:
                joined = s + t
                grown[joined[:width]] = grown.get(joined[:width], True) and t_whole and len(joined) <= width
        if len(grown) > MAX_STARTS:
            return None
        cur = list(grown.items())
    return cur


def literal_starts(pattern: re.Pattern[str], width: int = WIDTH) -> tuple[str, ...] | None:
    """The lower-case strings one of which begins every match of ``pattern`` (None: any text
    may match, always search it)."""
    try:
        got = _seq(list(P.parse(pattern.pattern, pattern.flags)), width)
    except Exception:  # an internal module of re changed shape: no shortcut, still correct
        return None
    if got is None or any(not s or not s.isascii() for s, _ in got):
        return None
    found = sorted({s for s, _ in got})
    # where "void" is looked for, "voidp" is found too: keep only the shortest of such starts
    return tuple(s for s in found if not any(o != s and s.startswith(o) for o in found))


def candidates(starts: tuple[str, ...], lower: str) -> list[int]:
    """Where in the text a match may begin: every place one of ``starts`` is, in order."""
    at: set[int] = set()
    for s in starts:
        i = lower.find(s)
        while i >= 0:
            at.add(i)
            i = lower.find(s, i + 1)
    return sorted(at)


def finditer(pattern: re.Pattern[str], starts: tuple[str, ...] | None, text: str, lower: str | None) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, the same matches, trying the pattern only where one of its
    ``starts`` is (``lower``: :func:`lowered` of ``text``). Like ``finditer``, a match is looked
    for from where the one before ended."""
    if starts is None or lower is None:
        yield from pattern.finditer(text)
        return
    end = 0
    for i in candidates(starts, lower):
        if i < end:
            continue
        m = pattern.match(text, i)  # lookbehinds and \b still see the text before i
        if m is not None:
            yield m
            end = max(m.end(), i + 1)


def search(pattern: re.Pattern[str], starts: tuple[str, ...] | None, text: str, lower: str | None) -> re.Match[str] | None:
    """``pattern.search(text)``, trying it only where one of its ``starts`` is."""
    return next(finditer(pattern, starts, text, lower), None)


def lowered(text: str) -> str | None:
    """What :func:`finditer` takes: the text in lower case, or None if it is not ASCII."""
    return text.lower() if text.isascii() else None
