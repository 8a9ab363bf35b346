"""The summary tree (MemTree) — pure: segment → session → topic → person.

- a **segment** is consolidation's run of episodes about one thing, summarised by the first
  sentence of its most central episode (:func:`engramdb.consolidate.engine.summary_of`);
- a **session** node joins the summaries of its largest segments, in the order they were said;
- a **topic** is something named in several sessions (a person, place, organisation or thing of
  the memory graph): the sentences that name it, from different sessions, latest first;
- a **person** node is what is known of someone (a speaker, "user"), from their current
  facts by category, its children the topics they speak of.

Every node cites its children and the episodes under it. Extractive and offline by default;
with a ``writer`` (the LLM extractor's :meth:`~engramdb.consolidate.llm.LLMExtractor.summarise`)
a node's text is rewritten from its extract, which it keeps if the writer fails.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from ..encode.text import SENTENCE
from ..model import Summary as Node
from ..semantic import CATEGORY, SegmentInfo

if TYPE_CHECKING:
    from ..store.base import SemanticStore

LEVELS = ("segment", "session", "topic", "person")
#: A session node joins at most this many segment summaries.
SESSION_SEGMENTS = 3
#: Topics kept: the things named in the most sessions (at least two).
MAX_TOPICS = 40
TOPIC_SENTENCES = 3
PERSON_FACTS = 3  # per category
TEXT_CHARS = 600

Writer = Callable[[str, Sequence[str]], str]  # (level, the texts under the node) -> a summary


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1].rsplit(" ", 1)[0] + "…"


def _write(writer: Writer | None, level: str, extract: str, parts: Sequence[str]) -> str:
    if writer is None:
        return extract
    try:
        out = writer(level, list(parts)).strip()
    except Exception:  # a summary is a convenience: the extract stands when the endpoint fails
        return extract
    return _clip(out) if out else extract


def session_node(session_id: str | None, segments: Sequence[SegmentInfo], dates: str = "",
                 writer: Writer | None = None) -> Node:
    """A session's node from its segments (in order): the summaries of its largest ones."""
    biggest = sorted(segments, key=lambda s: (-len(s.episodes), s.first_seq))[:SESSION_SEGMENTS]
    shown = [s.summary for s in sorted(biggest, key=lambda s: s.first_seq) if s.summary.strip()]
    extract = _clip(" ".join(dict.fromkeys(shown)))
    return Node(
        "session", session_id or "", f"session {session_id or '(none)'}" + (f", {dates}" if dates else ""),
        _write(writer, "session", extract, [s.summary for s in segments]),
        tuple(s.id for s in segments), tuple(e for s in segments for e in s.episodes),
        max((s.last_seq for s in segments), default=0),
    )


def _sentence_naming(text: str, name: str) -> str:
    low = name.lower()
    for m in SENTENCE.finditer(text):
        if low in m.group(0).lower():
            return m.group(0).strip()
    return ""


def topic_nodes(
    mentions: Sequence[tuple[str, str, str | None, str, int]],
    texts: Callable[[Sequence[str]], dict[str, str]],
    writer: Writer | None = None,
) -> list[Node]:
    """Topics from the mentions of the things named in several sessions ((name, kind, session,
    episode id, seq), as :meth:`~engramdb.store.facts.FactStore.topic_mentions` reads them),
    most sessions first; a topic's text is the sentences that name it, one per session, latest
    first (``texts(episode ids)`` reads the episodes)."""
    by: dict[tuple[str, str], list[tuple[str | None, str, int]]] = {}
    for name, kind, session, eid, seq in mentions:
        by.setdefault((name, kind), []).append((session, eid, seq))
    ranked = sorted(by.items(), key=lambda kv: (-len({s for s, _, _ in kv[1]}), -len(kv[1]), kv[0][0]))[:MAX_TOPICS]
    latest: dict[tuple[str, str], list[str]] = {}
    for key, told in ranked:
        per: dict[str | None, str] = {}
        for session, eid, _ in sorted(told, key=lambda t: -t[2]):
            per.setdefault(session, eid)
        latest[key] = list(per.values())[: TOPIC_SENTENCES * 2]
    text_of = texts([e for ids in latest.values() for e in ids])
    out = []
    for (name, kind), told in ranked:
        said = [x for x in (_sentence_naming(text_of.get(e, ""), name) for e in latest[(name, kind)]) if x]
        said = list(dict.fromkeys(said))[:TOPIC_SENTENCES]
        sessions = list(dict.fromkeys(s for s, _, _ in sorted(told, key=lambda t: t[2])))
        extract = _clip(f"{name} ({kind}, {len(sessions)} sessions): " + " ".join(said))
        out.append(Node(
            "topic", name, name, _write(writer, "topic", extract, said), tuple(s or "" for s in sessions),
            tuple(dict.fromkeys(e for _, e, _ in told)), max(q for _, _, q in told),
        ))
    return out


_CATEGORY_ORDER = ("identity", "work", "places", "relationships", "preferences", "activities", "possessions", "plans", "amounts")


def person_nodes(facts: Iterable[tuple[str, str, str, int, Sequence[str], int]], topics: Sequence[Node],
                 writer: Writer | None = None) -> list[Node]:
    """One node per subject with current facts: (subject, predicate, fact text, sightings,
    source episode ids, last seq). A subject's children are the topics its facts' episodes
    share; its text, its most told facts by category."""
    by: dict[str, dict[str, list[tuple[int, str, Sequence[str], int]]]] = {}
    for subject, predicate, text, sightings, sources, seq in facts:
        if "'s " in subject:  # "user's sister": told under the person they belong to
            continue
        by.setdefault(subject, {}).setdefault(CATEGORY.get(predicate, "other"), []).append((sightings, text, sources, seq))
    out = []
    for subject in sorted(by, key=lambda s: (s != "user", s)):
        cats = by[subject]
        lines, eps, last = [], [], 0
        for cat in sorted(cats, key=lambda c: (_CATEGORY_ORDER.index(c) if c in _CATEGORY_ORDER else 99, c)):
            best = sorted(cats[cat], key=lambda t: (-t[0], -t[3]))[:PERSON_FACTS]
            lines.append(f"{cat}: " + "; ".join(re.sub(rf"^{re.escape(subject)}\s+", "", t) for _, t, _, _ in best))
            for _, _, src, seq in best:
                eps += list(src)
                last = max(last, seq)
        mine = set(eps)
        children = tuple(t.key for t in topics if mine & set(t.episodes))
        extract = _clip(f"{subject} — " + ". ".join(lines))
        out.append(Node("person", subject, subject, _write(writer, "person", extract, lines), children,
                        tuple(dict.fromkeys(eps)), last))
    return out


def rank(nodes: Sequence[Node], query: str) -> list[Node]:
    """Nodes that share words with ``query``, most shared (rarer words weigh more) first."""
    from ..encode.text import query_terms

    terms = set(query_terms(query))
    if not terms:
        return list(nodes)
    docs = [set(query_terms(f"{n.title} {n.text}")) for n in nodes]
    df = {t: sum(t in d for d in docs) for t in terms}
    scored = []
    for n, d in zip(nodes, docs):
        s = sum(1.0 / (1 + df[t]) for t in terms & d)
        if s > 0:
            scored.append((s, n))
    scored.sort(key=lambda t: -t[0])
    return [n for _, n in scored]


def refresh(facts: "SemanticStore", user: str, writer: Writer | None = None, force: bool = False) -> int:
    """Bring the user's tree up to what is consolidated: the session nodes of the sessions
    that changed since the last refresh (or lost a node to a delete), then every topic and
    person node. Returns how many session nodes were rebuilt (0: nothing changed)."""
    done = facts.last_seq(user)
    built = facts.tree_seq(user)
    if built is not None and built >= done and not force and not facts.stale_sessions(user, done):
        return 0
    # sessions with new episodes, or without a node (never built, or lost to a delete)
    sessions = facts.stale_sessions(user, -1 if force else (built if built is not None else done))
    segs = facts.tree_segments(user, sessions)
    spans = facts.session_spans(user)
    by: dict[str | None, list[SegmentInfo]] = {}
    for s in segs:
        by.setdefault(s.session_id, []).append(s)
    nodes = []
    for session, members in by.items():
        first, last, _ = spans.get(session, ("", "", 0))
        dates = first[:10] if first[:10] == last[:10] else f"{first[:10]} – {last[:10]}"
        nodes.append(session_node(session, members, dates, writer))
    # Topics and people are drawn from the whole memory, so they are built on every refresh,
    # as extracts; a writer (an LLM) is asked only for those whose episodes or children changed.
    topics = topic_nodes(facts.topic_mentions(user, MAX_TOPICS, facts.speakers(user)), lambda ids: facts.texts_of(user, ids))
    current = [
        (f.subject, f.predicate, f.text, f.sightings, f.sources, 0)
        for f in facts.facts(user, kinds=("fact", "preference"))
    ]
    people = person_nodes(current, topics)
    if writer is not None:
        before = {(n.level, n.key): n for lvl in ("topic", "person") for n in facts.summaries(user, lvl)}
        topics, people = ([_rewritten(n, before.get((n.level, n.key)), writer) for n in ns] for ns in (topics, people))
    facts.save_tree(user, nodes + topics + people, list(by) + [s for s in sessions if s not in by], done)
    return len(nodes)


def _rewritten(node: Node, before: Node | None, writer: Writer) -> Node:
    """A topic or person node as the writer puts it, or as it was written before when nothing
    under it changed (its episodes and children are the same)."""
    if before is not None and before.episodes == node.episodes and before.children == node.children:
        return replace(node, text=before.text)
    return replace(node, text=_write(writer, node.level, node.text, [node.text]))
