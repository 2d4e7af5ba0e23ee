"""The chunk size of methods that batch their own forward passes.

Occlusion, RISE and integrated gradients score many copies of each image in
chunks of `batch_size` (`keras_interp.methods._base.chunked`). `batch_size` is
a Python int when a user calls the method, or a scalar int tensor when the
engine passes its own batch size at run time (`batch_size=tf.shape(chunk)[0]`
in `keras_interp.engine.compiled`), so one trace serves every batch size.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_interp._validation import check_positive_int, received


def check_batch_size(value: Any, arg: str = "batch_size") -> int | tf.Tensor:
    """A positive Python int, or a scalar integer tensor (as int32).

    Python ints are checked as everywhere (`check_positive_int`). A tensor is
    checked for its dtype and rank only: its value is known at run time, and
    `chunked` runs chunks of at least one job whatever it holds.

    Args:
        value: the chunk size given to a method.
        arg: the argument's name, for messages.

    Returns:
        `value` as an int, or as an int32 scalar tensor.

    Raises:
        TypeError: neither an integer nor a scalar integer tensor.
        ValueError: an integer that is not positive.

    Example:
        >>> check_batch_size(4)
        4
        >>> check_batch_size(tf.constant(4, tf.int64)).dtype
        tf.int32
    """
    if isinstance(value, (tf.Tensor, tf.Variable)):
        dtype = tf.as_dtype(value.dtype)
        if not dtype.is_integer or value.shape.rank != 0:
            raise TypeError(
                f"`{arg}` must be a positive integer or a scalar integer tensor. "
                f"{received(arg, value)}"
            )
        return tf.cast(value, tf.int32)
    return check_positive_int(value, arg)
