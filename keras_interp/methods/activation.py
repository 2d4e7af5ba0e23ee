"""Activation maps: a layer's channels upsampled to the input (dnnbrain's
`UpsamplingActivationMapping`)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_one_of, received
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import channels_last, float_inputs, forward, size
from keras_interp.methods._cam_activations import first_image
from keras_interp.methods.record import OptionSpec, method_record

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")


@functools.lru_cache(maxsize=256)
def _interpolation_matrix(size_in: int, size_out: int, method: str) -> np.ndarray:
    """`(size_out, size_in)`: `tf.image.resize` along one axis, as a matrix.

    Every `tf.image.resize` method (without antialiasing) is separable, so
    resizing is `R_h @ image @ R_w.T`. The matrix is the resize of the identity,
    a constant of the static sizes computed eagerly (`init_scope`) once.
    """
    with tf.init_scope():
        basis = tf.eye(size_in)[None, :, None, :]  # Channel j holds e_j.
        resized = tf.image.resize(basis, (size_out, 1), method=method)
        return resized.numpy()[0, :, 0, :]


def _resize(maps: tf.Tensor, height: Any, width: Any, method: str) -> tf.Tensor:
    """`tf.image.resize(maps, (height, width), method)`, as two matrix
    products when the sizes are static (which XLA compiles for every method;
    it has no ResizeBicubic/ResizeArea kernels)."""
    sizes = (maps.shape[1], maps.shape[2], height, width)
    if not all(isinstance(s, int) for s in sizes):
        return tf.image.resize(maps, tf.stack([height, width]), method=method)
    rows = tf.constant(_interpolation_matrix(sizes[0], height, method))
    cols = tf.constant(_interpolation_matrix(sizes[1], width, method))
    return tf.einsum("Hh,bhwl,Ww->bHWl", rows, maps, cols)


def percentile(values: tf.Tensor, q: float) -> tf.Tensor:
    """`np.percentile(values, 100 * q, axis=-1)` (numpy's default "linear"
    method) in TensorFlow: sort, then interpolate between the two order
    statistics around position `q * (n - 1)`."""
    ordered = tf.sort(values, axis=-1)
    count = tf.shape(ordered)[-1]
    position = q * tf.cast(count - 1, tf.float64)
    low = tf.floor(position)
    index = tf.cast(low, tf.int32)
    below = tf.gather(ordered, index, axis=-1)
    above = tf.gather(ordered, tf.minimum(index + 1, count - 1), axis=-1)
    gamma = tf.cast(position - low, values.dtype)
    step = above - below
    # numpy's _lerp: interpolate from the nearer end.
    return tf.where(gamma >= 0.5, above - step * (1 - gamma), below + step * gamma)


def _check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(
        threshold, (int, float, np.number)
    ):
        raise TypeError(
            f"`threshold` must be None or a number. {received('threshold', threshold)}"
        )
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(
            f"`threshold` must be in [0, 1]. {received('threshold', threshold)}"
        )
    return float(threshold)


@method_record(
    family="activation",
    exposed=True,
    postprocessing=filters.normalize,
    shortcut=False,
    options={
        "interpolation": OptionSpec.choice(*INTERPOLATIONS),
        "threshold": OptionSpec.number(low=0, high=1, optional=True),
    },
)
def upsampled_activation(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    interpolation: str = "bicubic",
    threshold: float | None = None,
    spatial_axis: tuple[int, int] = (-3, -2),
) -> tuple[tf.Tensor, tf.Tensor]:
    """Activation channels upsampled to the input size.

        maps[b, :, :, l] = max(up(A_b[..., c]), P_t(up(A_b[..., c]))),
        c = indices[b, l],

    where `A` is the exposed activation `(B, h, w, C)`, `up` resizes to the
    input's `(H, W)` and `P_t` is the `100 t`-th percentile of that one map
    (numpy's linear interpolation), applied only when `threshold=t` is given:
    values below it are raised to it, not zeroed (dnnbrain's clipping). This is
    dnnbrain's `UpsamplingActivationMapping` as a method, with 0-based channels.

    Here `indices` select CHANNELS of the activations (`None`: every channel),
    not units of the model's scores, which are not used; the returned logits
    are the spatial means of the selected channels (the scores of
    `Target(layer, reduce="mean")`).

    Resizing equals `tf.image.resize(..., method=interpolation)` without
    antialiasing (computed as two matrix products so that XLA compiles it).
    dnnbrain resizes with torch (`align_corners=False`): `nearest` and
    `bilinear` agree with it for integer scale factors; torch's `bicubic` uses
    the cubic coefficient -0.75 where TensorFlow uses -0.5 (Keys), and torch's
    `area` is adaptive average pooling.

    Args:
        model: an exposed model returning `[scores, activations, ...]`, e.g.
            `expose(model, arguments="conv5")`; the second output must be
            spatial `(B, h, w, C)`.
        inputs: float images `(B, H, W, C)`, or a tuple/dict of several
            inputs (the maps are sized as the first image among them).
        indices: channels to map, int `(B, L)`. Defaults to `None` (all).
        interpolation: `"nearest"`, `"bilinear"`, `"bicubic"` or `"area"`.
        threshold: `None`, or `t` in [0, 1]: raise each map's values below its
            `100 t`-th percentile to that percentile.
        spatial_axis: the height and width axes of `inputs` and activations.

    Returns:
        `(logits, maps)` of shapes `(B, L)` (spatial means of the channels) and
        `(B, H, W, L)`, at the input resolution.

    Raises:
        ValueError: a model that is not exposed (fewer than two outputs) or
            whose second output is not rank 4, an unknown `interpolation`,
            `threshold` outside [0, 1], or a bad `spatial_axis`.
        TypeError: a non-numeric `threshold`.

    Example:
        >>> exposed = expose(gap_dense(size=8))  # [logits, conv activations]
        >>> logits, maps = upsampled_activation(exposed, tf.ones((1, 8, 8, 3)),
        ...                                     [[2]], interpolation="nearest")
        >>> maps.shape
        TensorShape([1, 8, 8, 1])

    References:
        Chen et al., DNNBrain: a unifying toolbox for mapping deep neural
        networks and brains, Frontiers in Computational Neuroscience 2020.
        Zhou et al., Object Detectors Emerge in Deep Scene CNNs, ICLR 2015.
        arXiv:1412.6856.
    """
    check_one_of(interpolation, INTERPOLATIONS, "interpolation")
    threshold = _check_threshold(threshold)
    inputs = float_inputs(inputs)  # One tensor, or a nest of several inputs.
    x = first_image(inputs, spatial_axis, "upsampled_activation")
    outputs = forward(model, inputs)
    if len(outputs) < 2:
        raise ValueError(
            "`model` must be an exposed model returning [scores, activations], "
            f"e.g. expose(model, arguments=layer); it returned {len(outputs)} "
            f"output(s). {received('model', getattr(model, 'name', model))}"
        )
    activations = tf.convert_to_tensor(outputs[1])
    if activations.shape.rank != 4:
        raise ValueError(
            "The activations (the exposed model's second output) must be a "
            f"spatial map (B, h, w, C); got shape {tuple(activations.shape)}. "
            "Expose a convolutional layer. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    activations, _ = channels_last(activations, spatial_axis, "activations")
    selected = gather_units(activations, indices)
    logits = tf.reduce_mean(selected, axis=(1, 2))
    maps = _resize(selected, size(x, 1), size(x, 2), interpolation)
    if threshold is not None:
        flat = tf.transpose(maps, (0, 3, 1, 2))
        flat = tf.reshape(flat, [size(maps, 0), size(maps, 3), -1])  # (B, L, H*W)
        maps = tf.maximum(maps, percentile(flat, threshold)[:, None, None, :])
    return logits, maps
