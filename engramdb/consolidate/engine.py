"""Consolidation: turn new episodes into facts, supersessions and segments.

Runs over the episodes of a user not consolidated yet, in order: extract fact drafts, decide
what each does to what is known (:mod:`.decide`), segment sessions where the topic shifts,
and store it all in one transaction with a change log. Incremental and idempotent: a
pointer records the last episode consolidated.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..encode.analysis import Analyses
from ..encode.text import first_sentence
from ..ids import new_id
from ..model import Episode
from ..semantic import STATEMENT, Decision, FactDraft, Known
from ..store.base import SemanticStore
from .decide import Current, decide
from .extract import Extractor
from .mentions import Names, known_from, lower_words, mention_text, mentions as find_mentions, place_tags


@dataclass(frozen=True)
class Report:
    episodes: int
    facts_added: int
    merged: int
    superseded: int
    retracted: int
    segments: int
    changes: tuple[str, ...]
    statements: int = 0  # statements added (sentences kept verbatim; not counted in facts_added)


#: Episodes consolidated per transaction.
BATCH = 5000


def speaker_of(ep: Episode) -> str:
    return ep.name or ("user" if ep.role in (None, "", "user") else ep.role)


def key_text(draft: FactDraft, ep: Episode) -> str:
    """The text embedded for a fact's key. A statement is the speaker's own words ("I started
    kickboxing"): like the passages of a named speaker's message, it is embedded with the name
    in front, so a question about that person ("what sports does John do?") finds it."""
    if draft.predicate == STATEMENT and ep.name:
        return f"{ep.name}: {draft.text}"
    return draft.text


def decide_all(
    current: list[Known], drafts_per_episode: Sequence[tuple[int, Episode, list[FactDraft]]]
) -> list[tuple[Decision, int, Episode]]:
    """Decide every draft in order, keeping the view of current facts up to date."""
    steps = []
    cur = Current(current)
    for ep_rowid, ep, drafts in drafts_per_episode:
        for draft in drafts:
            d = decide(cur.for_draft(draft), draft)
            if d.action == "add":
                d.new_id = new_id("fact_")
                new = d.draft  # a negated like is added as a dislike
                cur.add(Known(d.new_id, new.subject, new.predicate, new.qualifier, new.object, new.amount, new.unit))
            if d.closes:
                cur.remove(d.closes)
            steps.append((d, ep_rowid, ep))
    return steps


def segment(vectors: np.ndarray, min_len: int = 3, threshold: float = 0.2) -> list[tuple[int, int]]:
    """Split a run of episode vectors where the next one is far from the current segment.

    A boundary opens when cosine(next, centroid of the segment so far) < ``threshold`` and the
    segment has at least ``min_len`` episodes (a novelty signal, as in event segmentation).
    Returns [start, end) index pairs covering the run.
    """
    n = len(vectors)
    if n == 0:
        return []
    bounds = []
    start = 0
    centroid = vectors[0].astype(np.float64).copy()
    for i in range(1, n):
        v = vectors[i]
        c = centroid / (np.linalg.norm(centroid) or 1.0)
        if i - start >= min_len and float(v @ c) < threshold and np.any(v):
            bounds.append((start, i))
            start, centroid = i, v.astype(np.float64).copy()
        else:
            centroid += v
    bounds.append((start, n))
    return bounds


def summary_of(texts: Sequence[str], vectors: np.ndarray) -> tuple[int, str]:
    """Extractive summary: the first sentence of the episode closest to the segment centroid."""
    centroid = vectors.mean(axis=0)
    best = int(np.argmax(vectors @ centroid)) if np.any(centroid) else 0
    return best, first_sentence(texts[best])


VectorsFor = Callable[[str, dict[str, str]], dict[str, np.ndarray]]


def _decisions(
    facts: SemanticStore,
    user_id: str,
    extractor: Extractor,
    model: str | None,
    vectors_for: VectorsFor,
    pending: Sequence[tuple[int, int, Episode]],
    analyses: Analyses | None = None,
) -> tuple[list[tuple[Decision, int, Episode]], dict[str, np.ndarray], dict[str, str]]:
    """What the episodes' facts do to what is known, and their keys' vectors and hashes.
    Quarantined episodes give no facts: a poisoned memory must not rewrite the profile."""
    drafts = [
        (rowid, ep, drafts_of(extractor, ep, analyses) if ep.status == "active" else [])
        for rowid, _, ep in pending
    ]
    said = [d.object for _, _, ds in drafts for d in ds if d.predicate == STATEMENT]
    steps = decide_all(facts.current(user_id, said), drafts)
    texts = {d.new_id: key_text(d.draft, ep) for d, _, ep in steps if d.action == "add" and d.new_id}
    hashes = {i: hashlib.sha256(t.encode("utf-8")).hexdigest() for i, t in texts.items()}
    vectors = vectors_for(model, {hashes[i]: t for i, t in texts.items()}) if model and texts else {}
    return steps, vectors, hashes


def drafts_of(extractor: Extractor, ep: Episode, analyses: Analyses | None) -> list[FactDraft]:
    """The extractor's drafts for an episode; kept per text when the extractor says what they
    depend on (``cache_key``: the rules do; a model is asked again)."""
    speaker = speaker_of(ep)
    key = getattr(extractor, "cache_key", None)
    if analyses is None or key is None:
        return extractor.extract(ep.text, speaker, ep.role)
    text, role = ep.text, ep.role
    return analyses.get(text, ("extract", key, speaker, role), lambda: extractor.extract(text, speaker, role))


def replay(
    facts: SemanticStore,
    user_id: str,
    extractor: Extractor,
    model: str | None,
    vectors_for: VectorsFor,
    released: Sequence[tuple[int, int, Episode]],
) -> list[str]:
    """Consolidate episodes released from quarantine after consolidation passed them: their
    facts, decided against what is known now (segments stay as they are)."""
    steps, vectors, hashes = _decisions(facts, user_id, extractor, model, vectors_for, released)
    if not any(d.action != "ignore" for d, _, _ in steps):
        return []
    return facts.apply(user_id, steps, 0, vectors, model, hashes, (), first_seq=None) or []


def _mentions(
    facts: SemanticStore, user_id: str, pending: Sequence[tuple[int, int, Episode]], analyses: Analyses | None = None
) -> list[tuple[int, str, str, str | None]]:
    """The graph's mention edges of the episodes (quarantined ones name nobody): (episode
    rowid, entity name, kind, a new alias or None), resolved against the entities known."""
    names = _known_names(facts, user_id)
    for _, _, ep in pending:  # the batch's own words first, so a title's "Keep" is known for a word
        text = ep.text
        names.learn_words(analyses.get(text, "lower", lambda: lower_words(text)) if analyses else text)
    out = []
    for rowid, _, ep in pending:
        if ep.status == "active":
            text = ep.text
            found = analyses.get(text, "mentions", lambda: mention_text(text)) if analyses else None
            out += [(rowid, m.name, m.kind, m.alias) for m in find_mentions(text, speaker_of(ep), names, found)]
            out += [(rowid, p, "place", None) for p in places_of(ep, analyses)]
    return out


#: The entities consolidation resolves mentions against, per database and user: kept while
#: ``SemanticStore.entity_state`` stands (entities only added since), brought up to date with
#: the entities added since, not read in full at every add (at 100k episodes, reading 52k
#: entities was most of an add's cost). A few users' worth.
_NAMES: OrderedDict[tuple[str, str], tuple[tuple[str, int], int, int, Names]] = OrderedDict()
_NAMES_LOCK = threading.Lock()
NAMES_CACHED = 8


def _known_names(facts: SemanticStore, user_id: str) -> Names:
    """The user's entities as :class:`Names` (a copy to resolve one batch with)."""
    state = facts.entity_state(user_id)
    if state is None:
        return Names()
    key, stands, aliased = (state[0], user_id), (state[1], state[2]), state[3]
    with _NAMES_LOCK:
        cached = _NAMES.get(key)
    if cached is not None and cached[0] == stands:
        _, last, seen, base = cached
        new = facts.entities_after(user_id, last)
        if new or seen != aliased:  # the kept reading stays as it is (another thread may copy it)
            base = base.copy()
            base.extend((n, k, a) for _, n, k, a in new)
        if seen != aliased:  # aliases were added to older entities: theirs again, in order
            base.extend((n, k, a) for r, n, k, a in facts.aliased_entities(user_id) if r <= last)
            base.extend((n, k, a) for _, n, k, a in new if a)  # later ones win, as when read in full
    else:
        new = facts.entities_after(user_id)
        base, last = known_from((n, k, a) for _, n, k, a in new), 0
    if new:
        last = new[-1][0]
    with _NAMES_LOCK:
        _NAMES[key] = (stands, last, aliased, base)
        _NAMES.move_to_end(key)
        while len(_NAMES) > NAMES_CACHED:
            _NAMES.popitem(last=False)
    return base.copy()


def forget_names(user_id: str) -> None:
    """Drop the entities kept in memory for the user (in every database: a deletion's text must
    not outlive it in this process)."""
    with _NAMES_LOCK:
        for key in [k for k in _NAMES if k[1] == user_id]:
            del _NAMES[key]


def places_of(ep: Episode, analyses: Analyses | None = None) -> list[str]:
    """An episode's place tags beyond the names it mentions: the place its writer gave
    (``place``), and the common places its speaker says they are or were at ("at the gym";
    not in an assistant's advice)."""
    given = [ep.place.strip()] if ep.place and ep.place.strip() else []
    text = ep.text
    said = [] if ep.role == "assistant" else (
        analyses.get(text, "places", lambda: place_tags(text)) if analyses else place_tags(text))
    return list(dict.fromkeys(given + said))


def relink(
    facts: SemanticStore, user_id: str, progress: Callable[[int, int], None] | None = None, batch: int = 5000
) -> int:
    """Find the mentions of every consolidated episode of the user again and replace the graph's
    mention edges with them (a memory built before mentions were linked, or after the rules
    changed). Returns how many edges there are now."""
    names = known_from(facts.entity_names(user_id, facts_only=True))  # not the mentions being replaced
    out: list[tuple[int, str, str, str | None]] = []
    after, done, total = 0, 0, facts.last_seq(user_id)
    while True:  # first the words the memory writes in lower case, then the mentions
        rows = facts.consolidated(user_id, after, batch)
        if not rows:
            break
        for _, _, ep in rows:
            names.learn_words(ep.text)
        after = rows[-1][1]
    after = 0
    while True:
        rows = facts.consolidated(user_id, after, batch)
        if not rows:
            break
        for rowid, _, ep in rows:
            if ep.status == "active":
                out += [(rowid, m.name, m.kind, m.alias) for m in find_mentions(ep.text, speaker_of(ep), names)]
                out += [(rowid, p, "place", None) for p in places_of(ep)]
        after, done = rows[-1][1], done + len(rows)
        if progress:
            progress(min(after, total), total)
    return facts.replace_mentions(user_id, out)


def run(
    facts: SemanticStore,
    user_id: str,
    extractor: Extractor,
    model: str | None,
    vectors_for: VectorsFor,
    episode_vectors: dict[int, np.ndarray],
    batch: int = BATCH,
    analyses: Analyses | None = None,
    importance: Sequence[tuple[int, float]] = (),
    pending: Sequence[tuple[int, int, Episode]] | None = None,
) -> Report:
    """Consolidate a user's pending episodes.

    ``vectors_for(model, {hash: text})`` returns the vectors the store lacks (cached or
    computed); ``episode_vectors``: rowid -> first-passage vector, for segmentation;
    ``analyses``: what the texts alone gave, kept from before (the same text in another scope);
    ``importance``: (episode rowid, estimated importance) to write with the first batch;
    ``pending``: the first batch, if the caller has read it (``facts.pending(user_id, batch)``).
    """
    totals = dict(episodes=0, added=0, merged=0, superseded=0, retracted=0, segments=0, statements=0)
    changes: list[str] = []
    while True:
        pending = list(pending) if pending is not None else facts.pending(user_id, batch)
        if not pending:
            break
        steps, vectors, hashes = _decisions(facts, user_id, extractor, model, vectors_for, pending, analyses)
        segs = []
        by_session: dict[str | None, list[tuple[int, int, Episode]]] = {}
        for rowid, seq, ep in pending:
            by_session.setdefault(ep.session_id, []).append((rowid, seq, ep))
        dim = next((len(v) for v in episode_vectors.values()), 0)
        for session_id, items in by_session.items():
            vecs = np.array([episode_vectors.get(r, np.zeros(dim, dtype=np.float32)) for r, _, _ in items]).reshape(len(items), -1)
            # A quarantined episode belongs to its segment but never speaks for it.
            shown = np.array([e.status == "active" for _, _, e in items])
            for a, b in segment(vecs) if dim else [(0, len(items))]:
                texts = [e.text if ok else "" for (_, _, e), ok in zip(items[a:b], shown[a:b])]
                best, summary = summary_of(texts, vecs[a:b] * shown[a:b, None]) if dim else (0, texts[0][:300])
                segs.append((session_id, items[a][1], items[b - 1][1], summary, items[a + best][0]))
        applied = facts.apply(user_id, steps, pending[-1][1], vectors, model, hashes, segs, first_seq=pending[0][1],
                              mentions=_mentions(facts, user_id, pending, analyses), importance=importance)
        if applied is None:  # consolidated by another thread or process meanwhile: look again
            pending = None
            continue
        importance = ()
        changes += applied
        totals["episodes"] += len(pending)
        totals["segments"] += len(segs)
        for d, _, _ in steps:
            if d.action == "add" and d.draft.kind == "statement":
                totals["statements"] += 1
            elif d.action == "add":
                totals["added"] += 1
                totals["superseded"] += len(d.closes)
            elif d.action == "merge":
                totals["merged"] += 1
            elif d.action == "retract":
                totals["retracted"] += len(d.closes)
        if len(pending) < batch:  # that was all of them (an add meanwhile consolidates its own)
            break
        pending = None
    return Report(
        totals["episodes"], totals["added"], totals["merged"], totals["superseded"], totals["retracted"],
        totals["segments"], tuple(changes), totals["statements"],
    )
