"""One serialisation for every record that crosses the API: the CLI's ``--json``, the REST API
and the remote :class:`~engramdb.Client` all use :func:`dump` and :func:`load`.

``dump`` turns a record (a dataclass: ``Episode``, ``Hit``, ``Fact``, ``DeletionReceipt``…, a
:class:`~engramdb.Context`, or lists and dicts of them) into JSON-able data; ``load(cls, data)``
builds the record back, typed, from the dataclass's own annotations, so a new field needs no
code here. Datetimes are ISO 8601 strings; tuples are lists; a ``Context`` is
``{"text", "episode_ids", "tokens", "hits"}``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Union

from .recall.packing import Context


def dump(obj: Any) -> Any:
    """JSON-able data for a record, a Context, or containers of them."""
    if isinstance(obj, Context):
        return {"text": str(obj), "episode_ids": list(obj.episode_ids), "tokens": obj.tokens, "hits": dump(list(obj.hits))}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for extra in ("clean", "when"):  # derived properties a reader wants to see
            if isinstance(getattr(type(obj), extra, None), property) and extra not in out:
                out[extra] = dump(getattr(obj, extra))
        return out
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds() / 86400
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [dump(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): dump(v) for k, v in obj.items()}
    return obj


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load(tp: Any, data: Any) -> Any:
    """The value of type ``tp`` that :func:`dump` wrote as ``data``."""
    if tp is Context:
        hits = tuple(load(_hit(), h) for h in data["hits"])
        return Context(str(data["text"]), list(data["episode_ids"]), int(data["tokens"]), hits)
    origin = typing.get_origin(tp)
    params = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in params if a is not type(None)]
        if data is None:
            return None
        return load(options[0], data) if len(options) == 1 else data
    if origin in (tuple, list):
        items = [load(params[0] if params else Any, v) for v in data]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        return {k: load(params[1], v) for k, v in data.items()} if params else dict(data)
    if tp is datetime:
        return datetime.fromisoformat(data)
    if tp is date:
        return date.fromisoformat(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: load(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.init and f.name in data}
        return tp(**kwargs)
    if tp is float and isinstance(data, int):
        return float(data)
    return data


def _hit() -> type:
    from .model import Hit

    return Hit
