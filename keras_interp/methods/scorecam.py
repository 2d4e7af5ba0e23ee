"""Score-CAM: channel weights from the scores of masked inputs (no gradients)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_one_of, check_positive_int, received
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import (
    channels_last,
    chunked_within,
    float_inputs,
    is_nest,
    scores,
    size,
)
from keras_interp.methods._batching import check_batch_size
from keras_interp.methods._cam_activations import (
    SPATIAL_AXIS,
    exposed_outputs,
    image_axes,
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
        "skip_constant": OptionSpec.boolean(),
    },
)
def scorecam(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: int | Sequence[int] = SPATIAL_AXIS,
    batch_size: int | tf.Tensor = 32,
    max_channels: int | None = None,
    rank_by: str = "mean",
    skip_constant: bool = True,
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
    (traceable with `tf.function` and XLA). A channel that is constant over
    space (all zeros after a ReLU, commonly) has the empty mask `m_k = 0`, so
    `x * m_k` is the baseline and its weight is exactly `S(x * 0) - S(x * 0)
    = 0`: with `skip_constant=True` (the default) such channels are not run.
    The channels to run are moved first and the loop stops after them, so the
    shapes stay static (XLA compiles it); `skip_constant=False` runs every
    channel, with the same maps. `max_channels=k` keeps, per
    sample, the `k` channels with the largest mean activation (or, with
    `rank_by="std"`, those that vary most over space, as Faster Score-CAM
    ranks them: a flat channel gives an empty mask), so a 2048-channel
    backbone needs `k`, not 2048, passes.

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`).
        inputs: float images `(B, H, W, C_in)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the inputs' height and width axes: `(-3, -2)`, or
            `(-2, -1)` for channels-first inputs `(B, C_in, H, W)` (the
            activations are then `(B, C, h, w)`).
        batch_size: masked images per forward pass (memory bound): an int, or
            a scalar int tensor (one trace then serves every value).
        max_channels: keep only this many channels per sample. Defaults to
            `None` (all).
        rank_by: how `max_channels` ranks channels: `"mean"` (their mean
            activation) or `"std"` (their spatial standard deviation).
        skip_constant: do not run the channels that are constant over space
            (their weight is 0 exactly). Defaults to `True`.

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, H, W, L)`: the scores of
        the clean inputs and the unnormalised maps at the input resolution.

    Raises:
        ValueError: `model` is not exposed, inputs or activations that are not
            images, several inputs (a tuple, list or dict), a bad
            `spatial_axis`, a non-positive `batch_size` or `max_channels`.
        TypeError: a `batch_size` or `max_channels` that is not an integer, a
            `skip_constant` that is not a bool.

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
    _check_options(batch_size, max_channels, rank_by, skip_constant)
    if is_nest(inputs):
        raise ValueError(
            "`scorecam` masks one image input, so `inputs` must be one image "
            "tensor, not several inputs (a tuple, list or dict). "
            f"{received('inputs', type(inputs).__name__)}"
        )
    inputs = float_inputs(inputs)
    if inputs.shape.rank != 4:
        raise ValueError(
            "`scorecam` masks images, so `inputs` must have shape (batch, height, "
            f"width, channels). {received('inputs', inputs)}"
        )
    layout = image_axes(spatial_axis, "scorecam")
    full, activations = exposed_outputs(model, inputs, "scorecam")
    if activations.shape.rank != 4:
        raise ValueError(
            "`scorecam` needs activations of shape (batch, height, width, "
            f"channels); got {tuple(activations.shape)}. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    x, to_model = channels_last(inputs, layout)
    activations, _ = channels_last(activations, layout, "activations")
    selected = tf.cast(gather_units(full, indices), tf.float32)
    masks = _masks(activations, max_channels, rank_by)
    image_size = tf.shape(x)[1:3]
    weights = _weights(
        lambda images, units: scores(model, to_model(images), units)[0],
        x,
        indices,
        masks,
        batch_size,
        skip_constant,
        tf.shape(selected)[1],
    )
    low = tf.einsum("bhwk,bkl->bhwl", masks, weights)
    return selected, tf.image.resize(low, image_size, method="bilinear")


def _check_options(batch_size, max_channels, rank_by, skip_constant) -> None:
    """Validate the options; a tensor `batch_size` (the engine's chunk size,
    a run-time value) is taken as it is."""
    check_batch_size(batch_size)
    check_one_of(rank_by, ("mean", "std"), "rank_by")
    if max_channels is not None:
        check_positive_int(max_channels, "max_channels")
    OptionSpec.boolean().validate(skip_constant, "skip_constant")


def _masks(activations: tf.Tensor, max_channels: int | None, rank_by: str):
    """Min-max normalised channels `(B, h, w, k)`, the `k` best ranked ones
    when `max_channels` is given (a constant channel gives zeros)."""
    if max_channels is not None and max_channels < activations.shape[-1]:
        rank = tf.math.reduce_std if rank_by == "std" else tf.reduce_mean
        spread = rank(activations, axis=(1, 2))
        top = tf.math.top_k(spread, k=max_channels).indices
        activations = tf.gather(activations, top, axis=-1, batch_dims=1)
    low = tf.reduce_min(activations, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(activations, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(activations - low, high - low)


def live_first(live: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(order, count)`: the indices of a boolean vector `(N,)`, its True
    entries first (in order), and how many are True."""
    order = tf.argsort(tf.cast(tf.logical_not(live), tf.int32), stable=True)
    return order, tf.reduce_sum(tf.cast(live, tf.int32))


def _weights(
    score: Any,
    x: tf.Tensor,
    indices: Any,
    masks: tf.Tensor,
    batch_size: Any,
    skip_constant: bool,
    units: tf.Tensor,
) -> tf.Tensor:
    """`S(x * m_k) - S(x * 0)` as `(B, k, L)`, `batch_size` images per pass.

    The baseline is one more all-zero mask per sample, so it shares the loop
    (and its trace) with the channels. Pair `p` of the flat list of
    `B * (k + 1)` masks is sample `p // (k + 1)`, mask `p % (k + 1)`. With
    `skip_constant`, only the pairs whose mask is not all zero (and the
    baselines) are scored, listed first by `live_first`; the others get the
    weight 0 they would get (their masked image is the baseline).

    Args:
        score: `score(images (N, H, W, C_in) channels last, units) -> (N, L)`.
        x: channels-last images `(B, H, W, C_in)`.
        indices: units `(B, L)` or None.
        masks: normalised channels `(B, h, w, k)`.
        batch_size: masked images per pass (int or scalar int32 tensor).
        skip_constant: score only the non-empty masks.
        units: `L`, a scalar int32 tensor.
    """
    masks = tf.concat([masks, tf.zeros_like(masks[..., :1])], axis=-1)
    per_sample = size(masks, 3)
    shape = tf.concat([[-1], tf.shape(masks)[1:3], [1]], axis=0)
    flat = tf.reshape(tf.transpose(masks, (0, 3, 1, 2)), shape)
    pairs = size(x, 0) * per_sample
    baseline = tf.range(pairs) % per_sample == per_sample - 1
    live = tf.reduce_max(flat, axis=(1, 2, 3)) > 0
    live = tf.logical_or(live, baseline) if skip_constant else tf.ones_like(live)
    order, count = live_first(live)
    if indices is not None:
        indices = tf.cast(indices, tf.int32)
    image_size = tf.shape(x)[1:3]

    def update(state, jobs, valid):
        del valid  # A padded job repeats the last one: same row, same value.
        chosen = tf.gather(order, jobs)
        sample = chosen // per_sample
        upsampled = tf.image.resize(
            tf.gather(flat, chosen), image_size, method="bilinear"
        )
        images = tf.gather(x, sample) * upsampled
        rows = None if indices is None else tf.gather(indices, sample)
        values = tf.cast(score(images, rows), tf.float32)
        return tf.tensor_scatter_nd_update(state, chosen[:, None], values)

    state = tf.zeros(tf.stack([pairs, units]))
    state = chunked_within(count, pairs, batch_size, update, state)
    parts = tf.reshape(state, tf.stack([-1, per_sample, units]))
    weights = parts[:, :-1] - parts[:, -1:]
    live = tf.reshape(live, tf.stack([-1, per_sample]))[:, :-1, None]
    return tf.where(live, weights, 0.0)
