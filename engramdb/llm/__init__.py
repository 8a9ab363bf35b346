"""Optional LLM support through any OpenAI-compatible chat-completions endpoint."""

from .client import OpenAICompatible

__all__ = ["OpenAICompatible"]
