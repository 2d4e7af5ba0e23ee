"""What every method shares: calling the model, and the scores it explains."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_interp.inspection.units import gather_units


def forward(model: Any, inputs: tf.Tensor) -> list[tf.Tensor]:
    """Call `model` in inference mode and return its outputs as a list.

    Works for Keras 3 and tf_keras models, exposed models (whose first output
    is the explained scores), and any callable (a TF-Hub layer, a concrete
    function) that does not take `training`.
    """
    try:
        outputs = model(inputs, training=False)
    except TypeError:
        outputs = model(inputs)
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return list(outputs)


def scores(model: Any, inputs: tf.Tensor, indices: Any) -> tuple[tf.Tensor, list]:
    """`(selected scores (B, L), other outputs)` of one forward pass.

    The first output of the model is what is explained (see `Target`); the
    units named by `indices` are gathered from it.
    """
    first, *rest = forward(model, inputs)
    first = tf.convert_to_tensor(first)
    if first.shape.rank != 2:
        raise ValueError(
            "The explained output must be scores of shape (batch, units); the "
            f"model returned shape {tuple(first.shape)}. Expose a Target, e.g. "
            "expose(model, outputs=Target(layer, reduce='mean'))."
        )
    return gather_units(first, indices), rest
