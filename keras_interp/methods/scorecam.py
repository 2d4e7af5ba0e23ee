"""Score-CAM: channel weights from the scores of masked inputs (no gradients)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_one_of, check_positive_int, received
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import scores
from keras_interp.methods.cams import (
    SPATIAL_AXIS,
    exposed_outputs,
    float_inputs,
    spatial_axes,
)
from keras_interp.methods.record import OptionSpec, method_record


@method_record(
    family="cam",
    exposed=True,
    postprocessing=filters.positive_normalize,
    signed=True,
    options={
        "batch_size": OptionSpec.integer(low=1),
        "max_channels": OptionSpec.integer(low=1, optional=True),
        "rank_by": OptionSpec.choice("mean", "std"),
    },
)
def scorecam(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: int | Sequence[int] = SPATIAL_AXIS,
    batch_size: int = 32,
    max_channels: int | None = None,
    rank_by: str = "mean",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Score-weighted class activation maps, at the input resolution.

    Each activation channel `A_k`, min-max normalised to `[0, 1]` and upsampled
    (bilinear) to the input size, masks the input; the channel's weight is the
    increase of the explained score it causes over the baseline `x * 0` (the
    paper's "channel-wise increase of confidence"):

        m_k = up((A_k - min A_k) / (max A_k - min A_k))    (0 for a flat channel)
        s_k = S(x * m_k) - S(x * 0)
        maps = sum_k s_k * m_k

    Choices, against the references:

    - keras-explainable weighed by the raw scores `S(x * m_k)`, without the
      baseline; the paper subtracts it, as done here.
    - The paper's Algorithm 1 also applies a softmax over the channels' scores.
      It is not applied: it cancels the baseline (a softmax is shift
      invariant), is near one-hot on logits and near uniform on probabilities,
      and discards negative evidence.
    - `S` is the model's first output as exposed, the logits by default. The
      official implementation scores class probabilities: expose
      `Target(activation="softmax")` for that.
    - As the official implementation and keras-explainable, the weights
      combine the normalised masks `m_k`, not the raw activations.
    - The maps are returned at the input resolution `(B, H, W, L)`, the
      resolution of the masks (the engine's resizing is then the identity).
      They are computed as the bilinear upsampling of the low-resolution
      combination, equal to combining the upsampled masks since bilinear
      resizing is linear, in `O(B h w C)` memory instead of `O(B H W C)`.
    - No ReLU on the maps (post-processing filters them).

    Cost: one forward pass per (sample, channel) plus the baseline's, run as
    forward passes of `batch_size` masked images inside a `tf.while_loop`
    (traceable with `tf.function` and XLA). `max_channels=k` keeps, per
    sample, the `k` channels with the largest mean activation (or, with
    `rank_by="std"`, those that vary most over space, as Faster Score-CAM
    ranks them: a flat channel gives an empty mask), so a 2048-channel
    backbone needs `k`, not 2048, passes.

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`).
        inputs: float images `(B, H, W, C_in)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the spatial axes of the activations; must be the two
            axes before the channels, `(-3, -2)`.
        batch_size: masked images per forward pass (memory bound).
        max_channels: keep only this many channels per sample. Defaults to
            `None` (all).
        rank_by: how `max_channels` ranks channels: `"mean"` (their mean
            activation) or `"std"` (their spatial standard deviation).

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, H, W, L)`: the scores of
        the clean inputs and the unnormalised maps at the input resolution.

    Raises:
        ValueError: `model` is not exposed, inputs or activations that are not
            images, a bad `spatial_axis`, a non-positive `batch_size` or
            `max_channels`.
        TypeError: a `batch_size` or `max_channels` that is not an integer.

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense())
        >>> x = tf.random.normal((2, 8, 8, 3))
        >>> scores, maps = scorecam(model, x, [[0], [2]], max_channels=2)
        >>> maps.shape
        TensorShape([2, 8, 8, 1])

    References:
        Wang, Wang, Du, Yang, Zhang, Ding, Mardziel and Hu, Score-CAM:
        Score-Weighted Visual Explanations for Convolutional Neural Networks,
        CVPR Workshops 2020. arXiv:1910.01279. Faster Score-CAM: Tabayashi,
        github.com/tabayashi0117/Score-CAM#faster-score-cam.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    check_one_of(rank_by, ("mean", "std"), "rank_by")
    if max_channels is not None:
        max_channels = check_positive_int(max_channels, "max_channels")
    inputs = float_inputs(inputs)
    if inputs.shape.rank != 4:
        raise ValueError(
            "`scorecam` masks images, so `inputs` must have shape (batch, height, "
            f"width, channels). {received('inputs', inputs)}"
        )
    full, activations = exposed_outputs(model, inputs, "scorecam")
    if activations.shape.rank != 4:
        raise ValueError(
            "`scorecam` needs activations of shape (batch, height, width, "
            f"channels); got {tuple(activations.shape)}. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    if spatial_axes(spatial_axis, 4) != (-3, -2):
        raise ValueError(
            "`scorecam` upsamples (batch, height, width, channels) activations, "
            f"so `spatial_axis` must be (-3, -2). "
            f"{received('spatial_axis', spatial_axis)}"
        )
    selected = tf.cast(gather_units(full, indices), tf.float32)
    masks = _masks(tf.cast(activations, tf.float32), max_channels, rank_by)
    size = tf.shape(inputs)[1:3]
    weights = _weights(model, inputs, indices, masks, size, batch_size, selected)
    low = tf.einsum("bhwk,bkl->bhwl", masks, weights)
    return selected, tf.image.resize(low, size, method="bilinear")


def _masks(activations: tf.Tensor, max_channels: int | None, rank_by: str):
    """Min-max normalised channels `(B, h, w, k)`, the `k` best ranked ones
    when `max_channels` is given."""
    if max_channels is not None and max_channels < activations.shape[-1]:
        rank = tf.math.reduce_std if rank_by == "std" else tf.reduce_mean
        spread = rank(activations, axis=(1, 2))
        top = tf.math.top_k(spread, k=max_channels).indices
        activations = tf.gather(activations, top, axis=-1, batch_dims=1)
    low = tf.reduce_min(activations, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(activations, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(activations - low, high - low)


def _weights(
    model: Any,
    inputs: tf.Tensor,
    indices: Any,
    masks: tf.Tensor,
    size: tf.Tensor,
    batch_size: int,
    selected: tf.Tensor,
) -> tf.Tensor:
    """`S(x * m_k) - S(x * 0)` as `(B, k, L)`, `batch_size` images per pass.

    The baseline is one more all-zero mask per sample, so it shares the loop
    (and its trace) with the channels. Pair `p` of the flat list of
    `B * (k + 1)` masked images is sample `p // (k + 1)`, mask `p % (k + 1)`.
    """
    masks = tf.concat([masks, tf.zeros_like(masks[..., :1])], axis=-1)
    per_sample = tf.shape(masks)[-1]
    shape = tf.concat([[-1], tf.shape(masks)[1:3], [1]], axis=0)
    flat = tf.reshape(tf.transpose(masks, (0, 3, 1, 2)), shape)
    total = tf.shape(flat)[0]
    samples, channels = masks.shape[0], masks.shape[-1]
    known = samples is not None and channels is not None
    chunk = min(batch_size, samples * channels) if known else batch_size
    num_chunks = (total + chunk - 1) // chunk
    if indices is not None:
        indices = tf.cast(indices, tf.int32)

    def masked_scores(step: tf.Tensor) -> tf.Tensor:
        pairs = tf.minimum(step * chunk + tf.range(chunk), total - 1)
        samples = pairs // per_sample
        upsampled = tf.image.resize(tf.gather(flat, pairs), size, method="bilinear")
        images = tf.gather(inputs, samples) * upsampled
        units = None if indices is None else tf.gather(indices, samples)
        return tf.cast(scores(model, images, units)[0], tf.float32)

    parts = tf.map_fn(
        masked_scores,
        tf.range(num_chunks),
        fn_output_signature=tf.TensorSpec((chunk, selected.shape[-1]), tf.float32),
        parallel_iterations=1,
    )
    parts = tf.reshape(parts, (-1, tf.shape(parts)[-1]))[:total]
    parts = tf.reshape(parts, (tf.shape(inputs)[0], per_sample, -1))
    return parts[:, :-1] - parts[:, -1:]
