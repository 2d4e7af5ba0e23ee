"""Argument checks shared by every public function.

Each helper raises `ValueError` for a bad value and `TypeError` for a bad type,
with a message that names the argument, what was expected and what was received,
in the Keras 3 style: `` `batch_size` must be a positive integer. Received:
batch_size=0 ``.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


def _shown(value: Any) -> str:
    """A short repr of `value` for error messages (arrays by shape and dtype)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"<{type(value).__name__} shape={tuple(shape)} dtype={dtype}>"
    text = repr(value)
    # Default reprs carry a memory address that changes from run to run.
    text = re.sub(r" at 0x[0-9a-fA-F]+>", ">", text)
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


_UNIT_WIDTHS = threading.local()


@contextlib.contextmanager
def recording_unit_widths() -> Iterator[list[int | None]]:
    """Collect, while tracing a method, the widths of the axes indices select.

    The engine wraps each method call in this context; `note_unit_width` (called
    by `inspection.units.gather_units` and by any method that selects units
    itself) appends to the innermost open list. Widths are static sizes (or
    `None` when unknown), so they can be checked in Python after a compiled call
    in every mode, XLA included (where an out-of-range gather is clamped
    silently instead of raising).

    Yields:
        The list the widths are appended to.
    """
    stack = getattr(_UNIT_WIDTHS, "stack", None)
    if stack is None:
        stack = _UNIT_WIDTHS.stack = []
    widths: list[int | None] = []
    stack.append(widths)
    try:
        yield widths
    finally:
        stack.pop()


def note_unit_width(width: Any) -> None:
    """Record the width of a unit axis that indices are gathered from.

    Args:
        width: the static size of the axis (an int), or `None` if unknown.
    """
    stack = getattr(_UNIT_WIDTHS, "stack", None)
    if stack:
        stack[-1].append(None if width is None else int(width))


def check_indices(value: Any, arg: str = "y") -> np.ndarray:
    """Validate unit indices held in memory and return them as int32 `(B, L)`.

    The value range is checked on the original dtype, before any cast, so an
    index of `2**32` is an error rather than `0`.

    Args:
        value: array-like of integers, shape `(B,)` (read as `(B, 1)`) or
            `(B, L)`.
        arg: the argument's name, used in messages.

    Raises:
        ValueError: not integer, of another rank, negative or beyond int32.
    """
    indices = np.asarray(value)
    if indices.dtype.kind not in "iu":
        raise ValueError(
            f"`{arg}` must hold integer unit indices, got dtype {indices.dtype}; cast "
            f"it with `{arg}.astype('int32')`. {received(arg, value)}"
        )
    if indices.ndim == 1:
        indices = indices[:, None]
    if indices.ndim != 2:
        raise ValueError(
            f"`{arg}` must have shape (batch,) or (batch, units), got rank "
            f"{indices.ndim}. {received(arg, value)}"
        )
    if indices.size and indices.min() < 0:
        raise ValueError(
            f"`{arg}` must hold non-negative unit indices, got {indices.min()}. "
            f"{received(arg, value)}"
        )
    limit = np.iinfo(np.int32).max
    if indices.size and indices.max() > limit:
        raise ValueError(
            f"`{arg}` must hold unit indices below 2**31, got {indices.max()}. "
            f"{received(arg, value)}"
        )
    return indices.astype(np.int32)


def check_units(indices: Any, widths: Iterable[int | None], arg: str = "y") -> None:
    """Raise if an index is not below the width of the axis it selects from.

    Args:
        indices: int indices (numpy or eager tensor), or `None`.
        widths: the widths recorded while tracing (`None` entries are unknown).
        arg: the argument's name, used in messages.

    Raises:
        ValueError: an index `>=` the smallest known width.
    """
    known = [w for w in widths if w is not None]
    if indices is None or not known:
        return
    array = np.asarray(indices)
    if array.size and int(array.max()) >= min(known):
        raise ValueError(
            f"`{arg}` must hold unit indices below {min(known)}, the number of "
            f"units of the explained output; got {int(array.max())}. "
            f"{received(arg, indices)}"
        )


#: With `verbose="auto"`, a progress bar is shown from this many batches (or
#: optimisation steps) on: the one progress rule of every loop in the library.
AUTO_PROGRESS_MIN_STEPS = 5


def progress_verbosity(verbose: Any, steps: int | None, arg: str = "verbose") -> int:
    """The Keras `Progbar` verbosity for a loop of `steps` (None: unknown).

    `0`/`False` silent, `1`/`True` a bar, `2` one line at the end, `"auto"` a
    bar from `AUTO_PROGRESS_MIN_STEPS` steps on (or when `steps` is unknown).

    Raises:
        ValueError: any other value.
    """
    if verbose == "auto" and isinstance(verbose, str):
        return int(steps is None or steps >= AUTO_PROGRESS_MIN_STEPS)
    if isinstance(verbose, (bool, int, np.integer)) and int(verbose) in (0, 1, 2):
        return int(verbose)
    raise ValueError(f'`{arg}` must be "auto", 0, 1 or 2. {received(arg, verbose)}')


def renamed_argument(new_value: Any, old_value: Any, new: str, old: str) -> Any:
    """The value of an argument renamed from `old` to `new`.

    Returns `new_value`, or `old_value` with a `DeprecationWarning` when only
    the old name was given.

    Raises:
        ValueError: both names were given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ValueError(
            f"Give `{new}` (or its deprecated name `{old}`), not both. "
            f"{received(new, new_value)}, {old}={_shown(old_value)}"
        )
    import warnings

    warnings.warn(
        f"`{old}` is deprecated: use `{new}`.", DeprecationWarning, stacklevel=3
    )
    return old_value
