"""Post-processing filters for explaining maps.

Every filter takes `(maps, axis=(-3, -2))`, where `axis` are the spatial axes
over which statistics (min, max) are taken, and returns maps of the same shape.
They are pure TensorFlow functions, so the engine compiles them with the
method: `explain(gradcam, model, x, postprocessing=positive_normalize)`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import tensorflow as tf

from keras_interp._validation import check_callable, received

SPATIAL_AXIS = (-3, -2)

Filter = Callable[..., tf.Tensor]


def _check(x: tf.Tensor, axis: Sequence[int] | int) -> tuple[tf.Tensor, list[int]]:
    """`x` as a float tensor and `axis` as a list, checked against `x`'s rank.

    Raises:
        TypeError: `x` is not numeric, or `axis` is not an int or a sequence
            of ints.
        ValueError: `axis` empty, repeated, or outside `x`'s rank (a map of the
            wrong rank for the default spatial axes).
    """
    try:
        x = tf.convert_to_tensor(x)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`x` must be a numeric array or tensor of maps. {received('x', x)}"
        ) from error
    if x.dtype.is_integer or x.dtype == tf.bool:
        x = tf.cast(x, tf.float32)
    if not x.dtype.is_floating:
        raise TypeError(f"`x` must hold real numbers. {received('x', x)}")
    axes = (
        [axis]
        if isinstance(axis, numbers.Integral) and not isinstance(axis, bool)
        else axis
    )
    try:
        axes = list(axes)
    except TypeError:
        axes = None
    if axes is None or any(
        isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes
    ):
        raise TypeError(
            f"`axis` must be an int or a sequence of ints. {received('axis', axis)}"
        )
    if not axes:
        raise ValueError(f"`axis` must not be empty. {received('axis', axis)}")
    rank = x.shape.rank
    if rank is not None:
        if any(not -rank <= a < rank for a in axes):
            raise ValueError(
                f"`axis` {tuple(axes)} is out of range for maps of rank {rank} "
                f"(shape {tuple(x.shape)}); maps are (batch, height, width, "
                f"units) with spatial axes (-3, -2). {received('axis', axis)}"
            )
        if len({a % rank for a in axes}) != len(axes):
            raise ValueError(f"`axis` repeats an axis. {received('axis', axis)}")
    return x, [int(a) for a in axes]


def normalize(x: tf.Tensor, axis: Sequence[int] = SPATIAL_AXIS) -> tf.Tensor:
    """Min-max normalise each map to [0, 1] over `axis`.

    `(x - min(x)) / max(x - min(x))`; a constant map becomes all zeros (no
    division by zero).

    Args:
        x: maps, e.g. `(B, H, W, L)`.
        axis: the axes reduced by min and max.

    Returns:
        Maps of the same shape with values in [0, 1].

    Raises:
        TypeError: non-numeric maps, or an `axis` that is not int(s).
        ValueError: an `axis` outside the maps' rank, empty or repeated.

    Example:
        >>> normalize(tf.constant([[[[1.0], [3.0]]]])).numpy().ravel().tolist()
        [0.0, 1.0]
    """
    x, axis = _check(x, axis)
    x = x - tf.reduce_min(x, axis=axis, keepdims=True)
    return tf.math.divide_no_nan(x, tf.reduce_max(x, axis=axis, keepdims=True))


def positive(x: tf.Tensor, axis: Sequence[int] = SPATIAL_AXIS) -> tf.Tensor:
    """The positive part, `max(x, 0)`: evidence for the explained unit."""
    x, _ = _check(x, axis)  # the axes are checked for every filter alike
    return tf.nn.relu(x)


def negative(x: tf.Tensor, axis: Sequence[int] = SPATIAL_AXIS) -> tf.Tensor:
    """The magnitude of the negative part, `max(-x, 0)`: evidence against.

    keras-explainable's `negative` returned `max(x, 0)`, the positive part (a
    bug); this is the intended behaviour.
    """
    x, _ = _check(x, axis)  # the axes are checked for every filter alike
    return tf.nn.relu(-x)


def absolute(x: tf.Tensor, axis: Sequence[int] = SPATIAL_AXIS) -> tf.Tensor:
    """The absolute value, `|x|`: evidence either way."""
    x, _ = _check(x, axis)  # the axes are checked for every filter alike
    return tf.abs(x)


def compose(*filters: Filter) -> Filter:
    """Chain filters, applied from left to right.

    `compose(positive, normalize)` is `positive_normalize`: first the positive
    part, then the normalisation. `compose()` is the identity.

    Args:
        *filters: filters `(maps, axis) -> maps`.

    Returns:
        A filter with the same signature, named after its parts.

    Raises:
        TypeError: a filter is not callable.
    """
    for index, f in enumerate(filters):
        check_callable(f, f"filters[{index}]")

    def composed(x: tf.Tensor, axis: Sequence[int] = SPATIAL_AXIS) -> tf.Tensor:
        for f in filters:
            x = f(x, axis=axis)
        return x

    composed.__name__ = "_".join(f.__name__ for f in filters) or "identity"
    composed.filters = tuple(filters)
    return composed


positive_normalize = compose(positive, normalize)
positive_normalize.__doc__ = "`normalize(positive(x))`: positive evidence in [0, 1]."
absolute_normalize = compose(absolute, normalize)
absolute_normalize.__doc__ = "`normalize(absolute(x))`: |evidence| in [0, 1]."
negative_normalize = compose(negative, normalize)
negative_normalize.__doc__ = "`normalize(negative(x))`: negative evidence in [0, 1]."

__all__ = [
    "absolute",
    "absolute_normalize",
    "compose",
    "negative",
    "negative_normalize",
    "normalize",
    "positive",
    "positive_normalize",
]
