"""Optional LLM support through any OpenAI-compatible chat-completions endpoint."""

from .cache import CachedChat
from .client import Chat, OpenAICompatible

__all__ = ["CachedChat", "Chat", "OpenAICompatible"]
