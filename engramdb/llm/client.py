"""A minimal client for OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp).

Standard library only (urllib), so the LLM path adds no dependency. The key comes from the
environment (``ENGRAMDB_LLM_API_KEY`` or ``OPENAI_API_KEY``); local servers need none.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import LLMError


class Chat(Protocol):
    """What the LLM path asks of a model: one chat completion (the client below, a cache of
    it, or a test's stand-in)."""

    def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256) -> str: ...


@dataclass
class OpenAICompatible:
    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    retries: int = 2

    @classmethod
    def from_options(cls, base_url: str | None, model: str | None) -> OpenAICompatible:
        base_url = base_url or os.environ.get("ENGRAMDB_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        model = model or os.environ.get("ENGRAMDB_LLM_MODEL")
        if not base_url or not model:
            raise LLMError(
                "the LLM path (end-to-end QA, --extract llm) needs an OpenAI-compatible endpoint: pass --llm-base-url "
                "(e.g. http://localhost:11434/v1 for Ollama) and --llm-model; the key, if any, "
                "comes from OPENAI_API_KEY"
            )
        if not base_url.startswith(("http://", "https://")):
            raise LLMError(f"--llm-base-url must be an http(s) URL, not {base_url!r}")
        key = os.environ.get("ENGRAMDB_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return cls(base_url.rstrip("/"), model, key)

    def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256) -> str:
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url + "/chat/completions"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data: Any = json.loads(resp.read().decode("utf-8"))
                return str(data["choices"][0]["message"]["content"] or "")
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500 and exc.code != 429:
                    detail = exc.read().decode("utf-8", "replace")[:300]
                    raise LLMError(f"{url} answered {exc.code}: {detail}", status=exc.code) from exc
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = exc
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise LLMError(f"{url} did not answer in the chat-completions format: {exc}") from exc
            time.sleep(min(2**attempt, 8))
        raise LLMError(f"{url} failed after {self.retries + 1} attempts: {last}")
