"""engramdb — long-term memory for LLM agents: episodic memory with hybrid recall, offline."""

from .encode.embedders import Embedder, HashEmbedder, OnnxEmbedder, SentenceTransformersEmbedder, default_embedder
from .errors import (
    ContentError,
    DatasetError,
    EmbedderError,
    EngramError,
    InputError,
    LimitError,
    LLMError,
    MigrationError,
    MissingDependencyError,
    NotFoundError,
    ScopeError,
    StoreError,
    TimestampError,
    UnknownUserError,
)
from .memory import Memory
from .model import Episode, Hit, StoreStats
from .plugins import hookimpl
from .recall.fusion import Weights
from .recall.packing import Context, pack
from .recall.search import RecallOptions

__version__ = "0.1.0"

__all__ = [
    "ContentError",
    "Context",
    "DatasetError",
    "Embedder",
    "EmbedderError",
    "EngramError",
    "Episode",
    "HashEmbedder",
    "Hit",
    "InputError",
    "LLMError",
    "LimitError",
    "Memory",
    "MigrationError",
    "MissingDependencyError",
    "NotFoundError",
    "OnnxEmbedder",
    "RecallOptions",
    "ScopeError",
    "SentenceTransformersEmbedder",
    "StoreError",
    "StoreStats",
    "TimestampError",
    "UnknownUserError",
    "Weights",
    "__version__",
    "default_embedder",
    "hookimpl",
    "pack",
]
