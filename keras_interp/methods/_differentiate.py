"""Helpers shared by the gradient methods (`gradient.py`, `guided.py`):
one backward pass for any number of units, channel reductions, and running a
model with some layers overridden."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import check_callable
from keras_interp.inspection.expose import is_exposed
from keras_interp.inspection.graph import run_graph
from keras_interp.methods._base import channels_last, scores

SPATIAL_AXIS = (-3, -2)


def differentiate(
    run: Callable[[tf.Tensor], tuple[tf.Tensor, list]], inputs: tf.Tensor
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """`run(inputs) -> (selected (B, L), sources)` and the per-unit gradients.

    Returns `(selected, grads)`, `grads[i]` of shape `(B, L, *sources[i].shape[1:])`
    holding `d selected[b, l] / d sources[i][b]`. Sources must be computed from
    `inputs` inside `run` (or be `inputs`).
    """
    # Eagerly, a loop over units beats pfor, which retraces at every call.
    eager = tf.executing_eagerly()
    with tf.GradientTape(persistent=eager, watch_accessed_variables=False) as tape:
        tape.watch(inputs)
        selected, sources = run(inputs)
        selected = tf.cast(selected, tf.float32)
        total = tf.reduce_sum(selected, axis=0)  # (L,): samples are independent
    zero = tf.UnconnectedGradients.ZERO
    if selected.shape[-1] == 1:
        grads = tape.gradient(total, sources, unconnected_gradients=zero)
        return selected, [g[:, None] for g in grads]
    grads = tape.jacobian(
        total, sources, unconnected_gradients=zero, experimental_use_pfor=not eager
    )
    return selected, [tf.transpose(g, [1, 0, *range(2, g.shape.rank)]) for g in grads]


def channel_maps(values: tf.Tensor, reduce: Callable = tf.reduce_mean) -> tf.Tensor:
    """Reduce the channels of `(B, L, H, W, C)` into maps `(B, H, W, L)`."""
    return tf.transpose(reduce(values, axis=-1), [0, 2, 3, 1])


def channels_last_grads(values: tf.Tensor, spatial_axis: Sequence[int]) -> tf.Tensor:
    """`(B, L, *axes of a rank-4 tensor)` to `(B, L, H, W, C)`, the rank-4
    tensor having its height and width at `spatial_axis` (checked before with
    `channels_last`)."""
    axes = [int(a) % 4 for a in spatial_axis]
    perm = [0, 1, axes[0] + 1, axes[1] + 1, ({1, 2, 3} - set(axes)).pop() + 1]
    return values if perm == [0, 1, 2, 3, 4] else tf.transpose(values, perm)


def check_filter(gradient_filter: Any, arg: str = "gradient_filter") -> Callable:
    """`gradient_filter` as a callable (`None` keeps the raw gradient)."""
    if gradient_filter is None:
        return tf.identity
    return check_callable(gradient_filter, arg)


def run_overridden(model: Any, inputs: tf.Tensor, override: Callable) -> list:
    """The outputs of a graph model, or of an exposed model, computed with
    `override(layer, args, kwargs)` in place of every leaf layer (see
    `inspection.graph.run_graph`); the user's model is not modified."""
    if is_exposed(model):
        return model.run(inputs, override=override)
    outputs, _ = run_graph(model, inputs, override=override)
    return outputs


def select(first: Any, indices: Any) -> tf.Tensor:
    """The explained scores `(B, L)` from a model's first output `(B, K)`."""
    return scores(lambda *_, **__: [first], None, indices)[0]


def images(inputs: Any, spatial_axis: Sequence[int]) -> tf.Tensor:
    """`inputs` as float32, once they and `spatial_axis` are checked."""
    inputs = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
    channels_last(inputs, spatial_axis)  # raises for a bad rank or spatial_axis
    return inputs


def input_maps(
    run: Callable[[tf.Tensor], tf.Tensor],
    inputs: tf.Tensor,
    gradient_filter: Callable,
    spatial_axis: Sequence[int],
) -> tuple[tf.Tensor, tf.Tensor]:
    """`(scores, maps)`: the filtered gradient of `run(inputs) -> scores
    (B, L)` w.r.t. the inputs, averaged over channels into `(B, H, W, L)`."""
    inputs = images(inputs, spatial_axis)
    logits, (grads,) = differentiate(lambda x: (run(x), [x]), inputs)
    return logits, channel_maps(
        gradient_filter(channels_last_grads(grads, spatial_axis))
    )
