"""Gradient methods on models with several inputs: one map per input.

As captum: a tuple of inputs gives a tuple of maps (a dict a dict). The map of
an image input `(B, H, W, C)` has its channels reduced, `(B, H, W, L)` as for
one input; the map of any other input (a vector `(B, D)`, say) keeps the
input's shape with the units last, `(B, *shape, L)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import received
from keras_interp.methods._base import (
    channels_last,
    chunked,
    float_inputs,
    scores,
    units_last,
)
from keras_interp.methods._differentiate import (
    channel_maps,
    channels_last_grads,
    differentiate,
)


def checked(inputs: Any, spatial_axis: Sequence[int]) -> Any:
    """A nest of inputs as float32, each image input (rank 4) checked against
    `spatial_axis`."""
    inputs = float_inputs(inputs)
    paths = _paths(inputs)
    for path, leaf in zip(paths, tf.nest.flatten(inputs)):
        if leaf.shape.rank is None or leaf.shape.rank < 2:
            raise ValueError(
                f"`inputs{path}` must have a batch axis and at least one more. "
                f"{received(f'inputs{path}', leaf)}"
            )
        if leaf.shape.rank == 4:
            channels_last(leaf, spatial_axis, f"inputs{path}")
    return inputs


def _paths(inputs: Any) -> list[str]:
    """`[0]`, `['name']`: how each flat input is named in messages."""
    if isinstance(inputs, dict):
        return [f"[{key!r}]" for key in sorted(inputs)]
    return [f"[{i}]" for i in range(len(tf.nest.flatten(inputs)))]


def input_gradients(
    model: Any, inputs: Any, indices: Any
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """`(scores (B, L), grads)`: per flat input, `(B, L, *input shape)`."""
    return differentiate(
        lambda x: (scores(model, x, indices)[0], tf.nest.flatten(x)), inputs
    )


def per_input_maps(
    inputs: Any,
    values: Sequence[tf.Tensor],
    spatial_axis: Sequence[int],
    reduce: Callable = tf.reduce_mean,
) -> Any:
    """Per-unit values `(B, L, *input shape)` (one per flat input) as maps in
    the structure of `inputs`: channels reduced by `reduce` for images,
    units last for other inputs."""
    maps = [
        channel_maps(channels_last_grads(value, spatial_axis), reduce)
        if leaf.shape.rank == 4
        else units_last(value)
        for value, leaf in zip(values, tf.nest.flatten(inputs))
    ]
    return tf.nest.pack_sequence_as(inputs, maps)


def baselines(baseline: Any, inputs: Any) -> Any:
    """The baseline of each input: zeros (`None`), a number for all, or a nest
    of arrays in the structure of `inputs`, each broadcastable to its input."""
    if baseline is None:
        return tf.nest.map_structure(tf.zeros_like, inputs)
    if not isinstance(baseline, (tuple, list, dict)):
        if tf.convert_to_tensor(baseline).shape.rank != 0:
            raise ValueError(
                "With several inputs, `baseline` must be None, a number, or one "
                "array per input in the structure of the inputs. "
                f"{received('baseline', baseline)}"
            )
        baseline = tf.nest.map_structure(lambda _: baseline, inputs)
    try:
        tf.nest.assert_same_structure(baseline, inputs, check_types=False)
    except (ValueError, TypeError):
        raise ValueError(
            "`baseline` must have the structure of the inputs (one array per "
            f"input). {received('baseline', baseline)}"
        ) from None

    return tf.nest.map_structure(
        lambda value, leaf: broadcast_baseline(value, leaf, baseline), baseline, inputs
    )


def broadcast_baseline(value: Any, leaf: tf.Tensor, baseline: Any) -> tf.Tensor:
    """`value` as float32, broadcast to the input `leaf`; a ValueError naming
    `baseline` (the user's argument, `baseline`) when it cannot be."""
    value = tf.cast(value, tf.float32)
    try:
        tf.broadcast_static_shape(value.shape, leaf.shape)
    except ValueError:
        raise ValueError(
            "`baseline` must be a number or an array broadcastable to its input "
            f"of shape {tuple(leaf.shape)}. {received('baseline', baseline)}"
        ) from None
    return tf.broadcast_to(value, tf.shape(leaf))


def path_gradient_sums(
    model: Any,
    baseline: Any,
    delta: Any,
    indices: Any,
    steps: int,
    batch_size: Any,
    units: Any,
) -> list[tf.Tensor]:
    """`sum_k grad s(x0 + a_k delta)` per sample, unit and flat input, each
    `(B, L, *input shape)`; `batch_size` interpolated points per pass."""
    flat_delta = tf.nest.flatten(delta)
    batch = tf.shape(flat_delta[0])[0]
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps

    def point(base: tf.Tensor, step: tf.Tensor, sample, alpha) -> tf.Tensor:
        shape = [-1] + [1] * (base.shape.rank - 1)
        scale = tf.reshape(alpha, shape)
        return tf.gather(base, sample) + scale * tf.gather(step, sample)

    def update(totals, points, valid):  # point p: sample p // steps, step p % steps
        sample = points // steps
        alpha = tf.gather(alphas, points % steps)
        images = tf.nest.map_structure(
            lambda b, d: point(b, d, sample, alpha), baseline, delta
        )
        chosen = None if indices is None else tf.gather(indices, sample)
        _, grads = input_gradients(model, images, chosen)
        segment = tf.where(valid > 0, sample, batch)  # padding: a spare row
        return [
            total + tf.math.unsorted_segment_sum(grad, segment, batch + 1)
            for total, grad in zip(totals, grads)
        ]

    totals = [
        tf.zeros(tf.concat([[batch + 1, units], tf.shape(d)[1:]], axis=0))
        for d in flat_delta
    ]
    count = batch * steps
    size = count if batch_size is None else batch_size
    return [total[:-1] for total in chunked(count, size, update, totals)]


def filtered_maps(
    run: Callable[[Any], tf.Tensor],
    inputs: Any,
    gradient_filter: Callable,
    spatial_axis: Sequence[int],
) -> tuple[tf.Tensor, Any]:
    """`(scores, maps)`: `input_maps` for a nest, the filtered gradient of
    `run(inputs) -> scores (B, L)` w.r.t. each input (channels averaged for
    images)."""
    inputs = checked(inputs, spatial_axis)
    logits, grads = differentiate(lambda x: (run(x), tf.nest.flatten(x)), inputs)
    values = [gradient_filter(grad) for grad in grads]
    return logits, per_input_maps(inputs, values, spatial_axis)


def integrated_gradients(
    model: Any,
    inputs: Any,
    indices: Any,
    baseline: Any,
    steps: int,
    batch_size: Any,
    spatial_axis: Sequence[int],
) -> tuple[tf.Tensor, Any]:
    """`integrated_gradients` of a model with several inputs: one map each,
    `sum (x - x0) * mean path gradient` (channels summed for images)."""
    inputs = checked(inputs, spatial_axis)
    baseline = baselines(baseline, inputs)
    logits = tf.cast(scores(model, inputs, indices)[0], tf.float32)
    delta = tf.nest.map_structure(lambda x, b: x - b, inputs, baseline)
    totals = path_gradient_sums(
        model, baseline, delta, indices, steps, batch_size, tf.shape(logits)[1]
    )
    flat_delta = tf.nest.flatten(delta)
    products = [total / steps * d[:, None] for total, d in zip(totals, flat_delta)]
    return logits, per_input_maps(inputs, products, spatial_axis, tf.reduce_sum)
