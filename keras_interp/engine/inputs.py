"""The inputs of `explain`: validate arrays and data sets, stream their batches.

In-memory images and indices are checked whole, then sliced; a `tf.data`
data set is checked by its element spec up front and batch by batch as it
arrives (finite images, non-negative indices).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_images, received

#: The stream of `(images, indices)` batches, `indices` possibly `None`.
Batches = Iterator[tuple[tf.Tensor, tf.Tensor | None]]


def _is(kind: str, dtype: Any) -> bool:
    """Whether `dtype` is a TensorFlow `floating` or (unquantised) `integer` type."""
    try:
        dtype = tf.as_dtype(dtype)
    except TypeError:
        return False
    return getattr(dtype, f"is_{kind}") and not dtype.is_quantized


def _check_x_dtype(dtype: Any, suffix: str) -> None:
    if not _is("floating", dtype):
        raise ValueError(
            f"`x` must hold float images, got dtype {dtype}. Integer images are "
            "not cast implicitly: scale them the way the model expects and cast "
            f"them, e.g. `x.astype('float32') / 255`. {suffix}"
        )


def _received_dataset(spec: Any) -> str:
    """The closing `Received:` of messages about a data set."""
    return f"Received: x with element_spec={spec}"


def array_batches(x: Any, y: Any, batch_size: int) -> tuple[Batches, int]:
    """Validate in-memory `x` and `y` and slice them into batches.

    Args:
        x: float images `(B, H, W, C)`, a numpy array or tensor.
        y: int indices `(B, L)` or `(B,)`, or `None`.
        batch_size: images per batch.

    Returns:
        `(batches, num_batches)`: float32 image tensors with int32 `(b, L)`
        index tensors (or `None`), and how many there are.

    Raises:
        ValueError: `x` is not float, of rank 4, non-empty and finite, or `y`
            is not integer, non-negative, of rank 1 or 2 and one row per image.
    """
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    _check_x_dtype(dtype, received("x", x))
    if np.ndim(x) == 3:
        raise ValueError(
            "`x` must have rank 4 (batch, height, width, channels), got rank 3; "
            f"for a single image pass `x[None]`. {received('x', x)}"
        )
    images = check_images(x, "x")
    indices = None if y is None else _check_indices(y, len(images))

    def batches() -> Batches:
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            y_batch = None if indices is None else tf.constant(indices[start:stop])
            yield tf.constant(images[start:stop]), y_batch

    return batches(), math.ceil(len(images) / batch_size)


def _check_indices(y: Any, length: int) -> np.ndarray:
    """Validate in-memory indices and return them as int32 `(B, L)`."""
    indices = np.asarray(y)
    if not _is("integer", indices.dtype):
        raise ValueError(
            f"`y` must hold integer unit indices, got dtype {indices.dtype}; cast "
            f"it with `y.astype('int32')`. {received('y', y)}"
        )
    if indices.ndim == 1:
        indices = indices[:, None]
    if indices.ndim != 2:
        raise ValueError(
            f"`y` must have shape (batch,) or (batch, units), got rank "
            f"{indices.ndim}. {received('y', y)}"
        )
    if len(indices) != length:
        raise ValueError(
            f"`y` must have one row per image in `x` ({length}), got "
            f"{len(indices)}. {received('y', y)}"
        )
    if indices.size and indices.min() < 0:
        raise ValueError(
            f"`y` must hold non-negative unit indices, got {indices.min()}. "
            f"{received('y', y)}"
        )
    return indices.astype(np.int32)


def dataset_batches(
    dataset: tf.data.Dataset, batch_size: int
) -> tuple[Batches, int | None]:
    """Validate a data set's element spec and stream checked batches.

    Args:
        dataset: images, or `(images, indices)` pairs; batched (images of
            rank 4) or not (rank 3, then batched with `batch_size`).
        batch_size: images per batch for an unbatched data set.

    Returns:
        `(batches, num_batches)`: float32 images with int32 `(b, L)` indices
        (or `None`), empty batches skipped, each checked as it arrives; the
        number of batches, `None` when unknown.

    Raises:
        TypeError: the elements are not images or `(images, indices)` pairs.
        ValueError: a bad rank or dtype, an infinite or empty data set; while
            streaming, non-finite images or negative indices.
    """
    spec = dataset.element_spec
    specs = spec if isinstance(spec, tuple) else (spec,)
    pairs = len(specs) == 2
    if len(specs) > 2 or not all(isinstance(s, tf.TensorSpec) for s in specs):
        raise TypeError(
            "`x` must be a tf.data.Dataset of images or of (images, indices) "
            f"pairs of dense tensors. {_received_dataset(spec)}"
        )
    x_spec, y_expand = specs[0], False
    rank = x_spec.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            "`x` must be a data set of images of rank 4 (batch, height, width, "
            "channels) or rank 3 (unbatched), with a known rank; set it with "
            "`dataset.map(lambda x: tf.ensure_shape(x, ...))`. "
            + _received_dataset(spec)
        )
    _check_x_dtype(x_spec.dtype, _received_dataset(spec))
    if pairs:
        y_spec = specs[1]
        if not _is("integer", y_spec.dtype):
            raise ValueError(
                f"`y` must hold integer unit indices, got dtype {y_spec.dtype.name} "
                f"in the data set. {_received_dataset(spec)}"
            )
        if y_spec.shape.rank not in (rank - 3, rank - 2):
            expected = "(batch,) or (batch, units)" if rank == 4 else "() or (units,)"
            raise ValueError(
                f"`y` in the data set must have shape {expected} to match images "
                f"of rank {rank}. {_received_dataset(spec)}"
            )
        y_expand = y_spec.shape.rank == rank - 3

    def normalise(images: tf.Tensor, indices: tf.Tensor | None = None) -> Any:
        images = tf.cast(images, tf.float32)
        if indices is None:
            return (images,)
        indices = tf.cast(indices, tf.int32)
        return images, (indices[..., None] if y_expand else indices)

    dataset = dataset.map(lambda *element: normalise(*element))
    if rank == 3:
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
            if images.shape[0] == 0:
                continue
            _check_batch(images, indices, number)
            yield images, indices

    return batches(), (None if cardinality < 0 else cardinality)


def _check_batch(images: tf.Tensor, indices: tf.Tensor | None, number: int) -> None:
    """Cheap per-batch checks of a data set's images and indices."""
    if not bool(tf.reduce_all(tf.math.is_finite(images))):
        raise ValueError(
            f"`x` must be finite, but batch {number} of the data set holds NaN or "
            f"infinite values. {received('x', images)}"
        )
    if indices is None:
        return
    if indices.shape[0] != images.shape[0]:
        raise ValueError(
            f"`y` must have one row per image, but batch {number} of the data set "
            f"has {images.shape[0]} images and {indices.shape[0]} index rows. "
            f"{received('y', indices)}"
        )
    if tf.size(indices) > 0 and int(tf.reduce_min(indices)) < 0:
        raise ValueError(
            f"`y` must hold non-negative unit indices, but batch {number} of the "
            f"data set holds {int(tf.reduce_min(indices))}. {received('y', indices)}"
        )
