"""Select the explained units of a model output before differentiating."""

from __future__ import annotations

import tensorflow as tf

from keras_interp._validation import note_unit_width


def gather_units(
    tensor: tf.Tensor, indices: tf.Tensor | None, axis: int = -1
) -> tf.Tensor:
    """Gather, per sample, the units named by `indices` along `axis`.

    Selecting inside the gradient tape makes the Jacobian span only the requested
    units, so explaining 1 of 1000 classes costs one backward pass, not 1000.

    Args:
        tensor: model outputs `(B, ..., K)` (logits or a pooled layer).
        indices: int `(B, L)`, one row of unit indices per sample, or `None` to
            keep every unit.
        axis: the unit axis of `tensor`.

    Returns:
        `tensor` itself when `indices` is `None`, else `(B, ..., L)` with
        `out[b, ..., l] = tensor[b, ..., indices[b, l]]`.

    Example:
        >>> logits = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        >>> gather_units(logits, tf.constant([[2], [0]])).numpy().tolist()
        [[3.0], [4.0]]
    """
    if indices is None:
        return tensor
    # The engine checks the indices against this width after the compiled call
    # (XLA clamps an out-of-range gather instead of raising).
    note_unit_width(tensor.shape[axis])
    indices = tf.cast(indices, tf.int32)
    return tf.gather(tensor, indices, axis=axis, batch_dims=1)
