"""A small plugin system (pluggy): plugins hand factories to a ``register`` callback.

A plugin is a module or object with hook implementations::

    import engramdb

    @engramdb.hookimpl
    def register_embedders(register):
        register("my-model", lambda arg, **opts: MyEmbedder(arg, **opts))

and is found through the ``engramdb`` entry-point group, or added with
``engramdb.plugins.pm.register(module)``. Built-in embedders are registered the same way.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("engramdb")
hookimpl = pluggy.HookimplMarker("engramdb")

EmbedderFactory = Callable[..., Any]


class _Specs:
    @hookspec
    def register_embedders(self, register: Callable[[str, EmbedderFactory], None]) -> None:
        """Register embedder factories: ``register(name, factory(arg, **options))``."""


class _Builtins:
    @hookimpl
    def register_embedders(self, register: Callable[[str, EmbedderFactory], None]) -> None:
        from .encode import embedders as e
        from .errors import EmbedderError

        def _default(arg: str | None, **opts: Any) -> Any:
            return e.default_embedder(**opts)

        def _onnx(arg: str | None, **opts: Any) -> Any:
            if not arg:
                raise EmbedderError("onnx embedder needs a model directory: onnx:/path/to/model_dir")
            return e.OnnxEmbedder(arg, **opts)

        def _st(arg: str | None, **opts: Any) -> Any:
            if not arg:
                raise EmbedderError("st embedder needs a model name or path: st:/path/to/model")
            return e.SentenceTransformersEmbedder(arg, **opts)

        def _hash(arg: str | None, **opts: Any) -> Any:
            return e.HashEmbedder(int(arg) if arg else 64)

        register("default", _default)
        register("minilm", _default)
        register("onnx", _onnx)
        register("st", _st)
        register("hash", _hash)


pm = pluggy.PluginManager("engramdb")
pm.add_hookspecs(_Specs)
pm.register(_Builtins(), name="engramdb-builtins")
_loaded = False


def embedder_factories() -> dict[str, EmbedderFactory]:
    global _loaded
    if not _loaded:
        pm.load_setuptools_entrypoints("engramdb")
        _loaded = True
    found: dict[str, EmbedderFactory] = {}
    pm.hook.register_embedders(register=lambda name, factory: found.__setitem__(name, factory))
    return found
