"""Pure text helpers: token counting, splitting long messages into passages, query terms."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9*#-])|\n+")

#: Words too common to help lexical recall. Short on purpose: question words like
#: "when" or "where" stay out of the index query, content words stay in.
STOPWORDS = frozenset(
    """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves im ive id dont didnt
doesnt thats whats lets also really just yeah yes oh ok okay hey hi hello thanks thank
tell know think remember mentioned said say told ask asked
""".split()
)


#: A sentence, roughly: a run up to and including its end mark (or a line's end). A point
#: between digits is a decimal point, not an end ("I paid $1.5k for it.").
SENTENCE = re.compile(r"(?:[^.!?\n]|(?<=\d)\.(?=\d))+[.!?]?")


def first_sentence(text: str, limit: int = 300) -> str:
    """The first sentence of a text (or its start, up to ``limit`` characters)."""
    m = SENTENCE.search(text)
    return (m.group(0) if m else text).strip()[:limit]


def count_tokens(text: str) -> int:
    """Approximate LLM tokens: words and punctuation marks, long words counted in pieces.

    One counter is used everywhere (context packing, benchmarks), so budgets are comparable.
    """
    total = 0
    for tok in _TOKEN.findall(text):
        total += 1 + (len(tok) - 1) // 8 if len(tok) > 8 else 1
    return total


@dataclass(frozen=True)
class Passage:
    """A span of a message's text: [start, end) in characters."""

    start: int
    end: int
    text: str


def split_passages(text: str, max_tokens: int = 96) -> list[Passage]:
    """Split text into passages of whole sentences of at most ``max_tokens`` tokens.

    Short texts come back as one passage. A single sentence longer than the limit is cut
    at word boundaries. Passages cover the text in order; whitespace between them is dropped.
    """
    if count_tokens(text) <= max_tokens:
        stripped = text.strip()
        start = text.find(stripped) if stripped else 0
        return [Passage(start, start + len(stripped), stripped)]
    # Sentence spans.
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    # Cut over-long sentences at word boundaries.
    pieces: list[tuple[int, int, int]] = []
    for s, e in spans:
        if not text[s:e].strip():
            continue
        n = count_tokens(text[s:e])
        if n <= max_tokens:
            pieces.append((s, e, n))
            continue
        cur_start, cur_n = s, 0
        for w in re.finditer(r"\S+", text[s:e]):
            wn = count_tokens(w.group())
            if cur_n and cur_n + wn > max_tokens:
                pieces.append((cur_start, s + w.start(), cur_n))
                cur_start, cur_n = s + w.start(), 0
            cur_n += wn
        pieces.append((cur_start, e, cur_n))
    # Greedily pack pieces into passages.
    passages: list[Passage] = []
    p_start, p_end, p_n = pieces[0]
    for s, e, n in pieces[1:]:
        if p_n + n <= max_tokens:
            p_end, p_n = e, p_n + n
        else:
            passages.append(_passage(text, p_start, p_end))
            p_start, p_end, p_n = s, e, n
    passages.append(_passage(text, p_start, p_end))
    return passages


def _passage(text: str, start: int, end: int) -> Passage:
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    stripped = chunk.strip()
    return Passage(start + lead, start + lead + len(stripped), stripped)


def words(text: str) -> list[str]:
    """The words of a text as full-text search sees them: letters and digits, lower-cased,
    accents removed ("Café" -> "cafe"), split at anything else (incl. underscores)."""
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WORD.findall(text.lower())


def is_content(word: str) -> bool:
    """Words worth indexing and querying: not a stopword, not a lone letter."""
    return (len(word) > 1 or word.isdigit()) and word not in STOPWORDS


def query_terms(query: str) -> list[str]:
    """Content words of a query, lower-cased, stopwords dropped, order kept, no repeats."""
    return list(dict.fromkeys(w for w in words(query) if is_content(w)))
