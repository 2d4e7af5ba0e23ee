"""Cache keys of compiled functions: canonical forms of methods and options.

The same method with the same options is one key however it was built: a
`functools.partial`, a closure made twice by the same factory (a wrapper written
inline in a loop), a lambda in a loop, a bound method, or an object exposing
`__wrapped__` and `get_config()`.
"""

from __future__ import annotations

import functools
import hashlib
import types
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf


def canonical(value: Any, keepalive: list[Any]) -> Any:
    """A hashable stand-in for `value`, equal for values that trace alike.

    Args:
        value: a method, an option value, or a nest of them.
        keepalive: objects keyed by `id()` are appended here; the caller keeps
            the list as long as the key, so the id cannot be reused.

    Returns:
        A hashable key.

    Example:
        >>> canonical(functools.partial(max, 1), []) == canonical(
        ...     functools.partial(max, 1), [])
        True
    """
    return _canonical(value, keepalive)


def _canonical(value: Any, keepalive: list[Any], seen: frozenset = frozenset()) -> Any:
    """A hashable stand-in for `value`, equal for options that trace alike."""
    if id(value) in seen:  # A cycle (a recursive closure): key it by identity.
        keepalive.append(value)
        return "id", id(value)
    inner = seen | {id(value)}

    def canon(item: Any) -> Any:
        return _canonical(item, keepalive, inner)

    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(canon(v) for v in value)
    if isinstance(value, dict):
        items = [(repr(k), canon(v)) for k, v in value.items()]
        return "dict", tuple(sorted(items, key=lambda item: item[0]))
    if isinstance(value, functools.partial):
        return "partial", canon(value.func), canon(value.args), canon(value.keywords)
    if isinstance(value, types.MethodType):
        return "bound", canon(value.__func__), canon(value.__self__)
    if isinstance(value, types.FunctionType):
        return _canonical_function(value, canon)
    if hasattr(value, "__wrapped__") and callable(getattr(value, "get_config", None)):
        try:
            config = value.get_config()
        except Exception:  # noqa: BLE001 - no usable config: key by identity
            config = None
        if config is not None:
            return "configured", type(value), canon(value.__wrapped__), canon(config)
    if isinstance(value, (tf.Variable, keras.Variable)):
        keepalive.append(value)  # Read at run time: the identity matters.
        return "id", id(value)
    array = _as_constant_array(value)
    if array is not None:
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest()
        return "array", array.dtype.str, array.shape, digest
    try:
        hash(value)
    except TypeError:
        keepalive.append(value)
        return "id", id(value)
    return type(value), value


def _canonical_function(function: types.FunctionType, canon: Callable) -> Any:
    """A function by what it runs: its code, defaults and closed-over values.

    Two closures made by the same factory with equal arguments (a wrapper built
    inline twice, a lambda in a loop) trace alike, so they share a key. The
    module globals they read are not part of the key, as for any function.
    """
    cells = []
    for cell in function.__closure__ or ():
        try:
            cells.append(canon(cell.cell_contents))
        except ValueError:  # An empty cell.
            cells.append("empty")
    return (
        "function",
        function.__code__,
        canon(function.__defaults__ or ()),
        canon(function.__kwdefaults__ or {}),
        tuple(cells),
    )


def _as_constant_array(value: Any) -> np.ndarray | None:
    """`value` as a contiguous numpy array if it is a numeric array or tensor."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
    elif isinstance(value, tf.Tensor) and hasattr(value, "numpy"):
        try:
            array = value.numpy()
        except (AttributeError, NotImplementedError, ValueError):
            return None  # A symbolic tensor.
    else:
        return None
    if array.dtype.hasobject:
        return None
    return np.ascontiguousarray(array)
