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
        return {name: dump(getattr(obj, name)) for name in _names(type(obj))}
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
def _names(cls: type) -> tuple[str, ...]:
    """What a record of this class is written as: its fields, and the derived properties a
    reader wants to see (``clean`` of a receipt, ``when`` of a recognition)."""
    names = [f.name for f in dataclasses.fields(cls)]
    return tuple(names + [p for p in ("clean", "when") if isinstance(getattr(cls, p, None), property) and p not in names])


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load(tp: Any, data: Any) -> Any:
    """The value of type ``tp`` that :func:`dump` wrote as ``data``."""
    return _loader(tp)(data)


Loader = typing.Callable[[Any], Any]


@lru_cache(maxsize=None)
def _loader(tp: Any) -> Loader:
    """A function that loads values of type ``tp``, built once per type (a search's hits are
    read field by field: working the annotations out each time cost a millisecond)."""
    if tp is Context:
        hit = _loader(_hit())
        return lambda d: Context(str(d["text"]), list(d["episode_ids"]), int(d["tokens"]), tuple(hit(h) for h in d["hits"]))
    origin = typing.get_origin(tp)
    params = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in params if a is not type(None)]
        if len(options) != 1:
            return lambda d: d
        inner = _loader(options[0])
        return lambda d: None if d is None else inner(d)
    if origin in (tuple, list):
        item = _loader(params[0]) if params else (lambda v: v)
        if origin is tuple:
            return lambda d: tuple(item(v) for v in d)
        return lambda d: [item(v) for v in d]
    if origin is dict:
        if not params:
            return dict
        value = _loader(params[1])
        return lambda d: {k: value(v) for k, v in d.items()}
    if tp is datetime:
        return datetime.fromisoformat
    if tp is date:
        return date.fromisoformat
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        fields = [(f.name, _loader(hints[f.name])) for f in dataclasses.fields(tp) if f.init]
        return lambda d: tp(**{name: conv(d[name]) for name, conv in fields if name in d})
    if tp is float:
        return lambda d: float(d) if isinstance(d, int) and not isinstance(d, bool) else d
    return lambda d: d


def _hit() -> type:
    from .model import Hit

    return Hit
