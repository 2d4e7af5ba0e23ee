"""Argument checks shared by every public function.

Each helper raises `ValueError` for a bad value and `TypeError` for a bad type,
with a message that names the argument, what was expected and what was received,
in the Keras 3 style: `` `batch_size` must be a positive integer. Received:
batch_size=0 ``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np


def _shown(value: Any) -> str:
    """A short repr of `value` for error messages (arrays by shape and dtype)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"<{type(value).__name__} shape={tuple(shape)} dtype={dtype}>"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def received(arg: str, value: Any) -> str:
    """The closing `Received: arg=value` of every error message."""
    return f"Received: {arg}={_shown(value)}"


def check_positive_int(value: Any, arg: str, *, allow_zero: bool = False) -> int:
    """Return `value` as an int, or raise if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{arg}` must be an integer. {received(arg, value)}")
    if value < 0 or (value == 0 and not allow_zero):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"`{arg}` must be {kind} integer. {received(arg, value)}")
    return int(value)


def check_non_negative_float(value: Any, arg: str) -> float:
    """Return `value` as a float, or raise if it is negative or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{arg}` must be a number. {received(arg, value)}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"`{arg}` must be a finite non-negative number. {received(arg, value)}"
        )
    return float(value)


def check_positive_float(value: Any, arg: str) -> float:
    """Return `value` as a float, or raise if it is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{arg}` must be a number. {received(arg, value)}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{arg}` must be a finite positive number. {received(arg, value)}"
        )
    return float(value)


def check_one_of(value: Any, options: Iterable[Any], arg: str) -> Any:
    """Return `value` if it is one of `options`, else raise a ValueError."""
    options = tuple(options)
    if value not in options:
        raise ValueError(
            f"`{arg}` must be one of {', '.join(map(repr, options))}. "
            f"{received(arg, value)}"
        )
    return value


def check_callable(value: Any, arg: str) -> Any:
    """Return `value` if it can be called, else raise a TypeError."""
    if not callable(value):
        raise TypeError(f"`{arg}` must be callable. {received(arg, value)}")
    return value


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates closest to `name`, best first, for 'did you mean' hints."""
    candidates = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)
    lowered = name.lower()
    contains = [c for c in candidates if lowered and lowered in c.lower()]
    return list(dict.fromkeys(close + contains))[:n]


def check_images(value: Any, arg: str, *, rank: int = 4) -> np.ndarray:
    """Validate a batch of images held in memory and return it as float32 numpy.

    Args:
        value: array-like of rank `rank` with a float (or integer) dtype.
        arg: the argument's name, used in messages.
        rank: the expected rank, 4 for `(B, H, W, C)`.

    Raises:
        ValueError: wrong rank, non-numeric dtype, empty, or non-finite values.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise ValueError(
            f"`{arg}` must hold real numbers (a float dtype), got dtype "
            f"{array.dtype}. {received(arg, value)}"
        )
    if array.ndim != rank:
        raise ValueError(
            f"`{arg}` must have rank {rank} (batch, height, width, channels), "
            f"got rank {array.ndim}. {received(arg, value)}"
        )
    if array.size == 0:
        raise ValueError(f"`{arg}` must not be empty. {received(arg, value)}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise ValueError(
            f"`{arg}` must be finite, but {bad} value(s) are NaN or infinite. "
            f"{received(arg, value)}"
        )
    return array
