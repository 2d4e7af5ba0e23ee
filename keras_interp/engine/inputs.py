"""The inputs of `explain`: validate arrays and data sets, stream their batches.

In-memory images and indices are checked whole, then sliced; a `tf.data`
data set is checked by its element spec up front and batch by batch as it
arrives (finite images, indices in range). Inputs may be a nest (a tuple,
list or dict of arrays, or a data set of such nests, for a model with several
inputs): each input is checked, and all are batched together.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_images, check_indices, received

#: The stream of `(images, indices)` batches, `indices` possibly `None`;
#: `images` is a nest of tensors for a model with several inputs.
Batches = Iterator[tuple[Any, tf.Tensor | None]]

_INT32_MAX = np.iinfo(np.int32).max


def _is(kind: str, dtype: Any) -> bool:
    """Whether `dtype` is a TensorFlow `floating` or (unquantised) `integer` type."""
    try:
        dtype = tf.as_dtype(dtype)
    except TypeError:
        return False
    return getattr(dtype, f"is_{kind}") and not dtype.is_quantized


def _check_x_dtype(dtype: Any, suffix: str, arg: str = "x") -> None:
    if not _is("floating", dtype):
        raise ValueError(
            f"`{arg}` must hold float images, got dtype {dtype}. Integer images are "
            "not cast implicitly: scale them the way the model expects and cast "
            f"them, e.g. `x.astype('float32') / 255`. {suffix}"
        )


def _received_dataset(spec: Any) -> str:
    """The closing `Received:` of messages about a data set."""
    return f"Received: x with element_spec={spec}"


def is_nest(x: Any) -> bool:
    """Whether `x` holds several inputs: a tuple or dict, or a list that is not
    a batch of images (one whose items are not all 3-D arrays of one shape)."""
    if isinstance(x, (tuple, dict)):
        return True
    if not isinstance(x, list) or not x:
        return False
    shapes = {np.shape(item) for item in x}
    return len(shapes) > 1 or len(next(iter(shapes))) != 3


def array_batches(x: Any, y: Any, batch_size: int) -> tuple[Batches, int]:
    """Validate in-memory `x` and `y` and slice them into batches.

    Args:
        x: float images `(B, H, W, C)`, a numpy array or tensor; or a tuple,
            list or dict of float arrays `(B, ...)` (one per model input).
        y: int indices `(B, L)` or `(B,)`, or `None`.
        batch_size: images per batch.

    Returns:
        `(batches, num_batches)`: float32 image tensors (a nest of the same
        structure for a nest) with int32 `(b, L)` index tensors (or `None`),
        and how many there are.

    Raises:
        ValueError: `x` is not float, of rank 4, non-empty and finite (each
            input of a nest: float, non-empty, finite, one length), or `y` is
            not integer, in `[0, 2**31)`, of rank 1 or 2 and one row per image.
        TypeError: a nest that is empty or has non-string dict keys.
    """
    if is_nest(x):
        arrays = _check_nest(x)
        length = len(tf.nest.flatten(arrays)[0])
    else:
        arrays = _check_array(x, "x")
        length = len(arrays)
    indices = None if y is None else _check_indices(y, length)

    def batches() -> Batches:
        for start in range(0, length, batch_size):
            stop = start + batch_size
            y_batch = None if indices is None else tf.constant(indices[start:stop])
            window = slice(start, stop)
            x_batch = tf.nest.map_structure(
                lambda a, window=window: tf.constant(a[window]), arrays
            )
            yield x_batch, y_batch

    return batches(), math.ceil(length / batch_size)


def _check_array(x: Any, arg: str) -> np.ndarray:
    """One float image batch `(B, H, W, C)` as float32 numpy."""
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    _check_x_dtype(dtype, received(arg, x), arg)
    if np.ndim(x) == 3:
        raise ValueError(
            f"`{arg}` must have rank 4 (batch, height, width, channels), got rank "
            f"3; for a single image pass `{arg}[None]`. {received(arg, x)}"
        )
    return check_images(x, arg)


def _check_nest(x: Any) -> Any:
    """Each input of a nest: float, non-empty, finite, all of one length."""
    if not x:
        raise TypeError(
            f"`x` must not be an empty {type(x).__name__}. Received: x={x!r}"
        )
    if isinstance(x, dict) and not all(isinstance(k, str) for k in x):
        raise TypeError(f"`x` as a dict must have string keys. {received('x', x)}")
    keys = list(x) if isinstance(x, dict) else list(range(len(x)))
    arrays = {}
    for key in keys:
        arg = f"x[{key!r}]"
        value = x[key]
        if is_nest(value):
            raise TypeError(
                f"`{arg}` must be an array, not a nest. {received(arg, value)}"
            )
        dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
        _check_x_dtype(dtype, received(arg, value), arg)
        rank = max(int(np.ndim(value)), 1)
        arrays[key] = check_images(value, arg, rank=rank) if np.ndim(value) else None
        if arrays[key] is None:
            raise ValueError(f"`{arg}` must have a batch axis. {received(arg, value)}")
    lengths = {key: len(array) for key, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            "The inputs in `x` must have the same number of rows (batch length), "
            f"got {lengths}. {received('x', x)}"
        )
    if isinstance(x, dict):
        return arrays
    return (
        type(x)(arrays[key] for key in keys)
        if isinstance(x, tuple)
        else [arrays[key] for key in keys]
    )


def _check_indices(y: Any, length: int) -> np.ndarray:
    """Validate in-memory indices and return them as int32 `(B, L)`."""
    indices = check_indices(y, "y")
    if len(indices) != length:
        raise ValueError(
            f"`y` must have one row per image in `x` ({length}), got "
            f"{len(indices)}. {received('y', y)}"
        )
    return indices


def _is_spec_nest(spec: Any) -> bool:
    """A tuple or dict of dense tensor specs (several model inputs)."""
    items = spec.values() if isinstance(spec, dict) else spec
    return (
        isinstance(spec, (tuple, dict))
        and len(spec) > 0
        and all(isinstance(s, tf.TensorSpec) for s in items)
    )


def _split_element(
    spec: Any, num_inputs: int | None
) -> tuple[Any, tf.TensorSpec | None]:
    """`(inputs spec, indices spec or None)` of a data set's elements.

    Elements are images, `(images,)` or `(images, indices)`; for a model with
    several inputs, a dict of inputs, a tuple of as many float tensors as the
    model has inputs, `(nest,)` or `(nest, indices)`.
    """
    if isinstance(spec, tf.TensorSpec) or (
        isinstance(spec, dict) and _is_spec_nest(spec)
    ):
        return spec, None
    if _is_spec_nest(spec):  # A tuple of tensors.
        floats = all(_is("floating", s.dtype) for s in spec)
        if floats and len(spec) == num_inputs and len(spec) > 1:
            return spec, None
        if len(spec) <= 2:  # (images,) or (images, indices)
            return spec[0], (spec[1] if len(spec) == 2 else None)
        if floats:
            return spec, None
    elif isinstance(spec, tuple) and len(spec) in (1, 2) and _is_spec_nest(spec[0]):
        last = spec[1] if len(spec) == 2 else None
        if last is None or isinstance(last, tf.TensorSpec):
            return spec[0], last
    raise TypeError(
        "`x` must be a tf.data.Dataset of images, of (images, indices) pairs, "
        "or of several inputs (a dict, or a tuple of float tensors, one per "
        "model input), optionally as (inputs, indices) pairs, of dense tensors. "
        + _received_dataset(spec)
    )


def _nest_batched(x_spec: Any, input_shapes: Any, input_names: Any, spec: Any) -> bool:
    """Whether a data set of several inputs is batched: each input has one
    more axis than the model declares; without declared inputs, the first
    input decides as an image would (rank 4 batched, rank 3 not)."""
    keys = sorted(x_spec) if isinstance(x_spec, dict) else range(len(x_spec))
    for key in keys:
        _check_x_dtype(x_spec[key].dtype, _received_dataset(spec), f"x[{key!r}]")
    ranks = {key: x_spec[key].shape.rank for key in keys}
    if None in ranks.values():
        raise ValueError(
            "Every input of `x` must have a known rank; set it with "
            f"`dataset.map(...)` and `tf.ensure_shape`. {_received_dataset(spec)}"
        )
    declared = {}
    if input_shapes is not None and len(input_shapes) == len(ranks):
        if isinstance(x_spec, dict) and set(input_names or ()) == set(x_spec):
            declared = {n: len(s) for n, s in zip(input_names, input_shapes)}
        elif not isinstance(x_spec, dict):
            declared = {i: len(s) for i, s in enumerate(input_shapes)}
    if declared:
        batched = {key: ranks[key] == declared[key] + 1 for key in keys}
        unbatched = {key: ranks[key] == declared[key] for key in keys}
        if all(batched.values()) or all(unbatched.values()):
            return all(batched.values())
        raise ValueError(
            "The inputs of `x` must all be batched (one more axis than the "
            f"model's inputs, of ranks {declared}) or all unbatched; got ranks "
            f"{ranks}. {_received_dataset(spec)}"
        )
    return ranks[next(iter(keys))] != 3


def dataset_batches(
    dataset: tf.data.Dataset,
    batch_size: int,
    input_shapes: Any = None,
    input_names: Any = None,
) -> tuple[Batches, int | None]:
    """Validate a data set's element spec and stream checked batches.

    Args:
        dataset: images, or `(images, indices)` pairs; batched (images of
            rank 4) or not (rank 3, then batched with `batch_size`). For a
            model with several inputs, a nest of inputs (a dict keyed by the
            model's input names, or a tuple of float tensors), or `(nest,
            indices)` pairs; it is batched when each input has one more axis
            than the model declares (`input_shapes`), else batched here.
        batch_size: images per batch for an unbatched data set.
        input_shapes: the model's declared input shapes without the batch
            axis (`model_facts(model).input_shapes`), or `None`.
        input_names: the model's input names, matching `input_shapes`.

    Returns:
        `(batches, num_batches)`: float32 images (a nest for several inputs)
        with int32 `(b, L)` indices (or `None`), empty batches skipped, each
        checked as it arrives; the number of batches, `None` when unknown.

    Raises:
        TypeError: the elements are not one of the structures above.
        ValueError: a bad rank or dtype, an infinite or empty data set; while
            streaming, non-finite images or indices outside `[0, 2**31)`.
    """
    spec = dataset.element_spec
    num_inputs = None if input_shapes is None else len(input_shapes)
    x_spec, y_spec = _split_element(spec, num_inputs)
    if isinstance(x_spec, tf.TensorSpec):
        rank = x_spec.shape.rank
        if rank not in (3, 4):
            raise ValueError(
                "`x` must be a data set of images of rank 4 (batch, height, width, "
                "channels) or rank 3 (unbatched), with a known rank; set it with "
                "`dataset.map(lambda x: tf.ensure_shape(x, ...))`. "
                + _received_dataset(spec)
            )
        _check_x_dtype(x_spec.dtype, _received_dataset(spec))
        batched = rank == 4
    else:
        batched = _nest_batched(x_spec, input_shapes, input_names, spec)
    y_expand = False
    if y_spec is not None:
        if not _is("integer", y_spec.dtype):
            raise ValueError(
                f"`y` must hold integer unit indices, got dtype {y_spec.dtype.name} "
                f"in the data set. {_received_dataset(spec)}"
            )
        if y_spec.shape.rank not in (0 + batched, 1 + batched):
            expected = "(batch,) or (batch, units)" if batched else "() or (units,)"
            raise ValueError(
                f"`y` in the data set must have shape {expected} to match "
                f"{'batched' if batched else 'unbatched'} inputs. "
                f"{_received_dataset(spec)}"
            )
        y_expand = y_spec.shape.rank == int(batched)

    def normalise(*element: Any) -> Any:
        if y_spec is None:
            inputs = element[0] if len(element) == 1 else element
            return (tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), inputs),)
        inputs, indices = element
        inputs = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), inputs)
        return inputs, (indices[..., None] if y_expand else indices)

    if isinstance(spec, dict):  # tf.data passes a dict as one argument.
        dataset = dataset.map(lambda element: normalise(element))
    else:
        dataset = dataset.map(lambda *element: normalise(*element))
    if not batched:
        dataset = dataset.batch(batch_size)
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`x` must be a finite data set; limit it with `dataset.take(n)`. "
            + _received_dataset(spec)
        )
    if cardinality == 0:
        raise ValueError(f"`x` must not be empty. {_received_dataset(spec)}")

    def batches() -> Batches:
        for number, element in enumerate(dataset, start=1):
            images, indices = (*element, None)[:2]
            if tf.nest.flatten(images)[0].shape[0] == 0:
                continue
            _check_batch(images, indices, number)
            yield images, (None if indices is None else tf.cast(indices, tf.int32))

    return batches(), (None if cardinality < 0 else cardinality)


def _check_batch(images: Any, indices: tf.Tensor | None, number: int) -> None:
    """Cheap per-batch checks of a data set's images (each input of a nest)
    and indices."""
    for leaf in tf.nest.flatten(images):
        if not bool(tf.reduce_all(tf.math.is_finite(leaf))):
            raise ValueError(
                f"`x` must be finite, but batch {number} of the data set holds NaN "
                f"or infinite values. {received('x', leaf)}"
            )
    rows = tf.nest.flatten(images)[0].shape[0]
    if indices is None:
        return
    if indices.shape[0] != rows:
        raise ValueError(
            f"`y` must have one row per image, but batch {number} of the data set "
            f"has {rows} images and {indices.shape[0]} index rows. "
            f"{received('y', indices)}"
        )
    if tf.size(indices) == 0:
        return
    low, high = int(tf.reduce_min(indices)), int(tf.reduce_max(indices))
    if low < 0:
        raise ValueError(
            f"`y` must hold non-negative unit indices, but batch {number} of the "
            f"data set holds {low}. {received('y', indices)}"
        )
    if high > _INT32_MAX:
        raise ValueError(
            f"`y` must hold unit indices below 2**31, but batch {number} of the "
            f"data set holds {high}. {received('y', indices)}"
        )
