"""The in-memory BM25 index: pure logic, checked against SQLite FTS5's own bm25()."""

from __future__ import annotations

import random
import sqlite3

import numpy as np
import pytest

from engramdb.index.lexical import LexicalIndex, decode_terms, encode_terms, query_keys, term_key

DOCS = [
    "I adopted a kitten from the shelter last week",
    "The shelter runs an adoption day every Saturday",
    "My sister is running a marathon in Berlin",
    "We ran into my old teacher at the farmers market",
    "Caroline went to the LGBTQ support group yesterday",
    "The support group meets every Tuesday evening at the community centre",
    "Running shoes: the Pegasus, then the Vaporfly, now the Pegasus again",
    "Café au lait at the café near the station",
]
QUERIES = ["kitten shelter", "running marathon", "support group Tuesday", "Pegasus shoes", "cafe station", "adoption"]


def _index(docs: list[str], speakers: list[str] | None = None) -> LexicalIndex:
    idx = LexicalIndex()
    idx.append([encode_terms(d) for d in docs], speakers or [""] * len(docs))
    return idx


def test_scores_match_sqlite_fts5_bm25() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", [(i + 1, d) for i, d in enumerate(DOCS)])
    idx = _index(DOCS)
    for q in QUERIES:
        terms = " OR ".join(f'"{w}"' for w in q.lower().replace("é", "e").split())
        want = dict(db.execute("SELECT rowid - 1, -bm25(t) FROM t WHERE t MATCH ?", (terms,)).fetchall())
        got = idx.scores(query_keys(q))
        assert set(np.flatnonzero(got > 0).tolist()) == set(want)
        for doc, score in want.items():
            assert got[doc] == pytest.approx(score, rel=1e-4), (q, doc)


def test_stems_and_accents_match_across_forms() -> None:
    idx = _index(DOCS)
    positions, _ = idx.search(query_keys("runs"), 10)
    assert set(positions.tolist()) == {1, 2, 6}  # runs, running, Running (not "ran": Porter keeps it)
    positions, _ = idx.search(query_keys("CAFE"), 10)
    assert positions.tolist() == [7]


def test_stopword_only_and_empty_queries_match_nothing() -> None:
    idx = _index(DOCS)
    for q in ("the a of", "", "???"):
        positions, scores = idx.search(query_keys(q), 10)
        assert positions.size == 0 and scores.size == 0


def test_search_is_best_first_and_cut_to_k() -> None:
    idx = _index(DOCS)
    keys = query_keys("shelter adoption kitten support")
    positions, scores = idx.search(keys, 2)
    full = idx.scores(keys)
    assert positions.tolist() == sorted(np.flatnonzero(full > 0).tolist(), key=lambda i: (-full[i], i))[:2]
    assert scores.tolist() == pytest.approx(full[positions].tolist())


def test_ties_at_the_cut_keep_the_earliest_documents() -> None:
    """Documents scoring alike at the k-th place are kept earliest first, whatever the layout."""
    texts = ["the kitten slept" if i % 7 else "the kitten slept kitten kitten" for i in range(200)]
    idx = _index(texts)
    full = idx.scores(query_keys("kitten"))
    for k in (5, 40, 66, 150):
        positions, _ = idx.search(query_keys("kitten"), k)
        assert positions.tolist() == sorted(range(200), key=lambda i: (-full[i], i))[:k]


def test_speaker_names_count_at_half_weight() -> None:
    idx = _index(["hello there", "hello there", "nice weather"], ["Melanie", "Caroline", "Caroline"])
    s = idx.scores(query_keys("Melanie"))
    assert s[0] > 0 and s[1] == 0 and s[2] == 0
    text_only = _index(["hello there melanie", "hello there", "nice weather"])
    # the same term in the text scores more than in the speaker's name (weight 0.5 there)
    assert text_only.scores(query_keys("Melanie"))[0] > s[0]


def test_appending_in_pieces_equals_building_at_once() -> None:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 30))) for _ in range(2000)]
    once = _index(docs)
    pieces = LexicalIndex()
    pieces.merge_at = 500  # force several merges and a live tail
    for i in range(0, len(docs), 37):
        chunk = docs[i : i + 37]
        pieces.append([encode_terms(d) for d in chunk], [""] * len(chunk))
    assert pieces.tail_size > 0  # some postings are still in the unsorted tail
    for q in ("w1 w2", "w299", "w5 w17 w123", "w42"):
        np.testing.assert_allclose(pieces.scores(query_keys(q)), once.scores(query_keys(q)), rtol=1e-6)


def test_saved_postings_are_found_through_the_distinct_terms_and_open_as_saved() -> None:
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(200)]
    docs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 25))) for _ in range(900)]
    index = LexicalIndex()
    index.merge_at = 300
    for i in range(0, len(docs), 50):  # a live tail, merged into the saved postings
        index.append([encode_terms(d) for d in docs[i : i + 50]], ["Ana"] * len(docs[i : i + 50]))
    arrays, meta = index.state()
    keys, starts = arrays["keys"], arrays["starts"]
    assert "term" not in arrays and keys.size == len({k for d in docs for k in query_keys(d)})
    assert (np.diff(keys) > 0).all() and starts[0] == 0 and starts[-1] == arrays["doc"].size
    assert (np.diff(starts) > 0).all()  # every key has postings
    # as snapshot format 5 and before saved them: a term key per posting
    per_posting = {**{k: v for k, v in arrays.items() if k not in ("keys", "starts")},
                   "term": np.repeat(keys, np.diff(starts))}
    for opened in (LexicalIndex.from_state(arrays, meta), LexicalIndex.from_state(per_posting, meta)):
        for q in ("w1 w2", "w199", "w5 w17 w123 ana", "zzz", "w0"):
            np.testing.assert_array_equal(opened.scores(query_keys(q)), index.scores(query_keys(q)))
            for got, want in zip(opened.search(query_keys(q), 10), index.search(query_keys(q), 10)):
                np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.sort(opened.documents(query_keys(q)[0]) if query_keys(q) else []),
                                          np.sort(index.documents(query_keys(q)[0]) if query_keys(q) else []))


def test_search_between_appends_equals_a_fresh_index() -> None:
    # a search reads only the documents its terms touch when they are few, and keeps each
    # named speaker's documents: neither may change what it finds as documents arrive
    rng = random.Random(11)
    vocab = [f"w{i}" for i in range(400)] + ["common"] * 40
    names = ["Ana Lima", "Ben", "Carla Ben", "Dev"]
    docs, speakers = [], []
    grown = LexicalIndex()
    for step in range(12):
        chunk = [" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 20))) for _ in range(rng.randint(50, 400))]
        who = [rng.choice(names) for _ in chunk]
        grown.append([encode_terms(d) for d in chunk], who)
        docs += chunk
        speakers += who
        fresh = _index(docs, speakers)
        for q in ("w1 w2", "ben w7", "ana common", "common", "carla w9 w10 w11", "dev w399", "zzz"):
            for k in (1, 10, 100000):
                got, scores = grown.search(query_keys(q), k)
                want, want_scores = fresh.search(query_keys(q), k)
                assert got.tolist() == want.tolist(), (q, k)
                np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
                full = fresh.scores(query_keys(q))
                best = sorted(np.flatnonzero(full > 0).tolist(), key=lambda i: (-full[i], i))[:k]
                assert scores.tolist() == full[best].tolist()
                assert got.tolist() == best  # of a tie at the cut, the earliest


def test_search_skips_common_terms_yet_ranks_as_every_score(monkeypatch: pytest.MonkeyPatch) -> None:
    """Top-k search reads a term only for the documents that can still reach the k-th best
    score (MaxScore, per document): its results are still exactly the best k of every document's
    score, ties earliest first, as documents arrive and the mean length grows and shrinks."""
    from engramdb.index import lexical

    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(2000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf: a few words in most documents
    names = ["Ana Lima", "Ben", "w3 Carla", "Dev"]  # a name holding a word of the texts
    narrowed = []  # terms read for the documents found only
    real_parts = lexical._Term.parts

    def spy(self, view, least=None, found=None):  # type: ignore[no-untyped-def]
        if least is not None:
            narrowed.append(1)
        return real_parts(self, view, least, found)

    monkeypatch.setattr(lexical._Term, "parts", spy)
    grown = LexicalIndex()
    grown.merge_at = 3000  # merges and a live tail along the way
    for step in range(10):
        longest = (6, 40, 12, 60, 8, 30, 50, 5, 25, 45)[step]  # the mean length goes up and down
        chunk = [" ".join(rng.choices(vocab, weights, k=rng.randint(1, longest))) for _ in range(rng.randint(300, 900))]
        grown.append([encode_terms(d) for d in chunk], [rng.choice(names) for _ in chunk])
        for q in ("w0 w1 w1500", "w3 w2 w700 w701", "ben w0 w5 w1999", "w1 w0", "w900 w2 w4 w6 w8", "carla w10 w0"):
            for k in (1, 10, 50, 400):
                got, scores = grown.search(query_keys(q), k)
                full = grown.scores(query_keys(q))
                best = sorted(np.flatnonzero(full > 0).tolist(), key=lambda i: (-full[i], i))[:k]
                assert got.tolist() == best, (step, q, k)
                assert scores.tolist() == full[best].tolist()
    assert len(narrowed) > 50  # terms were read for the documents that could rank only


def test_term_blobs_round_trip() -> None:
    blobs = [encode_terms("the cat sat on the cat"), encode_terms(""), encode_terms("Dogs, dogs and DOGS!")]
    doc, keys, counts, lengths = decode_terms(blobs)
    assert lengths.tolist() == [6, 0, 4]
    got = {(int(d), int(k)): int(c) for d, k, c in zip(doc, keys, counts)}
    assert got == {(0, term_key("cat")): 2, (0, term_key("sat")): 1, (2, term_key("dogs")): 3}


def test_queries_during_appends_never_tear() -> None:
    import threading

    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(50)]
    docs = [" ".join(rng.choice(vocab) for _ in range(10)) for _ in range(3000)]
    idx = LexicalIndex()
    idx.merge_at = 200
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(300):
                s = idx.scores(query_keys("w1 w2 w3"))
                assert s.shape[0] <= len(docs) and (s >= 0).all()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(0, len(docs), 10):
        idx.append([encode_terms(d) for d in docs[i : i + 10]], [""] * 10)
    t.join()
    assert not errors
    np.testing.assert_allclose(idx.scores(query_keys("w1 w2 w3")), _index(docs).scores(query_keys("w1 w2 w3")), rtol=1e-6)


def test_merging_the_tail_equals_sorting_every_posting_again() -> None:
    from engramdb.index.lexical import _directory, _merge, _Sorted

    rng = np.random.default_rng(3)
    for case in range(40):
        n_old, n_tail = int(rng.integers(0, 300)), int(rng.integers(0, 120))
        vocab = rng.integers(0, 1 << 40, size=int(rng.integers(1, 60)))
        old_term = np.sort(rng.choice(vocab, size=n_old))
        old_doc = np.zeros(n_old, dtype=np.int32)
        for key in np.unique(old_term):  # documents ascend within a term
            at = old_term == key
            old_doc[at] = np.sort(rng.choice(1000, size=int(at.sum()), replace=False))
        old = _Sorted(*_directory(old_term), old_doc, rng.integers(1, 9, size=n_old).astype(np.uint16))
        tail = []
        for part in np.array_split(np.arange(n_tail), int(rng.integers(1, 4))):  # appends, later documents
            docs = np.sort(rng.integers(1000 + 100 * case, 2000 + 100 * case, size=part.size)).astype(np.int32)
            tail.append((rng.choice(np.concatenate([vocab, rng.integers(0, 1 << 40, size=5)]), size=part.size),
                         docs, rng.integers(1, 9, size=part.size).astype(np.uint16)))
        got = _merge(old, tuple(tail))
        term = np.concatenate([old_term, *(t for t, _, _ in tail)])
        order = np.argsort(term, kind="stable")
        keys, starts = _directory(term[order])
        doc = np.concatenate([old_doc, *(d for _, d, _ in tail)])[order]
        tf = np.concatenate([old.tf, *(f for _, _, f in tail)])[order]
        for a, b in zip(got, (keys, starts, doc, tf)):
            np.testing.assert_array_equal(a, b)
