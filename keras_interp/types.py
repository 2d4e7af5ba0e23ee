"""Type aliases shared by the package, and the protocol every method follows."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import tensorflow as tf

#: A reference to a layer: a name, a nested path `"outer/inner"`, a tuple of
#: names (for names that contain "/"), an index into `model.layers`, or the
#: layer object itself.
LayerRef = str | int | tuple | Any

#: The units to explain: an int tensor or array `(B, L)`, or `None` for all.
Indices = tf.Tensor | np.ndarray | None

#: Explaining maps `(B, H', W', L)`.
Maps = tf.Tensor

#: Anything `explain()` accepts as inputs.
Inputs = np.ndarray | tf.Tensor | tf.data.Dataset


class Method(Protocol):
    """The one method contract.

    `fn(model, inputs, indices=None, *, spatial_axis=(-3, -2), **options)`
    returns `(logits, maps)` of shapes `(B, L)` and `(B, H', W', L)`.
    """

    __name__: str

    def __call__(
        self, model: Any, inputs: tf.Tensor, indices: Indices = None, **options: Any
    ) -> tuple[tf.Tensor, tf.Tensor]: ...
