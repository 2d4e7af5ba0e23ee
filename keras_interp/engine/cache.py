"""The library's one per-model cache, tied to each model's life by a weak reference.

Everything keras_interp derives from a user's model lives here: the compiled
explaining steps (`compiled.compiled_function`, at most
`MAX_FUNCTIONS_PER_MODEL` per model, least recently used dropped first) and
the variants built from it (`cached_variant`: the exposed model a method
takes, a copy computing in another dtype, the sizes a model was probed at,
the steps of metrics, concepts and analysis). Entries are keyed by the
model's `id()` and dropped when the model dies; nothing is ever set on the
user's model, and an entry never keeps its model alive (builders get a weak
proxy). Models without weak references are not cached.
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

#: Compiled functions kept per model; the least recently used one is dropped
#: first when a model is explained with more option sets than this.
MAX_FUNCTIONS_PER_MODEL = 16


class _Slot(NamedTuple):
    model_ref: weakref.ref
    #: key -> (compiled function, objects its key refers to by id), LRU order.
    functions: collections.OrderedDict
    #: key -> what was derived from the model (lives as long as the model).
    variants: dict


# id(model) -> its slot.
_CACHE: dict[int, _Slot] = {}
_LOCK = threading.RLock()


def _forget(ref: weakref.ref) -> None:
    """Weak-reference callback: the model died, drop its slot."""
    with _LOCK:
        for model_id, slot in list(_CACHE.items()):
            if slot.model_ref is ref:
                del _CACHE[model_id]


def slot(model: Any) -> _Slot | None:
    """`model`'s slot (made on first use), or `None` without weak references.

    Call with `_LOCK` held when the slot is then read or written.
    """
    try:
        model_ref = weakref.ref(model, _forget)
    except TypeError:
        return None
    with _LOCK:
        found = _CACHE.get(id(model))
        if found is None or found.model_ref() is not model:
            found = _Slot(model_ref, collections.OrderedDict(), {})
            _CACHE[id(model)] = found
        return found


def cached_function(
    model: Any, key: Any, build: Callable[[Callable[[], Any]], Any], keepalive: list
) -> Any:
    """`build(model_ref)`, kept among `model`'s compiled functions under `key`.

    Args:
        model: the model the function runs.
        key: a hashable canonical key of everything the function depends on.
        build: makes the function from a zero-argument callable returning the
            model (a weak reference when cached).
        keepalive: objects the key names by `id()`, kept with the entry.
    """
    with _LOCK:
        found = slot(model)
        if found is None:  # No weak references: compile without caching.
            return build(lambda: model)
        functions = found.functions
        if key in functions:
            functions.move_to_end(key)
            return functions[key][0]
        function = build(found.model_ref)
        functions[key] = (function, keepalive)
        while len(functions) > MAX_FUNCTIONS_PER_MODEL:
            functions.popitem(last=False)
        return function


def cached_variant(model: Any, key: Any, build: Callable[[], Any]) -> Any:
    """`build()`, kept with `model` under `key` for as long as the model lives.

    Builders that need the model should close over `weakref.proxy(model)`, so
    the variant does not keep the model alive. Models without weak references
    get a fresh `build()` each call.

    Example:
        >>> model = gap_dense()
        >>> first = cached_variant(model, "doc", lambda: object())
        >>> cached_variant(model, "doc", lambda: object()) is first
        True
    """
    with _LOCK:
        found = slot(model)
        if found is None:
            return build()
        if key not in found.variants:
            found.variants[key] = build()
        return found.variants[key]


def clear_cache(model: Any = None) -> None:
    """Drop what is cached for `model` (compiled functions and variants), or
    for every model if `None`.

    Example:
        >>> clear_cache()
    """
    with _LOCK:
        if model is None:
            _CACHE.clear()
            return
        found = _CACHE.get(id(model))
        if found is not None and found.model_ref() is model:
            del _CACHE[id(model)]
