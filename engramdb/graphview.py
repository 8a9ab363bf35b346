"""What the memory graph shows people: ``Memory.related`` and ``Memory.graph`` (read-only views
over the entity links consolidation writes; recall walks the same graph, see recall.graph)."""

from __future__ import annotations

import math

from .model import GraphEdge, GraphNode, MemoryGraph, Related
from .store.base import SemanticStore, Store

#: How much each kind of link adds to ``Related.weight``: a shared fact says the most; a shared
#: entity says less the more episodes mention it (1 / log2(1 + its episodes)).
FACT_WEIGHT = 1.0
SEGMENT_WEIGHT = 0.5


def related(store: Store, semantic: SemanticStore, user_id: str, episode_id: str, limit: int) -> list[Related]:
    """The episodes linked to ``episode_id``, strongest first, with why."""
    weight: dict[int, float] = {}
    reasons: dict[int, list[str]] = {}
    for other, kind, detail, degree in semantic.related_rows(user_id, episode_id):
        if kind == "entity":
            w, why = 1.0 / math.log2(1 + max(degree, 1)), f"mentions {detail}"
        elif kind == "fact":
            w, why = FACT_WEIGHT, f"same fact: {detail}"
        else:
            w, why = SEGMENT_WEIGHT, "same segment"
        if why in reasons.get(other, ()):
            continue
        weight[other] = weight.get(other, 0.0) + w
        reasons.setdefault(other, []).append(why)
    episodes = store.episodes_by_rowid(list(weight))
    ranked = sorted((r for r in weight if r in episodes and episodes[r].status != "quarantined"),
                    key=lambda r: (-weight[r], episodes[r].seq))
    return [Related(episodes[r], round(weight[r], 4), tuple(reasons[r])) for r in ranked[:limit]]


def graph(store: Store, semantic: SemanticStore, user_id: str, around: str | None, limit: int) -> MemoryGraph:
    """Entities, the episodes and facts that name them, and the edges between (see ``graph_rows``)."""
    entities, links = semantic.graph_rows(user_id, around, limit)
    episodes = store.episodes_by_rowid([ep for _, ep, _ in links if ep is not None])
    facts = semantic.fact_labels(user_id, [f for _, _, f in links if f is not None])
    ent_id = {rowid: eid for rowid, eid, _, _, _ in entities}
    nodes: dict[str, GraphNode] = {}
    edges: dict[tuple[str, str, str], GraphEdge] = {}
    for _, eid, name, kind, aliases in entities:
        nodes[eid] = GraphNode(eid, "entity", name, kind + (f"; also {', '.join(aliases)}" if aliases else ""))
    for e, ep_rowid, f_rowid in links:
        ep = episodes.get(ep_rowid) if ep_rowid is not None else None
        if ep is not None and ep.status == "quarantined":
            continue
        if e not in ent_id:
            continue
        if f_rowid is not None and f_rowid in facts:
            fid, text = facts[f_rowid]
            nodes.setdefault(fid, GraphNode(fid, "fact", text))
            edges.setdefault((fid, ent_id[e], "names"), GraphEdge(fid, ent_id[e], "names"))
            if ep is not None:
                edges.setdefault((fid, ep.id, "source"), GraphEdge(fid, ep.id, "source"))
        if ep is not None:
            label = " ".join(ep.text.split())
            nodes.setdefault(ep.id, GraphNode(ep.id, "episode", label[:117] + "…" if len(label) > 120 else label,
                                              f"{ep.speaker or '?'}, {ep.timestamp:%Y-%m-%d}"))
            if f_rowid is None:
                edges.setdefault((ep.id, ent_id[e], "mentions"), GraphEdge(ep.id, ent_id[e], "mentions"))
    used = {x for edge in edges.values() for x in (edge.source, edge.target)} | {
        eid for _, eid, _, _, _ in entities if around is not None
    }
    return MemoryGraph(tuple(n for k, n in nodes.items() if k in used or n.kind == "entity"), tuple(edges.values()))
