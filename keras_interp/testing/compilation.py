"""A check shared by method tests: eager, tf.function, XLA and a signature
with unknown batch and unit counts all give the same numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


def assert_compiles_alike(
    method: Callable,
    model: Any,
    x: tf.Tensor,
    indices: tf.Tensor,
    options: dict | None = None,
    *,
    atol: float = 1e-5,
) -> None:
    """Raise AssertionError unless every compiled run equals the eager one.

    Args:
        method: a method `fn(model, inputs, indices, **options)`.
        model: its model.
        x: images `(B, H, W, C)`.
        indices: int `(B, L)`.
        options: keyword options for the method.
        atol: absolute and relative tolerance.
    """
    options = options or {}
    eager = method(model, x, indices, **options)

    def run(x, i):
        return method(model, x, i, **options)

    for jit in (False, True):
        for got, want in zip(tf.function(run, jit_compile=jit)(x, indices), eager):
            np.testing.assert_allclose(got, want, rtol=atol, atol=atol)
    signature = [
        tf.TensorSpec((None, *x.shape[1:]), tf.float32),
        tf.TensorSpec((None, None), tf.int32),
    ]
    dynamic = tf.function(run, input_signature=signature)(x, indices)
    np.testing.assert_allclose(dynamic[1], eager[1], rtol=atol, atol=atol)
