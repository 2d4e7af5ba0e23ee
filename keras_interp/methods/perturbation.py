"""Perturbation methods (occlusion, RISE): explain a model by how its scores
change when parts of the input are hidden. They only call the model, so any
callable whose first output is the explained scores `(B, K)` works. Perturbed
copies are scored in chunks of `batch_size` images inside one `tf.while_loop`
(the model is traced once; it compiles with `tf.function` and XLA);
`batch_size` may be a run-time scalar tensor, so one trace serves every chunk
size. RISE lives in `keras_interp.methods._rise` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import received
from keras_interp.methods._base import Size, channels_last, chunked, scores, size
from keras_interp.methods._batching import check_batch_size
from keras_interp.methods.record import OptionSpec, method_record


def _check_pair(value: Any, arg: str, height: Size, width: Size) -> tuple[int, int]:
    """`(width, height)`: two positive ints, no larger than a static image."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
            for v in value
        )
    ):
        raise ValueError(
            f"`{arg}` must be a pair (width, height) of positive integers. "
            f"{received(arg, value)}"
        )
    w, h = int(value[0]), int(value[1])
    too_wide = isinstance(width, int) and w > width
    if too_wide or (isinstance(height, int) and h > height):
        raise ValueError(
            f"`{arg}` (width {w}, height {h}) must not exceed the image (width "
            f"{width}, height {height}). {received(arg, value)}"
        )
    return w, h


def occlusion_grid_shape(
    image_size: tuple[int, int],
    window: tuple[int, int] = (11, 11),
    stride: tuple[int, int] = (2, 2),
) -> tuple[int, int]:
    """The `(n_row, n_col)` grid of window positions `occlusion` evaluates.

    `n_row = (H - window_height) // stride_height + 1` and
    `n_col = (W - window_width) // stride_width + 1`, as dnnbrain's
    `OccluderDiscrepancyMapping`.

    Args:
        image_size: `(height, width)` of the images (Keras order).
        window: `(width, height)` of the occluder (dnnbrain order).
        stride: `(width_step, height_step)` (dnnbrain order).

    Returns:
        `(n_row, n_col)`.

    Raises:
        ValueError: `window` or `stride` is not a pair of positive integers no
            larger than the image.

    Example:
        >>> occlusion_grid_shape((224, 224))
        (107, 107)
    """
    height, width = (int(s) for s in image_size)
    win_w, win_h = _check_pair(window, "window", height, width)
    step_w, step_h = _check_pair(stride, "stride", height, width)
    return (height - win_h) // step_h + 1, (width - win_w) // step_w + 1


def _check_occluder(occluder: Any, channels: int | None) -> tf.Tensor:
    """The occluder as a float32 scalar or per-channel `(C,)` constant."""
    try:
        value = np.asarray(occluder, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(
            "`occluder` must be a number or a sequence of one number per channel. "
            f"{received('occluder', occluder)}"
        ) from None
    wrong_length = value.ndim == 1 and channels is not None and value.size != channels
    if value.ndim > 1 or wrong_length or not np.isfinite(value).all():
        raise ValueError(
            f"`occluder` must be a finite number or {channels} finite numbers (one "
            f"per channel). {received('occluder', occluder)}"
        )
    return tf.constant(value)


def _gather_rows(indices: Any, rows: tf.Tensor) -> tf.Tensor | None:
    return None if indices is None else tf.gather(tf.convert_to_tensor(indices), rows)


@method_record(
    family="perturbation",
    postprocessing=filters.positive_normalize,
    signed=True,
    options={
        "window": OptionSpec.pair(),
        "stride": OptionSpec.pair(),
        "occluder": OptionSpec(check=lambda v, _: _check_occluder(v, None)),
        "batch_size": OptionSpec.integer(low=1),
        "incremental": OptionSpec.boolean(),
    },
)
def occlusion(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    window: tuple[int, int] = (11, 11),
    stride: tuple[int, int] = (2, 2),
    occluder: float | Sequence[float] = 0.0,
    batch_size: int = 64,
    spatial_axis: tuple[int, int] = (-3, -2),
    incremental: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Occlusion sensitivity: the score lost when a window of the image is hidden.

    A `height x width` window slides over the image with steps `(w_step,
    h_step)`; for window position `(i, j)` the occluded copy has rows
    `[i*h_step, i*h_step + height)` and columns `[j*w_step, j*w_step + width)`
    set to `occluder`, and

        d[b, i, j, l] = s_l(x_b) - s_l(x_b occluded at (i, j)),
        maps[b, y, x, l] = mean of d[b, i, j, l] over the windows (i, j)
                           that covered pixel (y, x)   (0 if none did),

    so positive values mark regions whose occlusion lowers the score, placed
    where the windows were (captum's `Occlusion` averages the same way). The
    grid `d` is dnnbrain's `OccluderDiscrepancyMapping` with its argument
    order: `window`
    is `(width, height)` and `stride` is `(w_step, h_step)`; channels are
    0-based. dnnbrain's `metric` (how a channel map is reduced to one number)
    is not an argument: what is explained is chosen once for every method with
    `expose(model, outputs=Target(layer, reduce="mean"))` (or `"max"`,
    `"l1"`, `"l2"`), the explained units with `indices`.

    The occluder is applied in the model's input space (dnnbrain blacks out
    uint8 pixels before normalisation: pass the normalised value of black, or
    a per-channel value, to reproduce it). Copies are scored in chunks of
    `batch_size` images, vectorised, in one `tf.while_loop`.

    Args:
        model: a model or callable whose first output is the explained scores
            `(B, K)`.
        inputs: float images `(B, H, W, C)` (static height and width are
            checked against `window`).
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        window: `(width, height)` of the occluder, positive and no larger than
            the image.
        stride: `(w_step, h_step)` between window positions.
        occluder: the value of occluded pixels, a number or one per channel.
        batch_size: occluded images per model call: a positive int, or a
            scalar int tensor (the engine passes its batch size at run time).
        spatial_axis: the height and width axes of `inputs`.
        incremental: recompute, for each occluded copy, only the part of each
            layer the window can reach and take the rest from the clean pass
            (`keras_interp.methods.incremental.incremental_occlusion`: the same
            maps up to float32 round-off, 2-3x faster on MobileNetV2 and
            ResNet50 at small windows; layers it does not support run in full).

    Returns:
        `(logits, maps)` of shapes `(B, L)` (the clean scores) and
        `(B, H, W, L)`, at the input resolution: the grid of `n_row x n_col`
        window positions (see `occlusion_grid_shape`) spread over the pixels
        each window covered. Pixels past the last window (when `(H - height)`
        is not a multiple of `h_step`) are 0.

    Raises:
        ValueError: bad `window`, `stride`, `occluder`, `batch_size`, `inputs`
            rank or `spatial_axis`, or a model whose first output is not
            `(B, K)`.
        TypeError: a non-numeric `occluder` or `batch_size`.

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 3)),
        ...     keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> logits, maps = occlusion(model, tf.ones((1, 8, 8, 3)), [[1]],
        ...                          window=(4, 4), stride=(2, 2))
        >>> maps.shape
        TensorShape([1, 8, 8, 1])

    References:
        Zeiler & Fergus, Visualizing and Understanding Convolutional Networks,
        ECCV 2014. arXiv:1311.2901.
        Chen et al., DNNBrain: a unifying toolbox for mapping deep neural
        networks and brains, Frontiers in Computational Neuroscience 2020.
        Nakandala et al., Incremental and Approximate Inference for Faster
        Occlusion-based Deep CNN Explanations, SIGMOD 2019 (`incremental`).
    """
    if incremental:
        from keras_interp.methods.incremental import incremental_occlusion

        return incremental_occlusion(
            model,
            inputs,
            indices,
            window=window,
            stride=stride,
            occluder=occluder,
            batch_size=batch_size,
            spatial_axis=spatial_axis,
        )
    batch_size = check_batch_size(batch_size)
    x, to_model = channels_last(inputs, spatial_axis)
    height, width = size(x, 1), size(x, 2)
    win_w, win_h = _check_pair(window, "window", height, width)
    step_w, step_h = _check_pair(stride, "stride", height, width)
    fill = _check_occluder(occluder, x.shape[-1])
    n_row = (height - win_h) // step_h + 1
    n_col = (width - win_w) // step_w + 1
    positions = n_row * n_col
    logits, _ = scores(model, to_model(x), indices)
    logits = tf.cast(logits, tf.float32)
    batch, units = size(x, 0), size(logits, 1)
    rows, cols = tf.range(height), tf.range(width)

    def update(occluded_scores, jobs, valid):
        sample, position = jobs // positions, jobs % positions
        top = (position // n_col * step_h)[:, None]
        left = (position % n_col * step_w)[:, None]
        in_rows = (rows[None] >= top) & (rows[None] < top + win_h)  # (k, H)
        in_cols = (cols[None] >= left) & (cols[None] < left + win_w)  # (k, W)
        hidden = in_rows[:, :, None, None] & in_cols[:, None, :, None]
        images = tf.where(hidden, fill, tf.gather(x, sample))
        values, _ = scores(model, to_model(images), _gather_rows(indices, sample))
        values = tf.cast(values, tf.float32) * valid[:, None]
        where = tf.stack([sample, position], axis=-1)
        return tf.tensor_scatter_nd_add(occluded_scores, where, values)

    occluded = tf.zeros([batch, positions, units])
    occluded = chunked(batch * positions, batch_size, update, occluded)
    grid = tf.reshape(logits[:, None, :] - occluded, [batch, n_row, n_col, units])
    return logits, spread_windows(
        grid, (height, width), (win_h, win_w), (step_h, step_w)
    )


def _coverage(length: Size, count: Size, window: int, step: int) -> tf.Tensor:
    """`(length, count)` float 0/1: pixel `p` lies in window position `i`."""
    pixels = tf.range(length)[:, None]
    starts = (tf.range(count) * step)[None]
    return tf.cast((pixels >= starts) & (pixels < starts + window), tf.float32)


def spread_windows(
    grid: tf.Tensor,
    image_size: tuple[Size, Size],
    window: tuple[int, int],
    stride: tuple[int, int],
) -> tf.Tensor:
    """Window values `(B, n_row, n_col, L)` as pixels `(B, H, W, L)`: each pixel
    gets the mean of the values of the windows that covered it (0 if none did).

    So a window's value lies where the window was, whatever the grid's size
    (resizing the grid to the image would stretch it: window centres do not
    span the image evenly). `window` and `stride` are `(height, width)` here.
    Coverage is separable, so the sum is `R @ grid @ C.T` with 0/1 coverage
    matrices `R (H, n_row)`, `C (W, n_col)`, and the count `rows * cols`.
    """
    rows = _coverage(image_size[0], tf.shape(grid)[1], window[0], stride[0])
    cols = _coverage(image_size[1], tf.shape(grid)[2], window[1], stride[1])
    total = tf.einsum("hi,bijl,wj->bhwl", rows, grid, cols)
    count = tf.reduce_sum(rows, 1)[:, None] * tf.reduce_sum(cols, 1)[None, :]
    return tf.math.divide_no_nan(total, count[None, :, :, None])


# RISE lives in its own module; imported here so that
# `keras_interp.methods.perturbation.rise` keeps working (registered after occlusion).
from keras_interp.methods._rise import rise, rise_masks  # noqa: E402

__all__ = ["occlusion", "occlusion_grid_shape", "rise", "rise_masks", "spread_windows"]
