"""Hybrid recall over one user's scope: gather, fuse, spread to context, group into hits.

1. candidates: full-text (BM25 over units) and dense (cosine over unit vectors);
2. fuse the normalised signals per unit; an episode scores as its best passage, or a fact or
   statement key drawn from it standing in, plus support from that key (``Weights.facts``,
   ``statements``, ``facts_support``);
3. context: an episode gains from its neighbours in the conversation, from the speaker's
   thread (their previous/next turn past another's reply; for advice, their best other
   preference told in the session), from its session, and from its segment — the run of
   episodes about one topic, recalled as one key over their pooled words and mean vector (what
   surrounds a memory helps recall it — temporal contiguity);
4. association: with ``Weights.graph``, what the memory graph's walk reaches from the entities
   the question names; exact lookups: a rare code, id or name the question asks for puts the
   episodes holding it first;
5. rank episodes, group adjacent ones of the same session into one hit, cut to ``limit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .fusion import (
    Weights,
    best_other_in_group,
    combine,
    fuse,
    max_by_group,
    neighbour_support,
    normalise_dense,
    normalise_max,
    session_support,
)
from ..index.lexical import query_keys, term_key
from ..index.arrays import distinct, union
from .query import QueryAnalysis, exact_words, in_range, range_closeness, range_touches
from .scope import ScopeIndex


_ROLE_KEYS = frozenset(query_keys("user assistant system tool"))  # speakers known by a role


@dataclass(frozen=True)
class RecallOptions:
    weights: Weights = field(default_factory=Weights)
    candidates: int = 300  # per signal
    # Group neighbouring episodes of a session into one hit. Off by default: measured, it
    # costs evidence-per-token (er@B) on LoCoMo and LongMemEval; it only raises hit counts.
    merge_adjacent: bool = False
    merge_ratio: float = 0.8  # ...when the neighbour scores at least this share of the hit
    second_passage_ratio: float = 0.6  # a long episode shows a 2nd passage scoring this close to its best
    # What a hit shows of its episode: all of it when it has at most ``whole_passages`` passages
    # (~160 tokens: most turns people write); of a longer one, its best passage (and a close
    # second), each with ``context_passages`` passages either side. Chosen on the tuning halves
    # of LoCoMo and LongMemEval by ans@B/ctx@B (is the answer in what is shown?), then strict
    # er@B: showing more around a passage, or whole turns of any length, cost budget and answers.
    whole_passages: int = 4
    context_passages: int = 0
    # context(): the first ``context_whole_hits`` hits are handed over whole when each costs at
    # most ``context_whole_share`` of the budget (see recall.packing.pack). Off: on the tuning
    # halves 1 hit changed nothing and 3 lost an answer at 1,000 tokens (benchmarks/README.md).
    context_whole_hits: int = 0
    context_whole_share: float = 0.25
    named_keys_only: bool = True  # a question naming speakers is helped by their keys only
    # Exact lookups: a code, id or name of the question that at most this many episodes hold
    # lexically puts them first (``Weights.exact``).
    exact_max_episodes: int = 3
    # A question relating several events or people ("which came first, X or Y?", "what do Jon
    # and Gina both like?") recalls each on its own too, and its hits take turns with theirs.
    facets: bool = True
    # context(): when nothing recalled seems relevant (Hits.relevant), a note says so first, and
    # this share of the budget shows the closest hits. 1.0 (all of it): on the tuning halves a
    # quarter cost LoCoMo 3 points of ctx@1000, as a sixth of its answerable questions are
    # flagged, and changed nothing on LongMemEval.
    abstain_share: float = 1.0
    # The graph walk (``Weights.graph``) restarts at the entities the question names and at
    # the entities of the ``graph_seeds`` best episodes (0: named only; seeding from the best
    # episodes cost 3-6 points of er@1000 on LongMemEval's tuning half). ``graph_beyond_named``
    # scales it so the best episode a step past the named entities gets the full weight.
    graph_seeds: int = 0
    graph_beyond_named: bool = True
    # Places: a "where" question raises the hits that carry a place (or organisation) tag by
    # a factor 1 + ``place_where``; a place the question names ("at the gym", "in Lisbon")
    # raises the hits tagged with it by 1 + ``place_named``. A factor, not a share of the best
    # hit's score: added, a far-ahead best hit made every weakly related turn that names a place
    # leap over the evidence (LongMemEval's report half lost a question so). ``place_named``
    # 0.2 cost two questions on the tuning halves (a question naming a "dance studio" is seldom
    # about where), so it is off.
    place_where: float = 0.25
    place_named: float = 0.0
    # A question about every instance of something ("how many…", "how much in total…", "list
    # all…"): the best ``aggregate_pool`` hits are read, and the instances among them — within
    # ``aggregate_ratio`` of the best, or naming what is counted and within ``aggregate_named``
    # of it — ``aggregate_per_session`` per session and at most ``aggregate_max``, are moved into
    # the first ``aggregate_within`` hits, each telling once (:mod:`engramdb.recall.aggregate`).
    # Chosen on the tuning halves (benchmarks/README.md, "Structured memory"): ratio 0.7 over 0.5
    # and 0.85 (one LongMemEval multi-session question each way); the naming rule at 0.25 gained
    # four LoCoMo counting metrics for one LongMemEval one.
    aggregate: bool = True
    aggregate_pool: int = 50
    aggregate_ratio: float = 0.7
    aggregate_per_session: int = 1
    aggregate_max: int = 12
    aggregate_within: int = 10
    aggregate_named: float | None = 0.25  # also hits naming what is counted, within this share (None: off)
    aggregate_by: str = "score"  # what aggregate_ratio compares: the fused score, or "cosine"


@dataclass
class RankedGroup:
    """Episode positions (conversation order) and, per episode, the unit positions to show."""

    episodes: list[int]
    units: dict[int, list[int]]
    score: float
    signals: dict[str, float]


def recall(
    scope: ScopeIndex,
    query: str,
    query_vector: np.ndarray | None,
    *,
    limit: int,
    as_of_ts: float | None = None,
    analysis: QueryAnalysis = QueryAnalysis(),
    options: RecallOptions = RecallOptions(),
    lexical: tuple[np.ndarray, np.ndarray] | None = None,
    include_hidden: bool = False,
    graph: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    dense: bool = False,
) -> list[RankedGroup]:
    """Rank one user's episodes for ``query``; quarantined ones only with ``include_hidden``.

    ``lexical``: full-text candidates already found (``scope.lexical_search``), so a caller
    that needs them before ranking does not look them up twice. ``graph(seeds, weights)``: per
    episode, the association the memory graph finds from the best episodes (positions, scores);
    see :mod:`.graph`. ``dense``: score every episode, not only those within reach (the same
    ranking, slower; used when the reach cannot be shown to give it).
    """
    w = options.weights
    keys = query_keys(query)  # the query's full-text terms
    n_units = scope.unit_rowid.size
    n_eps = scope.ep_rowid.size
    if n_units == 0 or limit <= 0:
        return []

    # 1. Candidates: the units either signal found. Everything per unit is computed over these
    # few hundred, never over every unit of the scope (at 100k episodes that is ~700k units).
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
    lex_pos, lex_score = empty
    if w.lexical > 0:
        lex_pos, lex_score = lexical if lexical is not None else scope.lexical.search(keys, options.candidates)
    dense_pos, sims = empty
    if w.dense > 0 and query_vector is not None:
        dense_pos, sims = scope.vectors.search(query_vector, options.candidates)
    units = union(lex_pos, dense_pos).astype(np.int64)
    lex_raw = np.zeros(units.size)
    lex_raw[np.searchsorted(units, lex_pos)] = np.maximum(lex_score, 0.0)
    dense_n = np.zeros(units.size)
    cos_raw = np.zeros(units.size)
    if dense_pos.size:
        found = np.searchsorted(units, dense_pos)
        dense_n[found] = normalise_dense(sims, exhaustive=dense_pos.size < options.candidates)
        cos_raw[found] = sims
    lex_n = normalise_max(lex_raw)

    # 2. Fuse per unit, then per episode. A fact key is what was extracted from the episode, in
    # normal form ("I moved to Munich" -> "user lives in Munich"). It can stand in for the
    # episode's text (scaled by ``facts``: the key is a guess about the text) and, matching the
    # question, it corroborates the text (``facts_support`` of its score on top). A statement key
    # is one sentence of the text as said: it stands in scaled by ``statements`` (by default in
    # full) and corroborates like a fact.
    score = fuse(lex_n, dense_n, w)
    keep = score > 0
    units = units[keep]
    score, lex_n, dense_n, lex_raw, cos_raw = (
        np.asarray(a[keep], dtype=np.float64) for a in (score, lex_n, dense_n, lex_raw, cos_raw)
    )
    is_key = scope.unit_is_key[units]
    named = np.zeros(0, dtype=np.int32)  # speakers the question names (lexical speaker codes)
    if options.named_keys_only:
        # A key tells of its speaker's own world. A question that names some of the speakers
        # ("What does Caroline like?") is not answered by what another said of themselves: keys
        # of speakers it does not name neither stand in nor corroborate (their text still counts).
        # Only names count: "what did the assistant suggest?" names a role, not a person.
        named = scope.lexical.speakers_named([k for k in keys if k not in _ROLE_KEYS])
        if named.size:
            score = np.where(is_key & ~np.isin(scope.lexical.speaker_codes(units), named), 0.0, score)
    at_unit = {int(u): i for i, u in enumerate(units.tolist())}  # unit position -> candidate index
    is_statement = scope.unit_is_statement[units]
    unit_ep = scope.unit_ep[units]
    holders = _exact_holders(scope, query, options.exact_max_episodes) if w.exact > 0 else []

    # The episodes scored: all of them, or (``reach``) only those a score can reach — the
    # candidates' episodes, their neighbours and threads, and the exact lookups' holders. An
    # episode beyond them can score only by its session and segment; if even the best it could
    # get that way stays below the last episode ranked, the ranking is the same (checked below,
    # else scored again over every episode). Arrays below are over ``reach`` when it is set.
    # The graph walk from the entities the question names alone (no seed episodes, the default)
    # does not depend on the ranking: walked first, what it reaches is within reach too.
    walked = None
    if w.graph > 0 and graph is not None and options.graph_seeds == 0:
        walked = graph(np.zeros(0, dtype=np.int64), np.zeros(0))
    reach = None if dense else _reach(scope, unit_ep, holders, analysis, options, as_of_ts, graph, w, walked)
    n_eps = scope.ep_rowid.size if reach is None else reach.size

    def at(a: np.ndarray) -> np.ndarray:
        return a if reach is None else a[reach]

    def links(a: np.ndarray) -> np.ndarray:  # positions of neighbours, -1 for none (or beyond reach)
        return a if reach is None else _local(reach, a[reach])

    local_ep = unit_ep if reach is None else np.searchsorted(reach, unit_ep)
    ep_text = max_by_group(np.where(is_key, 0.0, score), local_ep, n_eps)
    ep_fact = max_by_group(np.where(is_key & ~is_statement, score, 0.0), local_ep, n_eps)
    ep_said = max_by_group(np.where(is_statement, score, 0.0), local_ep, n_eps)
    ep_key = np.maximum(ep_fact, ep_said if w.statements > 0 else 0.0)
    ep_base = np.maximum(np.maximum(ep_text, w.facts * ep_fact), w.statements * ep_said) + w.facts_support * ep_key
    ep_facts = ep_base - ep_text  # what keys added, for ``why``

    # A request for advice is answered from what the asker likes and does: an episode a
    # preference was drawn from ("I enjoy audiobooks on my commute") counts for more — by the
    # named rule above, only the named speakers' ("a gift idea for Caroline?": hers, not Mel's).
    pref_sig = np.zeros(n_eps)
    prefs = at(scope.ep_preference)
    if analysis.asks_advice and w.preference > 0:
        if named.size:
            prefs = prefs & np.isin(_speaker_of(scope, np.arange(scope.ep_rowid.size) if reach is None else reach), named)
        boosted = ep_base * (1.0 + w.preference * prefs)
        pref_sig = boosted - ep_base
        ep_base = boosted

    visible = np.ones(n_eps, dtype=bool) if include_hidden else ~at(scope.ep_hidden)
    if as_of_ts is not None:
        visible &= scope.ep_recorded_ts <= as_of_ts
    ep_base = np.where(visible, ep_base, 0.0)
    known = visible.copy()  # recorded by the as-of time

    # 3. Time: ranges named in the question, "when" questions, first/latest intent.
    # (within reach, a range's share of memory is still taken over every episode)
    every = None if reach is None else (
        scope.ep_ts, scope.ep_event_lo, scope.ep_event_hi,
        np.ones(scope.ep_rowid.size, dtype=bool) if include_hidden else ~scope.ep_hidden,
    )
    ep_base, time_sig, order_sig, visible = _time_signals(
        at(scope.ep_ts), at(scope.ep_event_lo), at(scope.ep_event_hi), ep_base, visible, analysis, w, every
    )

    # 4. Context.
    neigh = neighbour_support(ep_base, links(scope.ep_prev), links(scope.ep_next)) if w.neighbours > 0 else np.zeros(n_eps)
    thread = neighbour_support(ep_base, links(scope.ep_prev_own), links(scope.ep_next_own)) if w.thread > 0 else np.zeros(n_eps)
    if analysis.asks_advice and w.thread > 0 and w.preference > 0:
        # The tastes a person tells in one conversation go together ("I listen to podcasts on my
        # commute" ... "I'm into the history ones"): for advice, a preference's thread reaches
        # the best other preference the same speaker told in the session, past any replies.
        told = np.flatnonzero(prefs & visible)
        eps = told if reach is None else reach[told]
        who = _speaker_of(scope, eps)
        by = scope.ep_session[eps] * (int(who.max(initial=0)) + 2) + who + 1  # (session, speaker)
        thread = np.maximum(thread, best_other_in_group(ep_base, told, by))
    sess = session_support(ep_base, at(scope.ep_session), scope.n_sessions) if w.session > 0 else np.zeros(n_eps)
    seg, seg_best = (
        _segment_support(scope, keys, query_vector, w, options.candidates, known, reach, not include_hidden)
        if w.segments > 0 else (np.zeros(n_eps), 0.0)
    )
    final = combine(ep_base, neigh, thread, sess, seg, w)
    final = np.where(visible & (final > 0), final, -np.inf)
    graph_sig = np.zeros(n_eps)
    if w.graph > 0 and graph is not None and np.isfinite(final).any():  # (with ``reach``: seedless only)
        # Association: what shares people, places and things with the best episodes, or with
        # what the question names, rises (Personalized PageRank from them, see recall.graph).
        ranked = np.flatnonzero(np.isfinite(final))
        order = np.argsort(-final[ranked], kind="stable")
        best = float(final[ranked[order[0]]])
        if reach is not None and best <= w.session * float(sess.max(initial=0.0)) + w.segments * seg_best:
            # the walk's lift scales with the best episode, which may lie beyond the reach
            return recall(scope, query, query_vector, limit=limit, as_of_ts=as_of_ts, analysis=analysis,
                          options=options, lexical=lexical, include_hidden=include_hidden, graph=graph, dense=True)
        seeds = ranked[order[: options.graph_seeds]]
        association = at(walked) if walked is not None else graph(seeds, final[seeds])
        graph_sig = np.sqrt(normalise_max(np.maximum(association, 0.0)))  # sqrt: mass falls fast per hop
        final = final + w.graph * best * graph_sig
    exact = np.zeros(n_eps)
    held = []  # per rare word asked for: the visible episodes holding it, if few enough
    for eps in holders:
        local = eps if reach is None else np.searchsorted(reach, eps)
        local = local[visible[local]]
        if 0 < local.size <= options.exact_max_episodes:
            held.append(local)
    for local in held:
        exact[local] += 1.0 / len(held)
    if exact.any():
        # A rare token asked for and held in full is the strongest evidence there is: those
        # episodes go first (with weight >= 1), in their order; the others keep theirs.
        best = float(final[np.isfinite(final)].max(initial=0.0))
        lifted = np.where(np.isfinite(final), final, 0.0) + w.exact * exact * (1.0 + best)
        final = np.where(visible & (exact > 0), lifted, final)

    # 5. Rank and group.
    # The best ``want``, ties in conversation order: every episode scoring as the want-th is
    # taken before the cut (argpartition would pick among them by where they lie in the array,
    # so ranking within reach and over every episode could keep different ones).
    want = min(scope.ep_rowid.size, max(limit * 4, 50))
    if want < n_eps:
        cut = np.partition(-final, want - 1)[want - 1]
        top = np.flatnonzero(-final <= cut)
    else:
        top = np.arange(n_eps)
    top = top[np.isfinite(final[top])]
    pos = top if reach is None else reach[top]  # episode positions
    order = np.lexsort((pos, -final[top]))[:want]
    top, pos = top[order], pos[order]
    if reach is not None:
        # Beyond the reach an episode scores at most its session's support and its segment's:
        # it cannot change the hits if the last episode that makes one scores above that. Each
        # episode is a hit of its own unless neighbours merge, which reads ``want`` deep.
        beyond = w.session * float(sess.max(initial=0.0)) + w.segments * seg_best
        need = want if options.merge_adjacent else min(limit, want)
        if beyond > 0 and (top.size < need or final[top[need - 1]] <= beyond):
            return recall(scope, query, query_vector, limit=limit, as_of_ts=as_of_ts, analysis=analysis,
                          options=options, lexical=lexical, include_hidden=include_hidden, graph=graph, dense=True)

    best_units: dict[int, list[int]] = {}  # episode -> its candidate passages, best first
    wanted = set(pos.tolist())
    passages, passage_score = units[~is_key], score[~is_key]
    for u in passages[np.lexsort((passages, -passage_score))].tolist():
        e = int(scope.unit_ep[u])
        if e in wanted:
            best_units.setdefault(e, []).append(u)
    unit_score = {u: float(score[i]) for u, i in at_unit.items()}

    def signals_of(i: int, e: int) -> dict[str, float]:  # i: index into the arrays, e: the episode
        found = best_units.get(e, [])
        c = at_unit[found[0]] if found else -1
        return {
            "lexical": float(lex_n[c]) if c >= 0 else 0.0,
            "dense": float(dense_n[c]) if c >= 0 else 0.0,
            "bm25": float(lex_raw[c]) if c >= 0 else 0.0,
            "cosine": float(cos_raw[c]) if c >= 0 else 0.0,
            "facts": float(ep_facts[i]),
            "preference": float(pref_sig[i]),
            "relevance": float(ep_base[i]),
            "neighbours": float(neigh[i]),
            "thread": float(thread[i]),
            "session": float(sess[i]),
            "segment": float(seg[i]),
            "time": float(time_sig[i]),
            "order": float(order_sig[i]),
            "exact": float(exact[i]),
            "graph": float(graph_sig[i]),
        }

    groups: list[RankedGroup] = []
    group_of: dict[int, RankedGroup] = {}
    for i, e in zip(top.tolist(), pos.tolist()):
        if e in group_of:
            continue
        target = None
        # Only an episode scoring close to its neighbour's hit joins it: grouping keeps what
        # belongs together, it never pads a hit with weaker context.
        if options.merge_adjacent:
            for nb in (int(scope.ep_prev[e]), int(scope.ep_next[e])):
                if (
                    nb >= 0
                    and nb in group_of
                    and _is_edge(group_of[nb], nb, scope)
                    and final[i] >= options.merge_ratio * group_of[nb].score
                ):
                    target = group_of[nb]
                    break
        if target is None:
            if len(groups) >= limit:
                continue
            target = RankedGroup([], {}, float(final[i]), signals_of(i, e))
            groups.append(target)
        target.episodes.append(e)
        target.units[e] = _units_to_show(
            best_units.get(e, []), unit_score, int(scope.ep_first_unit[e]), int(scope.ep_n_units[e]), options
        )
        group_of[e] = target
    for g in groups:
        g.episodes.sort(key=lambda e: (scope.ep_ts[e], e))
    return groups


def _speaker_of(scope: ScopeIndex, eps: np.ndarray) -> np.ndarray:
    """The speaker (lexical speaker code, as its passages carry) of episodes ``eps``; -1 for an
    episode whose passages have not arrived."""
    first = scope.ep_first_unit[eps]
    out = np.full(eps.size, -1, dtype=np.int64)
    has = first >= 0
    out[has] = scope.lexical.speaker_codes(first[has])
    return out


def _exact_holders(scope: ScopeIndex, query: str, max_episodes: int) -> list[np.ndarray]:
    """Per rare exact word of the question (see :func:`~engramdb.recall.query.exact_words`),
    the episodes (positions) whose text holds it; recall keeps a word when at most
    ``max_episodes`` visible episodes hold it."""
    holders = []
    for word in exact_words(query):
        key = term_key(word)
        if scope.lexical.speakers_named([key]).size:
            continue  # a speaker's name says who said it, not which memory ("which pet does Tom have?")
        docs = scope.lexical.documents(key)
        if docs.size > 500 * max_episodes:  # no word that many passages hold is a rare one
            continue
        eps = distinct(scope.unit_ep[docs])
        holders.append(eps[eps >= 0])
    return holders


def _local(reach: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Indices into ``reach`` (sorted positions) of ``positions``; -1 for those not in it."""
    if reach.size == 0:
        return np.full(positions.shape, -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(reach, positions), reach.size - 1)
    return np.where((positions >= 0) & (reach[at] == positions), at, -1)


#: Scored over ``_reach`` rather than every episode only when it is at most this share of them.
REACH_SHARE = 0.25


def _reach(
    scope: ScopeIndex, unit_ep: np.ndarray, holders: list[np.ndarray], analysis: QueryAnalysis,
    options: RecallOptions, as_of_ts: float | None, graph: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    w: Weights, walked: np.ndarray | None = None,
) -> np.ndarray | None:
    """The episodes a score can reach other than through its session or segment (sorted
    positions): the candidates' episodes, their neighbours and the speakers' threads around
    them, the exact lookups' holders and what the graph walk ``walked`` reached. None (score
    every episode) when a signal needs them all: as-of searches (a segment is hidden by a member
    recorded later), a graph walk seeded from the ranking; or when the reach is a large share of
    the memory anyway. Time ranges only multiply relevance or filter, which leaves an episode
    beyond the reach at 0 (their share of memory is taken over every episode). For advice, a
    preference's thread reaches the other preferences its speaker told in the session: those
    of the candidates' preferences are within reach too."""
    n = scope.ep_rowid.size
    if as_of_ts is not None or (w.graph > 0 and graph is not None and walked is None):
        return None
    own = distinct(unit_ep[unit_ep >= 0])
    parts = [own, *holders]
    if analysis.asks_advice and w.thread > 0 and w.preference > 0:
        parts.append(_told_along(scope, own))
    if walked is not None:
        parts.append(np.flatnonzero(walked > 0))
    if w.neighbours > 0:
        parts += [scope.ep_prev[own], scope.ep_next[own]]
    if w.thread > 0:
        parts += [scope.ep_prev_own[own], scope.ep_next_own[own]]
    reach = union(*parts)
    reach = reach[reach >= 0]
    return reach if reach.size <= REACH_SHARE * n else None


def _told_along(scope: ScopeIndex, eps: np.ndarray) -> np.ndarray:
    """The preference episodes (positions) told by the same speaker in the same session as one
    of the preference episodes among ``eps``."""
    told: np.ndarray = eps[scope.ep_preference[eps]]
    if told.size == 0:
        return told
    every = np.flatnonzero(scope.ep_preference)
    same = every[np.isin(scope.ep_session[every], scope.ep_session[told])]

    def pair(e: np.ndarray) -> np.ndarray:  # (session, speaker) as one key
        key: np.ndarray = (scope.ep_session[e].astype(np.int64) << 32) | (_speaker_of(scope, e) + 1)
        return key

    along: np.ndarray = same[np.isin(pair(same), pair(told))]
    return along


def _segment_support(
    scope: ScopeIndex,
    keys: list[int],
    query_vector: np.ndarray | None,
    w: Weights,
    candidates: int,
    known: np.ndarray,
    reach: np.ndarray | None = None,
    hide_quarantined: bool = True,
) -> tuple[np.ndarray, float]:
    """Each episode's segment, scored as one document: its members' words pooled (BM25 over the
    user's segments) and the mean of their vectors; 0 for episodes not yet in a segment, and for
    segments with a member not ``known`` by the as-of time (its words would speak for a turn the
    search must not see). With ``reach``, for those episodes (``known`` is theirs; the others
    are known unless quarantined and ``hide_quarantined``). Also returns the best segment's score.

    A question whose words are spread over several turns of one exchange matches the exchange
    better than any of its turns — and lifts those turns.
    """
    n_seg = scope.n_segments
    out = np.zeros(scope.ep_rowid.size if reach is None else reach.size)
    if n_seg == 0:
        return out, 0.0
    lex = normalise_max(np.maximum(scope.seg_lexical.scores(keys), 0.0)) if w.lexical > 0 else np.zeros(n_seg)
    dense = np.zeros(n_seg)
    if w.dense > 0 and query_vector is not None:
        pos, sims = scope.seg_vectors.search(query_vector, candidates)
        dense[pos] = normalise_dense(sims, exhaustive=pos.size < candidates)
    score = fuse(lex, dense, w)
    segment = scope.ep_segment if reach is None else scope.ep_segment[reach]
    member = segment >= 0
    hidden = member & ~known
    if hidden.any():
        score[segment[hidden]] = 0.0
    if reach is not None and hide_quarantined and scope.ep_hidden.any():  # quarantined members beyond the reach
        beyond = scope.ep_hidden & (scope.ep_segment >= 0)
        score[scope.ep_segment[beyond]] = 0.0
    out[member] = score[segment[member]]
    return out, float(score.max(initial=0.0))


def _time_signals(
    ts: np.ndarray, lo: np.ndarray, hi: np.ndarray, ep_base: np.ndarray, visible: np.ndarray,
    analysis: QueryAnalysis, w: Weights,
    every: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reweight episode relevance by time; returns (relevance, time signal, order signal, visible).

    Explicit ranges ("in 2022") filter — unless nothing relevant lies inside them, when they
    fall back to boosting; soft ranges ("two weeks ago") boost what lies in or near them.
    ``every``: (ts, lo, hi, visible) of every episode, when the others are only those within
    reach: a soft range's share of memory is taken over them (the rest depends only on
    relevance, which is 0 beyond the reach, and is multiplied).
    """
    n = ep_base.size
    time_sig = np.zeros(n)
    order_sig = np.zeros(n)
    if n == 0:
        return ep_base, time_sig, order_sig, visible
    every_visible = every[3] if every is not None else visible
    for r in analysis.ranges if w.time > 0 else ():
        if r.explicit:
            inside = in_range(ts, lo, hi, r)
            if (ep_base * inside).max() > 0:
                visible = visible & inside
                if every is not None:
                    every_visible = every_visible & in_range(every[0], every[1], every[2], r)
                ep_base = np.where(inside, ep_base, 0.0)
                continue
        close = range_closeness(ts, lo, hi, r)
        # A range most of memory falls in tells little ("last week" over ten days of chats):
        # the boost shrinks with the share of (visible) episodes inside it.
        if every is None:
            share = float((close[visible] > 0).mean()) if visible.any() else 0.0
        else:
            touched = range_touches(every[0], every[1], every[2], r)
            share = float(touched[every_visible].mean()) if every_visible.any() else 0.0
        time_sig = np.maximum(time_sig, close * (1.0 - share))
    factor = 1.0 + w.time * time_sig
    if analysis.asks_when and w.when > 0:
        factor += w.when * ~np.isnan(lo)
    if analysis.order in ("latest", "earliest") and w.order > 0:
        relevant = ep_base >= 0.5 * float(ep_base.max()) if ep_base.max() > 0 else ep_base > 0
        if relevant.sum() > 1:
            seen = ts[relevant]
            span = float(seen.max() - seen.min())
            if span > 0:
                pos = (ts - seen.min()) / span
                order_sig = np.where(relevant, pos if analysis.order == "latest" else 1.0 - pos, 0.0)
                factor = factor + w.order * order_sig
    return ep_base * factor, time_sig, order_sig, visible


def _is_edge(group: RankedGroup, member: int, scope: ScopeIndex) -> bool:
    """Only extend a group at its ends, so a group stays a contiguous run."""
    return member in (min(group.episodes), max(group.episodes))


def _units_to_show(
    units: list[int], unit_score: dict[int, float], first: int, count: int, options: RecallOptions
) -> list[int]:
    """The passages (unit positions, in text order) a hit shows of an episode whose passages are
    ``first`` .. ``first + count - 1``, given its matching ones ``units``, best first.

    A short episode is shown whole. Of a long one: the best passage, plus the runner-up when it
    scores close, each with its neighbouring passages (the first passage when none matched).
    """
    if count == 0:  # the episode's passages have not arrived: the caller shows its text
        return []
    if count <= max(options.whole_passages, 1):
        return list(range(first, first + count))
    if not units:
        chosen = [first]
    else:
        best = units[0]
        chosen = [best] + [u for u in units[1:2] if unit_score[u] >= options.second_passage_ratio * unit_score[best]]
    around = options.context_passages
    shown = {p for u in chosen for p in range(max(first, u - around), min(first + count, u + around + 1))}
    return sorted(shown)
