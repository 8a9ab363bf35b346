"""``Memory``: the one facade every adapter (CLI, benchmarks, servers) calls."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import threading
import time
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import graphview
from .consolidate import engine as consolidation
from .consolidate.engine import BATCH, Report
from .consolidate import tree
from .consolidate.extract import Extractor, RuleExtractor
from .encode.analysis import LIMIT_CHARS, Analyses
from .encode.embedders import Embedder, LazyEmbedder
from .encode.text import Passage, count_tokens, split_passages
from .encode.timex import find_times, time_candidates
from .errors import EmbedderError, InputError, LimitError, NotFoundError, StoreError, UnknownUserError
from .forget import DeletionReceipt, probes_for, residue
from .guard import SOURCES, Guard, assess, source_for_role, trusted
from .ids import new_id
from .lifecycle import (
    DAY, RECOGNITION_MIX, SURPRISE_WEIGHT, MaintenanceReport, Policy, Recognition, code_similarity,
    estimate_importance, gist, recognition_scores, retrievability,
)
from .model import (
    Change, CoreBlock, CoreChange, Entity, Episode, Explanation, Fact, Flagged, Hit, Hits, MemoryGraph, Related, Segment,
    StoreStats, Summary,
)
from .index.lexical import encode_terms
from .recall.aggregate import header as instances_header
from .recall.packing import Context, pack
from .recall.pipeline import Recaller
from .recall.search import RecallOptions
from . import structured
from .semantic import FACT_KINDS, PREDICATES, predicate_of
from .structured import Rows, object_matches, pattern_words, rows_of
from .store.base import PERSISTENT_INDEX, SEMANTIC, NewEpisode, NewUnit, SemanticStore, Stale, Store
from .store.sqlite import SQLiteStore
from .timeutil import iso, now_utc, parse_timestamp
from .validate import MAX_ID_CHARS, MAX_QUERY_CHARS, Draft, check_count, check_id, check_text, normalise_messages

#: Most hits one search returns.
MAX_LIMIT = 1000
#: What context() tells the LLM when nothing recalled seems relevant (see recall.relevance).
NOT_RELEVANT = ("Nothing in memory seems relevant to this question (confidence {confidence:.2f}); "
                "the closest memories follow, and may not bear on it.")
#: Hits of a search or context recorded as used: the first ten (weight 1/rank² ≥ 0.01).
USED_RANKS = 10

Clock = Callable[[], datetime]
_DEFAULT_GUARD = Guard()  # stateless: one serves every memory


def _check_limit(limit: object) -> None:
    check_count(limit, "limit", minimum=1, maximum=MAX_LIMIT)


def _id_list(ids: object) -> builtins.list[str]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple, set, frozenset)):
        raise InputError("episode_ids must be a list of episode ids", field="episode_ids")
    if len(ids) > 100_000:
        raise LimitError("at most 100,000 episode ids per call", field="episode_ids")
    return [check_text(i, field_name="episode_ids", limit=256) for i in ids]


def open_store(target: object, *, read_only: bool = False) -> Store:
    """A store for a path (SQLite file, ``:memory:``) or a database URL."""
    if not isinstance(target, (str, os.PathLike)):
        raise InputError(
            f"a memory opens a path, ':memory:' or a database URL, not {type(target).__name__}", field="path"
        )
    text = str(target)
    if text.startswith(("postgres://", "postgresql://")):
        from .store.postgres import PostgresStore  # psycopg is an extra: imported only here

        return PostgresStore(text, read_only=read_only)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    return SQLiteStore(text, read_only=read_only)


#: Users whose speakers' names :meth:`Memory.context` keeps (a few names each).
SPEAKERS_KEPT = 4096


class Memory:
    """Long-term memory for one application: episodes in, ranked recall out.

    ``Memory("memory.db")`` opens (or creates) an embedded SQLite file; ``":memory:"`` keeps
    everything in RAM. Collaborators are injected, with offline defaults:

    - ``embedder``: an :class:`~engramdb.Embedder`, a spec (``"default"``, ``"onnx:DIR"``,
      ``"hash"``), or ``None`` for lexical-only recall. Loaded on first use.
    - ``embedding_cache``: path of a SQLite file shared by several memories, so text embedded
      once is never embedded again (vectors are always also kept in the memory's own file).
    - ``recall``: :class:`RecallOptions` (signal weights, candidate counts).
    - ``clock``: returns "now" for messages without a timestamp.
    - ``passage_tokens``: long messages are indexed as passages of about this many tokens;
      ``dense_passages``: how many leading passages of a person's message get a vector, and
      ``dense_passages_assistant`` of an assistant's (role ``assistant``): the rest are found
      by full text. People's messages are the memory; assistant replies are long and mostly
      generic, so they get fewer vectors — embedding cost grows with both.
    - ``extractor``: turns messages into facts (default: offline rules); with
      ``consolidate_on_add`` (default) each ``add`` is consolidated right after it is stored.
    - ``persist_indexes``: save each large user's recall index beside the file
      (``memory.db.idx/``), so another process searches it without rebuilding it.
    - ``track_use``: ``search()`` and ``context()`` record that what they return was used,
      which strengthens it (:mod:`engramdb.lifecycle`); written in batches, so a crash may lose
      the last few seconds of use, never a memory.
    - ``read_only``: open the file for reading only (searches work, writes raise
      :class:`StoreError`); a file or folder this process may not write is opened so anyway.
    - ``guard``: the write-time poisoning check (:class:`~engramdb.guard.Guard`); messages it
      flags are stored quarantined: kept, listed by :meth:`quarantined`, recalled only when
      asked for, until :meth:`release`. ``None`` turns the check off.
    """

    def __init__(
        self,
        path_or_store: str | os.PathLike[str] | Store = ":memory:",
        *,
        embedder: Embedder | str | None = "default",
        embedding_cache: str | os.PathLike[str] | None = None,
        recall: RecallOptions | None = None,
        clock: Clock | None = None,
        passage_tokens: int = 40,
        dense_passages: int = 4,
        dense_passages_assistant: int = 1,
        extractor: Extractor | None = None,
        consolidate_on_add: bool = True,
        persist_indexes: bool = True,
        guard: Guard | None = _DEFAULT_GUARD,
        read_only: bool = False,
        track_use: bool = True,
        analysis_cache_chars: int = LIMIT_CHARS,
    ) -> None:
        if isinstance(path_or_store, (str, os.PathLike)) or not hasattr(path_or_store, "capabilities"):
            # refuses what is neither a path nor a store
            self.store: Store = open_store(path_or_store, read_only=read_only)
        else:
            self.store = path_or_store
        self._embedder = LazyEmbedder(embedder)
        self._file_model: str | None = None  # the model the file's vectors are made with, once known
        self._cache: SQLiteStore | None = None
        if embedding_cache is not None:
            Path(embedding_cache).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._cache = SQLiteStore(Path(embedding_cache).expanduser())
        self.recall_options = recall or RecallOptions()
        self._clock = clock or now_utc
        if passage_tokens < 16:
            raise InputError("passage_tokens must be at least 16", field="passage_tokens")
        self.passage_tokens = passage_tokens
        self.dense_passages = max(0, dense_passages)
        self.dense_passages_assistant = max(0, dense_passages_assistant)
        self.extractor: Extractor = extractor or RuleExtractor()
        self.consolidate_on_add = consolidate_on_add
        self.guard = guard
        self.track_use = track_use
        self._uses: dict[str, dict[str, tuple[float, float]]] = {}  # user -> id -> (when, weight), unwritten
        self._uses_flushed = time.monotonic()
        self._recognition: dict[str, tuple[int | None, list[int], list[bytes], list[bytes | None]]] = {}
        self._facts = self.store.semantic() if SEMANTIC in self.store.capabilities else None
        self._lock = threading.RLock()
        self._speakers: dict[str, tuple[tuple[str, str] | None, int, dict[str, str]]] = {}  # (made, last seq, names)
        persist = persist_indexes and PERSISTENT_INDEX in self.store.capabilities
        self._recall = Recaller(self.store, self._embedder.get, persist=persist)
        self.embedded_texts = 0  # how many texts this instance sent to the model (cache misses)
        self.analyses = Analyses(analysis_cache_chars)  # of texts seen, for the same text added again

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Memory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._flush_uses(force=True)
        except StoreError:  # a read-only file, a full disk: uses are a hint, the memories are safe
            pass
        self.store.close()
        if self._cache is not None:
            self._cache.close()

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder.get()

    # -- writes ------------------------------------------------------------------------------

    def add(
        self,
        messages: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        timestamp: str | datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        writer: str | None = None,
    ) -> builtins.list[str]:
        """Store messages as episodes; returns their ids. All or nothing.

        ``messages``: a string, a message dict or a list of them. A message has ``content``
        and optional ``role``, ``name`` (speaker), ``timestamp`` (overrides the call's),
        ``metadata`` (kept verbatim, merged over the call's), ``session_id`` and ``agent_id``
        (override the call's: one add may hold a whole history of sessions, stored in one
        transaction and consolidated at once), ``place``, ``importance``, ``source``, and, to
        restore an export, ``id``, ``recorded_at``, ``writer`` and ``status``: a message whose
        id this user already has is skipped (an import is idempotent); an id of another user's
        episode is refused.

        ``source``: who wrote the messages — ``user``, ``assistant``, ``system``, ``tool``
        (a tool's output) or ``document`` (a page or file); by default what each role implies.
        ``writer``: through what they came (``"import:chats.jsonl"``, an API key's name); a
        writer starting with ``import`` is held to the untrusted threshold of the poisoning
        check. Messages the check flags are stored quarantined (see :meth:`quarantined`).
        """
        user = check_id(user_id, "user_id", required=True)
        assert user is not None
        session = check_id(session_id, "session_id", required=False)
        agent = check_id(agent_id, "agent_id", required=False)
        if source is not None and source not in SOURCES:
            raise InputError(f"source must be one of {', '.join(SOURCES)}", field="source")
        writer = check_id(writer, "writer", required=False)
        default_time = self._clock() if timestamp is None else parse_timestamp(timestamp)
        drafts = normalise_messages(messages, default_time=default_time, metadata=metadata, session_id=session, agent_id=agent)
        if self.store.read_only:  # before any embedding work
            raise StoreError(f"cannot add to this memory: {self.store.read_only}", reason=self.store.read_only)
        # A message with the id of an episode this user has is already here (a re-import, a
        # retried add): skipped, so importing the same file twice changes nothing.
        given = [d.id for d in drafts if d.id is not None]
        owners = self.store.episode_owners(given) if given else {}
        taken = sorted(i for i, owner in owners.items() if owner != user)
        if taken:
            raise InputError(f"episode id {taken[0]!r} belongs to another user", field="id", id=taken[0])
        asked = drafts
        drafts = [d for d in drafts if d.id is None or d.id not in owners]
        if not drafts:
            return given
        recorded = now_utc()
        model = self.embedder.model_id if self.embedder else None
        self._check_model(model)
        # Messages this user has already (the whole history sent again with each new turn, a
        # retried call): each is one more sighting of its episode, with no analysis or embedding.
        hashes = [hashlib.sha256(d.content.encode("utf-8")).hexdigest() for d in drafts]
        known = self.store.same_episodes(user, [
            (h, d.session_id, d.role, d.name, iso(d.timestamp), json.dumps(d.metadata, ensure_ascii=False))
            for h, d in zip(hashes, drafts)
        ])
        try:
            ids = self._add_new(user, source, writer, drafts, hashes, known, recorded, model)
        except Stale:  # one of them was deleted meanwhile: add them all the ordinary way
            known = [None] * len(drafts)
            ids = self._add_new(user, source, writer, drafts, hashes, known, recorded, model)
        made = iter(i for i, d in zip(ids, drafts) if d.id is None)
        if self.consolidate_on_add and self._facts is not None and any(k is None for k in known):
            try:
                self.consolidate(user_id=user)
            except Exception as exc:  # the episodes are stored; consolidation can be re-run
                warnings.warn(f"consolidation after add failed for {user!r}: {exc}", stacklevel=2)
        return [d.id if d.id is not None else next(made) for d in asked]  # one per message, in order

    def _add_new(
        self, user: str, source: str | None, writer: str | None, drafts: Sequence[Draft], hashes: Sequence[str],
        known: Sequence[str | None], recorded: datetime, model: str | None,
    ) -> builtins.list[str]:
        """Analyse and store the messages of :meth:`add` (those ``known`` only as sightings);
        returns their episodes' ids in order (an existing one's for a message merged into it)."""
        episodes: list[NewEpisode] = []
        to_embed: dict[str, str] = {}
        for d, content_hash, same in zip(drafts, hashes, known):
            if same is not None:
                episodes.append(NewEpisode(
                    id=d.id or new_id("ep_"), agent_id=d.agent_id, session_id=d.session_id, role=d.role,
                    name=d.name, content=d.content, occurred_at=d.timestamp, recorded_at=recorded, place=d.place,
                    metadata=d.metadata, importance=0.0, content_hash=content_hash, same_as=same,
                ))
                continue
            src = d.source or source or source_for_role(d.role)
            via = d.writer or writer
            text = d.content
            once = self.analyses.get
            flag = None
            if self.guard is not None:
                imported = bool(via and via.startswith("import"))
                ok = trusted(src, imported)
                scored = once(text, ("guard", ok), lambda: assess(text, ok))
                verdict = self.guard.check(text, src, imported=imported, scored=scored)
                flag = (verdict.score, verdict.reasons) if verdict.flagged else None
            if flag is None and d.quarantined:  # restored from an export as it was
                flag = (0.0, ("restored",))
            units, embed = self._units_of(text, d.role, d.name, bool(model))
            to_embed.update(embed)
            episodes.append(
                NewEpisode(
                    id=d.id or new_id("ep_"),
                    agent_id=d.agent_id,
                    session_id=d.session_id,
                    role=d.role,
                    name=d.name,
                    content=text,
                    occurred_at=d.timestamp,
                    recorded_at=d.recorded_at or recorded,
                    place=d.place,
                    metadata=d.metadata,
                    importance=d.importance if d.importance is not None else once(
                        text, ("importance", d.role), lambda: estimate_importance(text, d.role)),
                    importance_given=d.importance is not None,
                    content_hash=content_hash,
                    units=units,
                    times=find_times(text, d.timestamp, once(text, "times", lambda: time_candidates(text))),
                    source=src,
                    writer=via,
                    flag=flag,
                    gist=once(text, ("gist", d.name), lambda: gist(text, d.name)),
                )
            )
        vectors = self._vectors_for(model, to_embed) if model else {}
        merged = self.store.add_episodes(user, episodes, model, vectors)
        return [merged.get(e.id, e.id) for e in episodes]

    def _units_of(
        self, text: str, role: str | None, name: str | None, vectors: bool
    ) -> tuple[tuple[NewUnit, ...], tuple[tuple[str, str], ...]]:
        """How ``add`` indexes a message (see :meth:`passages`): its units (passages with their
        index terms and, with ``vectors``, the hash of the text embedded for them), and the
        (hash, text) of each text to embed. Worked out once per text, role and speaker."""
        speaker = name or role or ""

        def make() -> tuple[tuple[NewUnit, ...], tuple[tuple[str, str], ...]]:
            units, embed = [], []
            for i, (p, embed_text) in enumerate(self.passages(text, role=role, name=name)):
                vhash = None
                if vectors and embed_text is not None:
                    vhash = hashlib.sha256(embed_text.encode("utf-8")).hexdigest()
                    embed.append((vhash, embed_text))
                units.append(NewUnit(i, p.start, p.end, p.text, speaker, vhash, encode_terms(p.text)))
            return tuple(units), tuple(embed)

        key = ("units", role, name, vectors, self.passage_tokens, self.dense_passages, self.dense_passages_assistant)
        return self.analyses.get(text, key, make)

    def _check_model(self, model: str | None) -> None:
        """One embedding model per file: vectors of two models are not comparable, and a unit
        with only the other model's vector would silently drop out of dense recall."""
        if model is None:
            return  # lexical-only use of any file
        if self._file_model is None:  # a file's model changes only by reembed (which sets it)
            self._file_model = self.store.embedder_model()
        recorded = self._file_model
        if recorded is not None and recorded != model:
            raise EmbedderError(
                f"this memory's vectors were made with {recorded}, not {model}: open it with that "
                f"embedder, or re-embed it with this one (Memory.reembed(), engramdb reembed)",
                recorded=recorded,
                model=model,
            )

    def reembed(self, *, progress: Callable[[int, int], None] | None = None, batch: int = 512) -> int:
        """Embed every unit's text again with this memory's embedder and make it the file's
        model (the old model's vectors go, every user's index is rebuilt). Returns the number of
        texts embedded; ``progress(done, total)`` is called as it goes."""
        emb = self.embedder
        if emb is None:
            raise EmbedderError("reembed needs an embedder", field="embedder")
        old = self.store.embedder_model()
        items = self.store.embed_texts()
        vectors: dict[str, np.ndarray] = {}
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            for (h, _), v in zip(chunk, emb.embed([t for _, t in chunk])):
                vectors[h] = v
            self.embedded_texts += len(chunk)
            if progress is not None:
                progress(min(i + batch, len(items)), len(items))
        self.store.replace_vectors(old, emb.model_id, vectors)
        self._file_model = emb.model_id
        return len(items)

    def _vectors_for(self, model: str, texts: dict[str, str]) -> dict[str, np.ndarray]:
        """Vectors for hash->text, from the store, then the shared cache, then the model.

        Returns only those the store does not have yet.
        """
        if not texts:
            return {}
        known = self.store.vector_hashes(model, list(texts))
        missing = [h for h in texts if h not in known]
        found: dict[str, np.ndarray] = {}
        if missing and self._cache is not None:
            found = self._cache.get_vectors(model, missing)
            missing = [h for h in missing if h not in found]
        if missing:
            assert self.embedder is not None
            computed = self.embedder.embed([texts[h] for h in missing])
            self.embedded_texts += len(missing)
            new = dict(zip(missing, computed))
            if self._cache is not None and not self._cache.read_only:
                self._cache.put_vectors(model, new)
            found.update(new)
        return found

    def delete(self, episode_id: str, *, user_id: str | None = None, verify: bool = True) -> DeletionReceipt:
        """Delete an episode and everything derived from it (units, vectors, fact and statement
        keys, facts and entities drawn only from it, its words in segment keys and summaries), in
        one transaction; the text is gone from the file's bytes too. Returns the receipt."""
        check_text(episode_id, field_name="episode_id", limit=256)
        if user_id is not None:
            check_id(user_id, "user_id", required=True)
        owner = self.store.episode_owners([episode_id]).get(episode_id)
        if owner is None or (user_id is not None and owner != user_id):
            raise NotFoundError(f"no episode {episode_id!r}" + (f" for user {user_id!r}" if user_id else ""), id=episode_id)
        return self.forget(user_id=owner, episode_ids=[episode_id], verify=verify)

    def forget(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        before: str | datetime | None = None,
        query: str | None = None,
        episode_ids: Sequence[str] | None = None,
        dry_run: bool | None = None,
        verify: bool = True,
        limit: int = 20,
    ) -> DeletionReceipt:
        """Forget a user's memories, verifiably: all of them, a session's, those said before a
        time, the given episodes, or the episodes of the first ``limit`` hits recall finds for
        ``query`` (then ``dry_run`` defaults to True: the receipt shows what would go; forget those
        ``episode_ids`` to delete them).

        Everything derived goes with the episodes, the user's saved index is removed, and the
        texts are checked to be gone from every table and from the bytes of the file and its WAL
        (``receipt.clean``; :meth:`verify_deleted` checks again later). The check reads the whole
        store (seconds at 100k episodes): ``verify=False`` skips it, and the receipt then carries
        no probes. Forgetting a whole user also empties their facts, change log, segments and
        entities.
        """
        user = self._known_user(user_id)
        session = check_id(session_id, "session_id", required=False)
        cutoff = parse_timestamp(before, field="before") if before is not None else None
        whole_user = session is None and cutoff is None and query is None and episode_ids is None
        if query is not None:
            found = self._search(query, user, limit, None, None, None)  # finding what to forget is no use of it
            chosen = builtins.list(dict.fromkeys(e.id for h in found for e in h.episodes))
            dry_run = True if dry_run is None else dry_run
        elif episode_ids is not None:
            episode_ids = _id_list(episode_ids)
            owners = self.store.episode_owners(builtins.list(episode_ids))
            missing = [i for i in episode_ids if owners.get(i) != user]
            if missing:
                raise NotFoundError(f"no episode {missing[0]!r} for user {user!r}", id=missing[0])
            chosen = builtins.list(dict.fromkeys(episode_ids))
        else:
            chosen = [
                e.id for e in self.store.list_episodes(user, session_id=session)
                if cutoff is None or e.timestamp < cutoff
            ]
        request: dict[str, Any] = {k: v for k, v in (
            ("session_id", session), ("before", cutoff.isoformat() if cutoff else None),
            # the query may name what is being forgotten: the receipt keeps only its digest
            ("query_sha256", hashlib.sha256(query.encode("utf-8")).hexdigest() if query is not None else None),
            ("episode_ids", len(episode_ids) if episode_ids is not None else None)) if v is not None}
        eps = self.store.list_episodes(user) if whole_user else [
            e for e in (self.store.get_episode(i) for i in chosen) if e is not None
        ]
        digest = hashlib.sha256(
            "\n".join(f"{e.id}\t{hashlib.sha256(e.text.encode('utf-8')).hexdigest()}" for e in sorted(eps, key=lambda e: e.id)).encode()
        ).hexdigest()
        made = now_utc()
        rid = "del_" + uuid.uuid4().hex
        if dry_run:
            return DeletionReceipt(rid, user, made, request, tuple(e.id for e in eps), {"episodes": len(eps)}, digest, "", (), {}, True)
        salt = uuid.uuid4().hex if verify else ""
        gone = {e.id for e in eps}
        probes = (
            probes_for((e.text for e in eps), (t for i, t in self.store.episode_texts() if i not in gone), salt)
            if verify else []
        )
        repair = self._facts.forget_episode if self._facts is not None else None
        removed = self.store.delete_episodes(user, [e.id for e in eps], before=repair)
        if whole_user:
            for table, n in self.store.forget_user(user).items():
                removed[table] = removed.get(table, 0) + n
        self._recall.drop(user)
        consolidation.forget_names(user)  # the entities kept in memory to resolve mentions
        self.analyses.clear()  # and what their texts gave, kept for the same text added again
        check = residue(probes, salt, self.store.text_rows(), self.store.data_files()) if verify else {}
        return DeletionReceipt(rid, user, made, request, tuple(e.id for e in eps), removed, digest, salt, tuple(probes), check)

    def verify_deleted(self, receipt: DeletionReceipt) -> dict[str, int]:
        """Check a receipt again: its episodes are not in the store, and none of its probes is
        met in any table or in the bytes of the files (all zero: still gone)."""
        if not isinstance(receipt, DeletionReceipt):
            raise InputError("verify_deleted() takes a DeletionReceipt", field="receipt")
        back = len(self.store.episode_owners(builtins.list(receipt.episode_ids)))
        check = residue(receipt.probes, receipt.salt, self.store.text_rows(), self.store.data_files())
        return {"episodes_present": back, **check}

    # -- semantic memory ---------------------------------------------------------------------

    def _semantic(self) -> SemanticStore:
        if self._facts is None:
            raise StoreError("this store has no semantic memory (facts need the SQLite backend)")
        return self._facts

    def passages(
        self, content: str, *, role: str | None = None, name: str | None = None
    ) -> builtins.list[tuple[Passage, str | None]]:
        """How ``add`` indexes a message: its passages, each with the text embedded for it
        (speaker-prefixed) or ``None`` past the leading passages that get a vector."""
        dense = self.dense_passages_assistant if role == "assistant" else self.dense_passages
        return [
            (p, (f"{name}: {p.text}" if name else p.text) if i < dense else None)
            for i, p in enumerate(split_passages(content, self.passage_tokens))
        ]

    def consolidate(self, *, user_id: str) -> Report:
        """Turn the user's not-yet-consolidated episodes into facts, supersessions, segments."""
        user = self._known_user(user_id)
        facts = self._semantic()
        emb = self.embedder
        pending = facts.pending(user, BATCH)
        vecs = self.store.episode_vectors(user, emb.model_id, [r for r, _, _ in pending]) if emb and pending else {}
        # Surprise raises estimated importance, written with the batch's facts.
        surprise = self._surprise(pending, vecs) if vecs and not self.store.read_only else []
        return consolidation.run(facts, user, self.extractor, emb.model_id if emb else None, self._vectors_for, vecs,
                                 BATCH, analyses=self.analyses, importance=surprise, pending=pending)

    @staticmethod
    def _surprise(pending: Sequence[tuple[int, int, Episode]], vecs: dict[int, np.ndarray]) -> builtins.list[tuple[int, float]]:
        """The raised estimated importance of episodes that shifted the topic: surprise is the
        cosine distance from the mean of the session's earlier episodes in this batch."""
        updates: list[tuple[int, float]] = []
        centroids: dict[str | None, np.ndarray] = {}
        for rowid, _, ep in pending:
            v = vecs.get(rowid)
            if v is None or not np.any(v):
                continue
            c = centroids.get(ep.session_id)
            if c is not None:
                cos = float(v @ c / (np.linalg.norm(v) * np.linalg.norm(c) or 1.0))
                surprise = min(max(1.0 - cos, 0.0), 1.0)
                if surprise > 0.05:
                    updates.append((rowid, min(1.0, ep.importance + SURPRISE_WEIGHT * surprise)))
                centroids[ep.session_id] = c + v
            else:
                centroids[ep.session_id] = v.astype(np.float64).copy()
        return updates

    def facts(
        self,
        *,
        user_id: str,
        status: str | None = "current",
        subject: str | None = None,
        predicate: str | None = None,
        kinds: Sequence[str] = ("fact", "preference"),
    ) -> builtins.list[Fact]:
        """Facts known about a user's world; ``status=None`` includes superseded ones.

        ``kinds``: ``"fact"``, ``"preference"`` and/or ``"statement"`` — statements are the
        sentences people said about themselves, kept verbatim (``predicate="says"``).
        """
        if status not in (None, "current", "superseded", "retracted"):
            raise InputError("status must be current, superseded, retracted or None", field="status")
        if (
            isinstance(kinds, (str, bytes))
            or not isinstance(kinds, (list, tuple, set, frozenset))
            or not all(isinstance(k, str) and k in FACT_KINDS for k in kinds)
        ):
            raise InputError(f"kinds must be a list of {', '.join(sorted(FACT_KINDS))}", field="kinds")
        for name, value in (("subject", subject), ("predicate", predicate)):
            if value is not None:
                check_text(value, field_name=name, limit=MAX_ID_CHARS)
        return self._semantic().facts(
            self._known_user(user_id), status=status, subject=subject, predicate=predicate, kinds=tuple(kinds)
        )

    def query(
        self,
        *,
        user_id: str,
        subject: str | None = None,
        predicate: str | None = None,
        object: str | None = None,
        entity: str | None = None,
        between: tuple[str | datetime | None, str | datetime | None] | None = None,
        as_of: str | datetime | None = None,
        known_at: str | datetime | None = None,
        amounts: bool = False,
        limit: int = 1000,
    ) -> Rows:
        """Semantic memory as rows, each with ``text``, ``subject``, ``predicate``, ``object``,
        ``amount``/``unit``, ``valid_from``/``valid_to`` and the ``episodes`` it was told in.

        ``predicate``: one of :data:`engramdb.semantic.PREDICATES` or an alias ("purchased",
        "lives in"); ``object``: a pattern (words, ``*``, ``"a phrase"``, ``a|b``; see
        :mod:`engramdb.structured`); ``entity``: a name the subject or object holds (or an
        alias of it); ``between=(start, end)``: what began in that period; ``as_of``: what held
        in the world then (superseded facts included); ``known_at``: what memory held then;
        ``amounts``: only rows that carry an amount. Without ``as_of``/``known_at``, current
        facts. Statements (sentences said, ``predicate="says"``) are rows too, unless a typed
        fact of the same telling stands for them. The result is a list of :class:`Row` with
        ``total(unit)``, ``latest`` and ``earliest``; ``len()`` counts the things.
        """
        user = self._known_user(user_id)
        for name, value in (("subject", subject), ("object", object), ("entity", entity)):
            if value is not None:
                check_text(value, field_name=name, limit=MAX_ID_CHARS)
        pred = None
        if predicate is not None:
            check_text(predicate, field_name="predicate", limit=MAX_ID_CHARS)
            pred = predicate_of(predicate)
            if pred is None:
                raise InputError(
                    f"unknown predicate {predicate!r}; one of: {', '.join(sorted(PREDICATES))}", field="predicate"
                )
        _check_limit(limit)
        lo = hi = None
        if between is not None:
            if not isinstance(between, (tuple, list)) or len(between) != 2:
                raise InputError("between must be a pair (start, end)", field="between")
            lo = parse_timestamp(between[0], field="between") if between[0] is not None else None
            hi = parse_timestamp(between[1], field="between") if between[1] is not None else None
            if lo and hi and lo > hi:
                raise InputError("between: start is after end", field="between")
        t_valid = parse_timestamp(as_of, field="as_of") if as_of is not None else None
        t_known = parse_timestamp(known_at, field="known_at") if known_at is not None else None
        if not isinstance(amounts, bool):
            raise InputError("amounts must be true or false", field="amounts")
        status = None if (t_valid or t_known) else "current"
        found = self._semantic().facts(
            user, status=status, subject=subject, predicate=pred, kinds=tuple(sorted(FACT_KINDS)),
            object_like=pattern_words(object) if object else (), amounts_only=amounts,
        )
        names: builtins.list[str] = []
        if entity is not None:
            low = entity.strip().lower()
            for e in self._semantic().entities(user):
                if e.name.lower() == low or low in (a.lower() for a in e.aliases):
                    names = [e.name, *e.aliases]
                    break
            names = names or [entity.strip()]
        kept = [
            f for f in found
            if (object is None or object_matches(object, f.object))
            and (not names or any(object_matches(f'"{n}"', f"{f.subject} {f.object}") for n in names))
            and (lo is None and hi is None or structured.within(f, lo, hi))
            and (t_valid is None or structured.valid_at(f, t_valid))
            and (t_known is None or structured.known_at(f, t_known))
        ]
        return Rows(rows_of(kept)[:limit])

    def profile(self, *, user_id: str, subject: str | None = None) -> dict[str, dict[str, builtins.list[Fact]]]:
        """Current facts grouped by subject, then by category (identity, work, places…)."""
        out: dict[str, dict[str, builtins.list[Fact]]] = {}
        for f in self.facts(user_id=user_id, subject=subject):
            out.setdefault(f.subject, {}).setdefault(f.category, []).append(f)
        return out

    def history(self, fact_id: str, *, user_id: str | None = None) -> builtins.list[Fact]:
        """The chain of facts for the same slot (e.g. every place lived in), oldest first.

        With ``user_id``, a fact of another user is not found (adapters always pass it)."""
        check_text(fact_id, field_name="fact_id", limit=256)
        return self._semantic().history(fact_id, check_id(user_id, "user_id", required=False))

    def changes(self, *, user_id: str, limit: int = 100) -> builtins.list[Change]:
        """The consolidation log, newest first (each entry can be undone)."""
        return self._semantic().changes(self._known_user(user_id), check_count(limit, "limit", minimum=1, maximum=MAX_LIMIT))

    def undo(self, change_id: str, *, user_id: str | None = None) -> Change:
        """Revert one consolidation change (restores what it superseded, drops what it added).

        With ``user_id``, a change of another user is not found (adapters always pass it)."""
        check_text(change_id, field_name="change_id", limit=256)
        return self._semantic().undo(change_id, check_id(user_id, "user_id", required=False))

    def entities(self, *, user_id: str) -> builtins.list[Entity]:
        """People, places, organisations, pets, products and things the user's facts and
        episodes name (the memory graph's nodes; see :meth:`graph`)."""
        return self._semantic().entities(self._known_user(user_id))

    def summary(
        self, *, user_id: str, level: str = "person", query: str | None = None, limit: int = 50
    ) -> builtins.list[Summary]:
        """The summary tree (MemTree): ``level`` is ``person`` (what is known of each speaker),
        ``topic`` (what is named in several sessions), ``session`` or ``segment`` (runs of one
        session about one thing). Each node cites its ``children`` (keys one level down) and
        its ``episodes``. Extractive and offline; written by the LLM when the memory's
        extractor is one. Brought up to date on read: only the sessions that changed since the
        last read (new episodes, or a delete) are summarised again. ``query``: the nodes that
        share its words, best first (a recall key per level).
        """
        user = self._known_user(user_id)
        if level not in tree.LEVELS:
            raise InputError(f"level must be one of {', '.join(tree.LEVELS)}", field="level")
        _check_limit(limit)
        if query is not None:
            check_text(query, field_name="query", limit=MAX_QUERY_CHARS)
        facts = self._semantic()
        if level == "segment":
            nodes = [
                Summary("segment", s.id, f"segment of session {s.session_id or '(none)'}", s.summary, (), s.episodes,
                        s.last_seq, s.id)
                for s in facts.tree_segments(user)
            ]
        else:
            if not self.store.read_only:
                tree.refresh(facts, user, getattr(self.extractor, "summarise", None))
            nodes = facts.summaries(user, level)
            if level == "session":
                spans = facts.session_spans(user)  # sessions in the order they began
                order = {s: i for i, s in enumerate(sorted(spans, key=lambda s: (spans[s][0], s or "")))}
                nodes.sort(key=lambda n: order.get(n.key or None, len(order)))
            elif level == "topic":
                nodes.sort(key=lambda n: (-len(n.children), n.key))
        return (tree.rank(nodes, query) if query else nodes)[:limit]

    def places(self, *, user_id: str) -> builtins.list[Entity]:
        """The places of a user's memory, most told first: named places episodes mention, the
        common places people say they were at ("gym", "home") and places given when adding
        (``Entity.episodes`` counts the episodes at each; filter with ``timeline(place=…)``)."""
        return sorted((e for e in self.entities(user_id=user_id) if e.kind == "place"), key=lambda e: (-e.episodes, e.name))

    def related(self, episode_id: str, *, user_id: str | None = None, limit: int = 10) -> builtins.list[Related]:
        """Episodes linked to this one in the memory graph, strongest first, each with its
        reasons: the people, places and things both mention, a fact drawn from both, the same
        topic segment. With ``user_id``, an episode of another user is not found."""
        ep = self.get(episode_id, user_id=user_id)
        check_count(limit, "limit", minimum=1, maximum=MAX_LIMIT)
        return graphview.related(self.store, self._semantic(), ep.user_id, ep.id, limit)

    def graph(self, *, user_id: str, around: str | None = None, limit: int = 50) -> MemoryGraph:
        """The memory graph: entities (people, places, organisations, things; aliases merged),
        the episodes that mention them and the facts that name them, with each edge's reason.
        ``around``: one entity (by name or alias) and what its episodes mention; otherwise the
        ``limit`` entities most episodes mention (and at most ``limit`` links of each)."""
        user = self._known_user(user_id)
        check_count(limit, "limit", minimum=1, maximum=MAX_LIMIT)
        if around is not None:
            around = check_text(around, field_name="around", limit=256)
        g = graphview.graph(self.store, self._semantic(), user, around, limit)
        if around is not None and not g.nodes:
            raise NotFoundError(f"no entity named {around!r}", id=around)
        return g

    def rebuild_graph(self, *, user_id: str, progress: Callable[[int, int], None] | None = None) -> int:
        """Find every consolidated episode's mentions again and replace the user's graph edges
        with them, in one transaction (for a memory built before the graph, or after its rules
        changed). Returns the number of mention edges."""
        user = self._known_user(user_id)
        if self.store.read_only:
            raise StoreError(f"cannot rebuild the graph: {self.store.read_only}", reason=self.store.read_only)
        return consolidation.relink(self._semantic(), user, progress)

    def segments(self, *, user_id: str, session_id: str | None = None) -> builtins.list[Segment]:
        """Topic segments of a user's sessions, with extractive summaries."""
        return self._semantic().segments(self._known_user(user_id), check_id(session_id, "session_id", required=False))

    def why(self, hit: Hit) -> Explanation:
        """Where a hit came from: its episodes, what each signal gave, facts drawn from it."""
        if not isinstance(hit, Hit):
            raise InputError(f"why() explains a Hit from search(), not {type(hit).__name__}", field="hit")
        facts = self._semantic().facts(hit.episodes[0].user_id, status=None, episode_ids=hit.episode_ids)
        lines = [f"score {hit.score:.3f}: " + ", ".join(f"{k} {v:.2f}" for k, v in hit.signals.items() if v)]
        for ep in hit.episodes:
            lines.append(f"from episode {ep.id} ({ep.speaker or '?'}, {ep.timestamp:%Y-%m-%d %H:%M}, session {ep.session_id})")
        for f in facts:
            lines.append(f"fact {f.id} [{f.status}]: {f.text}")
        return Explanation(hit, tuple(facts), tuple(lines))

    # -- lifecycle: strength, tiers, recognition --------------------------------------------

    #: Uses are written when this many are waiting, or this many seconds after the last write.
    USE_BATCH = 256
    USE_SECONDS = 10.0

    def _record_use(self, user: str, hits: Sequence[Sequence[str]], now: str | datetime | None) -> None:
        """Record the episodes of ranked hits as used at ``now``, the hit at rank r with weight 1/r²."""
        at = (parse_timestamp(now, field="now") if now is not None else self._clock()).timestamp()
        with self._lock:
            waiting = self._uses.setdefault(user, {})
            for rank, ids in enumerate(hits[:USED_RANKS], 1):  # past rank 10 a use weighs < 1 %
                for eid in ids:
                    old = waiting.get(eid)
                    waiting[eid] = (at, max(1.0 / rank**2, old[1] if old else 0.0))
        self._flush_uses()

    def _flush_uses(self, force: bool = False) -> None:
        with self._lock:
            n = sum(len(v) for v in self._uses.values())
            if not n or (not force and n < self.USE_BATCH and time.monotonic() - self._uses_flushed < self.USE_SECONDS):
                return
            batches, self._uses = self._uses, {}
            self._uses_flushed = time.monotonic()
        if self.store.read_only:
            return
        for user, uses in batches.items():
            self.store.record_uses(user, uses)

    def reinforce(self, episode_ids: Sequence[str], *, user_id: str, at: str | datetime | None = None) -> int:
        """Record that these episodes were used (recalled and put to use) at ``at`` (default:
        now): each grows stronger, more so the weaker it had grown. Returns how many."""
        user = self._known_user(user_id)
        ids = _id_list(episode_ids)
        self._flush_uses(force=True)
        when = (parse_timestamp(at, field="at") if at is not None else self._clock()).timestamp()
        owners = self.store.episode_owners(ids)
        missing = [i for i in ids if owners.get(i) != user]
        if missing:
            raise NotFoundError(f"no episode {missing[0]!r} for user {user!r}", id=missing[0])
        return self.store.record_uses(user, {i: (when, 1.0) for i in ids})

    def set_policy(self, policy: Policy | None, *, user_id: str | None = None, namespace: str | None = None) -> None:
        """Keep ``policy`` for the user, or for a namespace: every user whose id starts with
        ``namespace + "/"`` (a served tenant's users are ``tenant/…``) and has no policy of their
        own; with neither, for every user without one. ``maintain`` applies it; ``None`` removes it."""
        if policy is not None and not isinstance(policy, Policy):
            raise InputError(f"policy must be a Policy, not {type(policy).__name__}", field="policy")
        self.store.set_policy(self._policy_keys(user_id, namespace)[0], None if policy is None else json.dumps(policy.to_dict()))

    def policy(self, *, user_id: str | None = None, namespace: str | None = None) -> Policy | None:
        """The policy ``maintain`` applies to the user (or to a namespace's users): their own, else
        the nearest enclosing namespace's (``a/b/*`` before ``a/*``), else the default, else None."""
        for key in self._policy_keys(user_id, namespace):
            text = self.store.get_policy(key)
            if text is not None:
                return Policy.from_dict(json.loads(text))
        return None

    @staticmethod
    def _policy_keys(user_id: str | None, namespace: str | None) -> builtins.list[str]:
        """Where a policy may be kept for a user or namespace, nearest first: the user's id,
        ``ns/*`` for each enclosing namespace, ``*``."""
        if user_id is not None and namespace is not None:
            raise InputError("give user_id or namespace, not both", field="namespace")
        if namespace is not None:
            ns = check_id(namespace, "namespace", required=True) or ""
            if "*" in ns or ns.endswith("/"):
                raise InputError("a namespace is a user-id prefix without '*' or a trailing '/'", field="namespace")
            own, path = [], ns
        elif user_id is not None:
            uid = check_id(user_id, "user_id", required=True) or ""
            own, path = [uid], uid.rsplit("/", 1)[0] if "/" in uid else ""
        else:
            return ["*"]
        keys = own
        while path:
            keys.append(path + "/*")
            path = path.rsplit("/", 1)[0] if "/" in path else ""
        return keys + ["*"]

    def maintain(
        self, *, user_id: str, policy: Policy | None = None, now: str | datetime | None = None, dry_run: bool = False
    ) -> MaintenanceReport:
        """Apply a policy (the given one, else the kept one): delete what is older than its TTL
        (verifiably, as :meth:`forget`), archive active memories weaker than ``archive_below``,
        then the weakest beyond ``max_active``. Archived memories are not recalled but are still
        recognised (:meth:`recognise`) and can be restored. Safe to run from cron."""
        user = self._known_user(user_id)
        if policy is not None and not isinstance(policy, Policy):
            raise InputError(f"policy must be a Policy, not {type(policy).__name__}", field="policy")
        if not isinstance(dry_run, bool):
            raise InputError("dry_run must be True or False", field="dry_run")
        at = parse_timestamp(now, field="now") if now is not None else self._clock()
        policy = policy or self.policy(user_id=user)
        self._flush_uses(force=True)
        ids, stability, last, _ = self.store.strengths(user)
        before = len(ids)
        if policy is None:
            return MaintenanceReport(user, None, active_before=before, active_after=before, dry_run=dry_run)
        deleted: tuple[str, ...] = ()
        receipt = None
        if policy.ttl_days is not None:
            cutoff = at.timestamp() - policy.ttl_days * DAY
            old = [e.id for e in self.store.iter_episodes(user) if e.timestamp.timestamp() < cutoff]
            if old and not dry_run:
                receipt = self.forget(user_id=user, episode_ids=old)
            deleted = tuple(old)
            gone = set(old)
            keep = [i not in gone for i in ids]
            ids = [i for i, k in zip(ids, keep) if k]
            stability, last = stability[keep], last[keep]
        elapsed = (at.timestamp() - last) / DAY if ids else np.zeros(0)
        weak = np.zeros(len(ids), dtype=bool)
        if policy.archive_below is not None:
            weak |= retrievability(elapsed, stability) < policy.archive_below
        if policy.max_active is not None and int((~weak).sum()) > policy.max_active:
            # Over capacity, what goes is what will be weakest ``horizon_days`` from now: a memory
            # used often outlasts one merely formed recently. Among equals the older goes first.
            lasting = retrievability(elapsed + policy.horizon_days, stability)
            order = np.lexsort((np.arange(len(ids)), lasting))
            alive = [i for i in order.tolist() if not weak[i]]
            weak[alive[: len(alive) - policy.max_active]] = True
        chosen = [i for i, w in zip(ids, weak.tolist()) if w]
        archived = chosen if dry_run else self.store.set_tier(user, chosen, "archived")
        model = self.store.embedder_model()
        if archived and not dry_run and model:
            self.store.make_codes(user, model)  # what recognition reads of them instead of the index
        return MaintenanceReport(
            user, policy, tuple(archived), deleted, before, len(ids) - len(archived), dry_run, receipt,
        )

    def restore(self, episode_ids: Sequence[str], *, user_id: str) -> builtins.list[str]:
        """Bring archived episodes back into recall (and count it as a use). Returns those restored."""
        user = self._known_user(user_id)
        ids = _id_list(episode_ids)
        owners = self.store.episode_owners(ids)
        missing = [i for i in ids if owners.get(i) != user]
        if missing:
            raise NotFoundError(f"no episode {missing[0]!r} for user {user!r}", id=missing[0])
        moved = self.store.set_tier(user, ids, "active")
        if moved:
            self.store.record_uses(user, {i: (self._clock().timestamp(), 1.0) for i in moved})
        return moved

    def recognise(
        self, query: str, *, user_id: str, limit: int = 5, threshold: float = 0.6, include_active: bool = False
    ) -> Recognition:
        """Have we talked about this, in what was archived? Reads the archived memories' gists (a
        few bytes each, not the recall index; ``include_active``: every memory's): ``known`` when
        the best holds at least ``threshold`` of the query's content words (idf-weighted); the
        best ``limit`` episodes point at when, and at what to :meth:`restore`."""
        if not isinstance(include_active, bool):
            raise InputError("include_active must be True or False", field="include_active")
        user = self._known_user(user_id)
        query = check_text(query, field_name="query", limit=MAX_QUERY_CHARS)
        _check_limit(limit)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise InputError("threshold must be a number in [0, 1]", field="threshold")
        version = self.store.user_version(user)
        key = f"{include_active}:{user}"
        with self._lock:
            cached = self._recognition.get(key)
        if cached is None or cached[0] != version:
            rowids, gists, codes = self.store.gists(user, archived_only=not include_active)
            cached = (version, rowids, gists, codes)
            with self._lock:
                self._recognition[key] = cached
        _, rowids, gists, codes = cached
        scores = recognition_scores(query, gists)
        qvec = self._recall.query_vector(query) if any(c is not None for c in codes) else None
        if qvec is not None:  # what the words and the gist of the meaning both say
            scores = RECOGNITION_MIX * scores + (1 - RECOGNITION_MIX) * code_similarity(qvec, codes)
        if not scores.size:
            return Recognition(False, 0.0)
        top = [int(i) for i in np.argsort(-scores, kind="stable")[:limit] if scores[i] > 0]
        found = self.store.episodes_by_rowid([rowids[i] for i in top])
        pairs = [(found[rowids[i]], float(scores[i])) for i in top if rowids[i] in found]
        best = pairs[0][1] if pairs else 0.0
        return Recognition(best >= threshold, best, tuple(e for e, _ in pairs), tuple(sc for _, sc in pairs))

    # -- working memory ----------------------------------------------------------------------

    #: A block's size limit unless given (characters).
    CORE_LIMIT = 2000
    _LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

    def _core_label(self, label: object) -> str:
        if not isinstance(label, str) or not self._LABEL.match(label):
            raise InputError("a block label is 1-64 letters, digits, '_', '.' or '-'", field="label")
        return label

    def core(self, *, user_id: str) -> dict[str, CoreBlock]:
        """The user's working memory: label -> block (empty if none was written)."""
        user = check_id(user_id, "user_id", required=True)
        assert user is not None
        return {r[0]: CoreBlock(r[0], r[1], int(r[2]), datetime.fromisoformat(r[3])) for r in self.store.core_blocks(user)}

    def _core_edit(self, user_id: str, label: str, op: str, edit: Callable[[str | None, int | None], tuple[str | None, int]]) -> CoreBlock | None:
        user = check_id(user_id, "user_id", required=True)
        assert user is not None
        self.store.core_write(user, self._core_label(label), op, edit)
        return self.core(user_id=user).get(label)

    def _fits(self, value: str, limit: int, label: str) -> str:
        if len(value) > limit:
            raise LimitError(
                f"block {label!r} would hold {len(value):,} characters; its limit is {limit:,} (replace or shorten)",
                field="value", limit=limit,
            )
        return value

    def core_set(self, label: str, value: str, *, user_id: str, limit: int | None = None) -> CoreBlock:
        """Write a block whole (creating it); ``limit``: its size in characters (kept if omitted)."""
        value = check_text(value, field_name="value", limit=100_000, allow_empty=True)
        if limit is not None:
            check_count(limit, "limit", minimum=1, maximum=100_000)

        def edit(old: str | None, old_limit: int | None) -> tuple[str | None, int]:
            lim = limit or old_limit or self.CORE_LIMIT
            return self._fits(value, lim, label), lim

        block = self._core_edit(user_id, label, "set", edit)
        assert block is not None
        return block

    def core_append(self, label: str, text: str, *, user_id: str) -> CoreBlock:
        """Add a line to a block (creating it)."""
        text = check_text(text, field_name="text", limit=100_000)

        def edit(old: str | None, old_limit: int | None) -> tuple[str | None, int]:
            lim = old_limit or self.CORE_LIMIT
            return self._fits(f"{old}\n{text}" if old else text, lim, label), lim

        block = self._core_edit(user_id, label, "append", edit)
        assert block is not None
        return block

    def core_replace(self, label: str, old: str, new: str, *, user_id: str) -> CoreBlock:
        """Replace the text ``old`` (which must occur in the block) with ``new``."""
        old = check_text(old, field_name="old", limit=100_000)
        new = check_text(new, field_name="new", limit=100_000, allow_empty=True)

        def edit(value: str | None, old_limit: int | None) -> tuple[str | None, int]:
            if value is None:
                raise NotFoundError(f"no block {label!r}", label=label)
            if old not in value:
                raise InputError(f"{old!r} is not in block {label!r}", field="old")
            lim = old_limit or self.CORE_LIMIT
            return self._fits(value.replace(old, new, 1), lim, label), lim

        block = self._core_edit(user_id, label, "replace", edit)
        assert block is not None
        return block

    def core_delete(self, label: str, *, user_id: str) -> None:
        """Remove a block (its history stays, and the removal can be undone)."""

        def edit(value: str | None, old_limit: int | None) -> tuple[str | None, int]:
            if value is None:
                raise NotFoundError(f"no block {label!r}", label=label)
            return None, old_limit or self.CORE_LIMIT

        self._core_edit(user_id, label, "delete", edit)

    def core_history(self, *, user_id: str, label: str | None = None, limit: int = 50) -> builtins.list[CoreChange]:
        """Edits of the user's blocks (of one ``label``), newest first."""
        user = check_id(user_id, "user_id", required=True)
        assert user is not None
        check_count(limit, "limit", minimum=1, maximum=MAX_LIMIT)
        rows = self.store.core_changes(user, None if label is None else self._core_label(label), limit)
        return [
            CoreChange(r[0], r[1], r[2], r[3], r[4], int(r[5]), datetime.fromisoformat(r[6]),
                       datetime.fromisoformat(r[7]) if r[7] else None)
            for r in rows
        ]

    def core_undo(self, change_id: str, *, user_id: str) -> CoreBlock | None:
        """Revert one edit: the block goes back to its text before it (None: it did not exist)."""
        user = check_id(user_id, "user_id", required=True)
        assert user is not None
        check_text(change_id, field_name="change_id", limit=256)
        found = self.store.core_mark_undone(user, change_id)
        if found is None:
            raise NotFoundError(f"no change {change_id!r} to undo", id=change_id)
        label, before, _ = found

        def edit(value: str | None, old_limit: int | None) -> tuple[str | None, int]:
            return before, old_limit or self.CORE_LIMIT

        return self._core_edit(user, label, "undo", edit)

    # -- quarantine --------------------------------------------------------------------------

    def quarantined(self, *, user_id: str, limit: int = 100) -> builtins.list[Flagged]:
        """The user's episodes held back for review, oldest first, with why each was flagged."""
        user = self._known_user(user_id)
        return [Flagged(*row) for row in self.store.flagged(user, check_count(limit, "limit", minimum=1, maximum=MAX_LIMIT))]

    def release(self, episode_id: str, *, user_id: str) -> Episode:
        """A reviewer's "this is fine": the episode is recalled again, and its facts are drawn."""
        user = self._known_user(user_id)
        check_text(episode_id, field_name="episode_id", limit=256)
        found = self.store.set_status(user, episode_id, "active")
        if found is None:
            raise NotFoundError(f"no episode {episode_id!r} for user {user!r}", id=episode_id)
        rowid, ep = found
        facts = self._facts
        if facts is not None and ep.seq <= facts.last_seq(user) and not facts.facts(user, status=None, episode_ids=[ep.id]):
            # Consolidation passed it while it was quarantined (no facts drawn): draw them now.
            emb = self.embedder
            consolidation.replay(
                facts, user, self.extractor, emb.model_id if emb else None, self._vectors_for, [(rowid, ep.seq, ep)]
            )
        return ep

    def quarantine(self, episode_id: str, *, user_id: str) -> Episode:
        """Hold an episode back by hand (reason ``manual``): not recalled, its facts not known,
        until :meth:`release`."""
        user = self._known_user(user_id)
        check_text(episode_id, field_name="episode_id", limit=256)
        found = self.store.set_status(user, episode_id, "quarantined")
        if found is None:
            raise NotFoundError(f"no episode {episode_id!r} for user {user!r}", id=episode_id)
        return found[1]

    # -- reads -------------------------------------------------------------------------------

    def get(self, episode_id: str, *, user_id: str | None = None) -> Episode:
        """One episode by id; with ``user_id``, only if it belongs to that user."""
        check_text(episode_id, field_name="episode_id", limit=256)
        check_id(user_id, "user_id", required=False)
        ep = self.store.get_episode(episode_id)
        if ep is None or (user_id is not None and ep.user_id != user_id):
            raise NotFoundError(f"no episode {episode_id!r}", id=episode_id)
        return ep

    def list(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Episode]:
        """A user's episodes in the order they were added."""
        user = self._known_user(user_id)
        check_id(session_id, "session_id", required=False)
        check_id(agent_id, "agent_id", required=False)
        if limit is not None:
            check_count(limit, "limit", minimum=0, maximum=2**62)
        check_count(offset, "offset", minimum=0, maximum=2**62)
        return self.store.list_episodes(user, session_id=session_id, agent_id=agent_id, limit=limit, offset=offset)

    def users(self) -> builtins.list[str]:
        return self.store.users()

    def export(self, *, user_id: str | None = None) -> Iterator[Episode]:
        """Every episode (of one user, or all), oldest first — for backups and inspection."""
        if user_id is not None:
            self._known_user(user_id)
        return self.store.iter_episodes(user_id)

    def stats(self, *, user_id: str | None = None) -> StoreStats:
        if user_id is not None:
            self._known_user(user_id)
        s = self.store.stats(user_id)
        loaded, spec = self._embedder.loaded, self._embedder.spec
        # this memory's model if it has one, else the models the file's vectors were made with
        name = loaded.model_id if loaded else (str(spec) if spec is not None else s.embedder)
        return StoreStats(**{**s.to_dict(), "embedder": name})

    def _known_user(self, user_id: str) -> str:
        user = check_id(user_id, "user_id", required=True)
        assert user is not None
        if self.store.user_version(user) is None:
            raise UnknownUserError(f"no memories for user {user!r} in this store", user_id=user)
        return user

    # -- recall ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        now: str | datetime | None = None,
        as_of: str | datetime | None = None,
        options: RecallOptions | None = None,
        include_quarantined: bool = False,
        include_archived: bool = False,
    ) -> Hits:
        """Recall what bears on ``query``, best first.

        ``now`` is when the question is asked: the reference for its time expressions
        ("last week", "most recent"); ``as_of`` sees memory as it was known then (episodes
        recorded later are hidden).
        ``options`` overrides the memory's recall options for this call (ablations).
        ``include_quarantined``: recall quarantined episodes too (for a reviewer; never for a prompt);
        ``include_archived``: archived ones too (see :meth:`maintain`).
        With ``track_use``, the episodes of the hits returned are recorded as used at ``now``.
        The result is a list of :class:`Hit` with ``relevance``: whether anything recalled bears
        on the question at all (``hits.relevant``, ``hits.confidence``).
        """
        hits = self._search(query, user_id, limit, now, as_of, options, include_quarantined, include_archived)
        if self.track_use and hits:
            self._record_use(hits[0].episodes[0].user_id, [h.episode_ids for h in hits], now)
        return hits

    def _search(
        self, query: str, user_id: str, limit: int, now: str | datetime | None, as_of: str | datetime | None,
        options: RecallOptions | None, include_quarantined: bool = False, include_archived: bool = False,
    ) -> Hits:
        for name, flag in (("include_quarantined", include_quarantined), ("include_archived", include_archived)):
            if not isinstance(flag, bool):
                raise InputError(f"{name} must be True or False", field=name)
        user = self._known_user(user_id)
        query = check_text(query, field_name="query", limit=MAX_QUERY_CHARS)
        _check_limit(limit)
        asked = parse_timestamp(now, field="now") if now is not None else self._clock()
        if (options or self.recall_options).weights.dense > 0:
            emb = self.embedder
            self._check_model(emb.model_id if emb else None)
        as_of_ts = parse_timestamp(as_of, field="as_of").timestamp() if as_of is not None else None
        return self._recall.search(
            user, query, limit=limit, asked=asked, as_of_ts=as_of_ts, options=options or self.recall_options,
            include_hidden=include_quarantined, include_archived=include_archived,
        )

    def context(
        self,
        query: str,
        *,
        user_id: str,
        budget_tokens: int = 1000,
        now: str | datetime | None = None,
        as_of: str | datetime | None = None,
        group: str = "auto",
    ) -> Context:
        """Recall packed into at most ``budget_tokens`` tokens: a block for an LLM prompt.

        Lines are deduplicated, ordered oldest first and cite date and speaker. The result
        is a ``str`` that also carries ``episode_ids``, ``tokens`` and ``hits``. For a question
        about every instance of something ("how many…", "how much in total…"), the instances
        recall gathered come first, their lines marked ``#1``…``#n`` under a line that says how
        many were found (see :attr:`Hits.instances`).

        ``group``: ``"time"`` — one list, oldest first; ``"entity"`` — the lines in groups by
        whom or what they are about (their speaker, the people, places and things they name),
        the question's first, oldest first in each, an entity heading a group when two lines
        or more are about it; ``"auto"`` (default) — so grouped when the hits come from two
        sessions or more and an entity the question names heads a group that leaves other
        lines apart (the pieces of a question spread over conversations), never for a "how
        many…" question; otherwise by time. Grouping changes the order, not which lines are shown.
        """
        if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1:
            raise LimitError("budget_tokens must be a positive integer", field="budget_tokens")
        if group not in ("auto", "time", "entity"):
            raise InputError("group must be 'auto', 'time' or 'entity'", field="group")
        limit = min(MAX_LIMIT, max(10, budget_tokens // 25))
        hits = self._search(query, user_id, limit, now, as_of, None)
        opts = self.recall_options
        core = self.core(user_id=user_id)
        head = ""
        if core:  # working memory comes first, always, inside the budget
            head = "Core memory:\n" + "\n".join(f"[{b.label}] {b.value}" for b in core.values())
            if count_tokens(head) >= budget_tokens:
                head = ""
        rest = budget_tokens - (count_tokens(head) + 1 if head else 0)
        note = ""
        if hits and not hits.relevant:
            # Nothing seems to bear on the question: say so first, so the model does not take
            # the closest memories for an answer (and with abstain_share < 1 show fewer of them).
            note = NOT_RELEVANT.format(confidence=hits.confidence)
            if count_tokens(note) + 1 < rest:
                rest = max(0, int((rest - count_tokens(note) - 1) * opts.abstain_share))
            else:
                note = ""
        # "how many…?": the instances gathered come first, marked, with how many were found
        lead = instances_header(hits.aggregate or "", len(hits.instances)) if hits.instances else ""
        about, first, led = self._about(query, hits, group, bool(lead))
        ctx = pack(hits, rest, opts.context_whole_hits, opts.context_whole_share, lead, about, first, led)
        fit = sum(1 for h in ctx.hits if "instance" in h.signals)
        if lead and fit < len(hits.instances):  # say so when the budget holds fewer
            lead += f" only {fit} fit here."
            ctx = pack(hits, rest, opts.context_whole_hits, opts.context_whole_share, lead, about, first, led)
        if note:
            text = note + ("\n" + str(ctx) if str(ctx) else "")
            ctx = Context(text, ctx.episode_ids, count_tokens(text), ctx.hits)
        if head:
            text = head + ("\n\n" + str(ctx) if str(ctx) else "")
            ctx = Context(text, ctx.episode_ids, count_tokens(text), ctx.hits)
        if self.track_use and ctx.episode_ids:
            shown = set(ctx.episode_ids)
            self._record_use(hits[0].episodes[0].user_id, [[e for e in h.episode_ids if e in shown] for h in ctx.hits], now)
        return ctx

    def _about(
        self, query: str, hits: Hits, group: str, aggregate: bool
    ) -> tuple[dict[str, builtins.list[str]] | None, builtins.list[str], bool]:
        """What :func:`pack` needs to group a context (see :meth:`context`): episode id -> whom or
        what it is about (its speaker, named, and the entities it names: a speaker's short name
        counts as theirs), the ones the question names, and whether one of those must lead;
        ``None``: the context stays in time order."""
        if group == "time" or self._facts is None or not hits:
            return None, [], False
        if group == "auto" and (aggregate or len({ep.session_id for h in hits for ep in h.episodes}) < 2):
            return None, [], False
        user = hits[0].episodes[0].user_id
        speakers = dict(self._speakers_of(user))
        speakers.update({ep.name.lower(): ep.name for h in hits for ep in h.episodes if ep.name})

        def person(name: str) -> str | None:
            low = name.lower()
            if low in speakers:
                return speakers[low]
            whole = [s for s in speakers if len(low) >= 3 and len(s) > len(low) and s.startswith(low)]
            return speakers[whole[0]] if len(whole) == 1 else None  # "Mel" -> "Melanie"

        asked = query.lower()
        first: dict[str, None] = {}

        def named(name: str, said: Sequence[str]) -> None:
            if any(re.search(rf"(?<!\w){re.escape(a.lower())}(?!\w)", asked) for a in said):
                first[name] = None

        about: dict[str, builtins.list[str]] = {}
        for h in hits:
            for ep in h.episodes:
                if ep.name:
                    about.setdefault(ep.id, []).append(ep.name)
                    named(ep.name, [ep.name])
        for eid, ents in self._facts.episode_entities(user, [ep.id for h in hits for ep in h.episodes]).items():
            for name, _kind, aliases in ents:
                said = [name, *aliases]
                canon = next((p for p in map(person, said) if p), name)
                if canon not in about.setdefault(eid, []):
                    about[eid].append(canon)
                named(canon, said)
        return about, list(first), group == "auto"

    def _speakers_of(self, user: str) -> dict[str, str]:
        """The names the user's speakers have had (lower case -> as written): kept, and brought
        up to date with the episodes added since (a user deleted and made again starts over)."""
        assert self._facts is not None
        state = self._facts.entity_state(user)
        made = (state[0], state[1]) if state is not None else None
        with self._lock:
            kept = self._speakers.get(user)
        after, names = (kept[1], dict(kept[2])) if kept is not None and kept[0] == made else (0, {})
        new, last = self._facts.speakers_after(user, after)
        names.update((n.lower(), n) for n in new)
        with self._lock:
            self._speakers.pop(user, None)
            self._speakers[user] = (made, last, names)
            while len(self._speakers) > SPEAKERS_KEPT:  # the users seen longest ago go first
                del self._speakers[next(iter(self._speakers))]
        return names

    def timeline(
        self,
        *,
        user_id: str,
        query: str | None = None,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        limit: int = 100,
        now: str | datetime | None = None,
        place: str | None = None,
    ) -> builtins.list[Episode]:
        """Episodes in chronological order of what they tell (``Episode.event_time``).

        With ``query``: the episodes recall finds for it, put in time order — for "what came
        first?" and "what happened before/after?". ``start``/``end`` bound the period (an
        episode counts if it was said, or mentions a time, inside it). ``place``: only the
        episodes at that place — given it when added, or tagged with it by consolidation (a
        named place they mention, or "at the gym", "back home"); see :meth:`places`.
        """
        user = self._known_user(user_id)
        _check_limit(limit)
        if place is not None:
            check_text(place, field_name="place", limit=MAX_ID_CHARS)
        lo = parse_timestamp(start, field="start") if start is not None else None
        hi = parse_timestamp(end, field="end") if end is not None else None
        if lo and hi and lo > hi:
            raise InputError("start is after end", field="start")
        if query is None:
            return self.store.timeline(user, lo.timestamp() if lo else None, hi.timestamp() if hi else None, limit, place)
        eps = [e for h in self.search(query, user_id=user, limit=limit, now=now) for e in h.episodes]
        if place is not None:
            at = self._semantic().placed_episodes(user, place)
            eps = [e for e in eps if e.id in at]

        def within(e: Episode) -> bool:
            spans = [(e.timestamp.date(), e.timestamp.date())] + [(t.start, t.end) for t in e.times]
            return any((lo is None or b >= lo.date()) and (hi is None or a <= hi.date()) for a, b in spans)

        return sorted((e for e in eps if within(e)), key=lambda e: (e.event_time, e.seq))
