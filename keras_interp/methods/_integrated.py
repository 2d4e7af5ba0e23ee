"""Integrated gradients (split from `keras_interp.methods.gradient`, which
re-exports it): the path integral of the gradient from a baseline, its points
differentiated in chunks of `batch_size` inside one `tf.while_loop`.
`batch_size` may be a run-time tensor (see `keras_interp.methods._batching`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_positive_int
from keras_interp.methods import _nests
from keras_interp.methods._base import chunked, is_nest, scores
from keras_interp.methods._batching import check_batch_size
from keras_interp.methods._differentiate import (
    SPATIAL_AXIS,
    channel_maps,
    channels_last_grads,
    differentiate,
    images,
)
from keras_interp.methods.record import OptionSpec, method_record


@method_record(
    family="gradient",
    postprocessing=filters.absolute_normalize,
    signed=True,
    options={
        "steps": OptionSpec.integer(low=1),
        "batch_size": OptionSpec.integer(low=1, optional=True),
    },
)
def integrated_gradients(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    baseline: Any = None,
    steps: int = 20,
    batch_size: int | None = None,
    spatial_axis: tuple[int, ...] = SPATIAL_AXIS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Integrated gradients along the straight path from a baseline.

    `maps[b, h, w, l] = sum_c (x - x0)[h, w, c] * (1/m) sum_k
    d s_l(x0 + a_k (x - x0)) / dx[h, w, c]`, with the midpoint Riemann rule
    `a_k = (k + 1/2) / m`, `k = 0..m-1` (`m = steps` gradient evaluations, none
    at the end points; error O(1/m^2) for smooth models, exact for linear ones).
    Completeness: the map of unit `l` sums to about `s_l(x) - s_l(x0)`.

    The `B * steps` interpolated images are differentiated in passes of at most
    `batch_size` images (all of them in one pass by default), a sample's points
    being consecutive; one more forward pass on `inputs` gives the logits.

    Args:
        model: a model (or callable) whose first output is the scores `(B, K)`.
        inputs: float images `(B, H, W, C)`, or a tuple, list or dict of
            inputs of a model with several inputs: `maps` is then one map
            per input in the same structure (`(B, H, W, L)` for an image,
            `(B, *shape, L)` for another input).
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        baseline: the reference input `x0`: `None` (zeros), a number, or an
            array broadcastable to `inputs` (e.g. `(H, W, C)` or `(B, H, W, C)`).
        steps: number of points of the Riemann sum (positive integer).
        batch_size: most interpolated images per forward/backward pass (a
            positive int or a scalar int tensor, which the engine passes at
            run time); `None` for all `B * steps` at once.
        spatial_axis: the height and width axes of `inputs`: `(-3, -2)` for
            `(B, H, W, C)`, `(-2, -1)` for channels-first `(B, C, H, W)`; the
            maps are channels-last `(B, H, W, L)` either way.

    Returns:
        `(logits, maps)` of shapes `(B, L)` (scores at `inputs`) and
        `(B, H, W, L)`, unnormalised and signed.

    Raises:
        ValueError: `steps` or `batch_size` not positive, or a `baseline` that
            does not broadcast to `inputs`.
        TypeError: `steps` or `batch_size` not an integer.

    Example:
        >>> model = keras_interp.testing.models.linear()
        >>> logits, maps = integrated_gradients(model, tf.ones((1, 6, 6, 3)),
        ...                                     steps=8, batch_size=4)
        >>> maps.shape
        TensorShape([1, 6, 6, 2])

    References:
        Sundararajan, Taly & Yan, Axiomatic Attribution for Deep Networks, ICML
        2017. arXiv:1703.01365.
    """
    steps = check_positive_int(steps, "steps")
    if batch_size is not None:
        batch_size = check_batch_size(batch_size)
    if is_nest(inputs):
        return _nests.integrated_gradients(
            model, inputs, indices, baseline, steps, batch_size, spatial_axis
        )
    inputs = images(inputs, spatial_axis)
    baseline = _baseline(baseline, inputs)
    logits = tf.cast(scores(model, inputs, indices)[0], tf.float32)
    delta = inputs - baseline
    total = _path_gradient_sum(
        model, baseline, delta, indices, steps, batch_size, tf.shape(logits)[1]
    )
    products = channels_last_grads(total / steps * delta[:, None], spatial_axis)
    return logits, channel_maps(products, tf.reduce_sum)


def _baseline(baseline: Any, inputs: tf.Tensor) -> tf.Tensor:
    if baseline is None:
        return tf.zeros_like(inputs)
    return _nests.broadcast_baseline(baseline, inputs, baseline)


def _path_gradient_sum(model, baseline, delta, indices, steps, batch_size, units):
    """`sum_k grad s(x0 + a_k delta)` per sample and unit, `(B, L, *input)`."""
    batch = tf.shape(delta)[0]
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps
    shape = tf.concat([[batch + 1, units], tf.shape(delta)[1:]], axis=0)

    def update(total, points, valid):  # point p: sample p // steps, step p % steps
        sample = points // steps
        alpha = tf.reshape(tf.gather(alphas, points % steps), [-1, 1, 1, 1])
        images = tf.gather(baseline, sample) + alpha * tf.gather(delta, sample)
        chosen = None if indices is None else tf.gather(indices, sample)
        _, (grads,) = differentiate(
            lambda x: (scores(model, x, chosen)[0], [x]), images
        )
        segment = tf.where(valid > 0, sample, batch)  # padding: a spare row
        return total + tf.math.unsorted_segment_sum(grads, segment, batch + 1)

    count = batch * steps
    size = count if batch_size is None else batch_size
    return chunked(count, size, update, tf.zeros(shape))[:-1]
