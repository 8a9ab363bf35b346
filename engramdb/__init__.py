"""engramdb — long-term memory for LLM agents: episodic memory with hybrid recall, offline."""

from .consolidate.extract import Extractor, RuleExtractor
from .consolidate.llm import LLMExtractor
from .encode.embedders import (
    Embedder,
    HashEmbedder,
    OnnxEmbedder,
    SentenceTransformersEmbedder,
    default_embedder,
)
from .errors import (
    AuthError,
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
from .llm.client import OpenAICompatible
from .forget import DeletionReceipt
from .guard import Guard, Verdict
from .lifecycle import MaintenanceReport, Policy, Recognition
from .memory import Memory
from .model import Change, Entity, Episode, Explanation, Fact, Flagged, GraphEdge, GraphNode, Hit, Hits, MemoryGraph, Related, Relevance, Segment, StoreStats
from .plugins import hookimpl
from .recall.fusion import Weights
from .recall.packing import Context, pack
from .recall.search import RecallOptions
from .semantic import FactDraft

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Change",
    "Client",
    "ContentError",
    "Context",
    "DatasetError",
    "DeletionReceipt",
    "Embedder",
    "EmbedderError",
    "EngramError",
    "Entity",
    "Episode",
    "Explanation",
    "Extractor",
    "Fact",
    "FactDraft",
    "Flagged",
    "GraphEdge",
    "GraphNode",
    "Guard",
    "HashEmbedder",
    "Hit",
    "Hits",
    "InputError",
    "LLMError",
    "LLMExtractor",
    "LimitError",
    "MaintenanceReport",
    "Memory",
    "MemoryGraph",
    "MigrationError",
    "MissingDependencyError",
    "NotFoundError",
    "OnnxEmbedder",
    "OpenAICompatible",
    "Policy",
    "RecallOptions",
    "Recognition",
    "Related",
    "Relevance",
    "RuleExtractor",
    "ScopeError",
    "Segment",
    "SentenceTransformersEmbedder",
    "StoreError",
    "StoreStats",
    "TimestampError",
    "UnknownUserError",
    "Verdict",
    "Weights",
    "__version__",
    "default_embedder",
    "hookimpl",
    "pack",
]


def __getattr__(name: str) -> object:
    # Client needs the [server] extra (httpx): imported when first asked for, so that
    # ``import engramdb`` works without it and ``from engramdb import Client`` says what is missing.
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'engramdb' has no attribute {name!r}")
