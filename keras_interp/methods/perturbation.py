"""Perturbation methods (occlusion, RISE): explain a model by how its scores
change when parts of the input are hidden. They only call the model, so any
callable whose first output is the explained scores `(B, K)` works. Perturbed
copies are scored in chunks of `batch_size` images inside one `tf.while_loop`
(the model is traced once; it compiles with `tf.function` and XLA).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_positive_int, received
from keras_interp.methods._base import Size, channels_last, chunked, scores, size
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
        batch_size: occluded images per model call.
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
    batch_size = check_positive_int(batch_size, "batch_size")
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


def _check_probability(value: Any) -> float:
    """A float in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"`probability` must be a number. {received('probability', value)}"
        )
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"`probability` must be in (0, 1]. {received('probability', value)}"
        )
    return float(value)


def _rise_cells(
    num_masks: int, grid_size: int, probability: float, seed: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Binary grids `(N, s, s)` and uniform shifts `(N, 2)` in [0, 1)."""
    grid_seed = tf.constant([seed, 0], tf.int64)
    shift_seed = tf.constant([seed, 1], tf.int64)
    shape = (num_masks, grid_size, grid_size)
    uniform = tf.random.stateless_uniform(shape, grid_seed, alg="philox")
    grids = tf.cast(uniform < probability, tf.float32)
    shifts = tf.random.stateless_uniform((num_masks, 2), shift_seed, alg="philox")
    return grids, shifts


def _rise_upsample(grids: tf.Tensor, shifts: tf.Tensor, height: Size, width: Size):
    """Masks `(k, H, W)`: grids upsampled bilinearly to `(s + 1) * cell`, cropped
    at the shifts (`cell = ceil(size / s)`, shift in `[0, cell)` pixels)."""
    grid_size = grids.shape[-1]
    cell_h, cell_w = -(-height // grid_size), -(-width // grid_size)
    up = tf.image.resize(
        grids[..., None], [(grid_size + 1) * cell_h, (grid_size + 1) * cell_w]
    )[..., 0]
    offsets = []
    for shift, cell in ((shifts[:, 0], cell_h), (shifts[:, 1], cell_w)):
        offset = tf.cast(tf.floor(shift * tf.cast(cell, tf.float32)), tf.int32)
        offsets.append(tf.minimum(offset, cell - 1)[:, None])
    up = tf.gather(up, offsets[0] + tf.range(height)[None], axis=1, batch_dims=1)
    return tf.gather(up, offsets[1] + tf.range(width)[None], axis=2, batch_dims=1)


def _check_rise(num_masks, grid_size, probability, seed, batch_size):
    return (
        check_positive_int(num_masks, "num_masks"),
        check_positive_int(grid_size, "grid_size"),
        _check_probability(probability),
        check_positive_int(seed, "seed", allow_zero=True),
        check_positive_int(batch_size, "batch_size"),
    )


def rise_masks(
    image_size: tuple[int, int],
    *,
    num_masks: int = 1000,
    grid_size: int = 8,
    probability: float = 0.5,
    seed: int = 0,
) -> tf.Tensor:
    """The masks `rise` multiplies the images by, float32 `(N, H, W)` in [0, 1].

    Mask `n` depends only on `seed` and `n`: `rise` draws the same masks
    whatever its `batch_size`. Arguments as in `rise`; `image_size` is
    `(height, width)`.

    Example:
        >>> rise_masks((32, 32), num_masks=4).shape
        TensorShape([4, 32, 32])
    """
    num_masks, grid_size, probability, seed, _ = _check_rise(
        num_masks, grid_size, probability, seed, 1
    )
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise ValueError(
            "`image_size` must be (height, width). "
            f"{received('image_size', image_size)}"
        )
    height, width = (check_positive_int(s, "image_size") for s in image_size)
    grids, shifts = _rise_cells(num_masks, grid_size, probability, seed)
    return _rise_upsample(grids, shifts, height, width)


@method_record(
    family="perturbation",
    postprocessing=filters.normalize,
    options={
        "num_masks": OptionSpec.integer(low=1),
        "grid_size": OptionSpec.integer(low=1),
        "probability": OptionSpec.number(low=0, high=1, include_low=False),
        "batch_size": OptionSpec.integer(low=1),
        "seed": OptionSpec.integer(low=0),
    },
)
def rise(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    num_masks: int = 1000,
    grid_size: int = 8,
    probability: float = 0.5,
    batch_size: int = 64,
    seed: int = 0,
    spatial_axis: tuple[int, int] = (-3, -2),
) -> tuple[tf.Tensor, tf.Tensor]:
    """RISE: randomized input sampling, the mean of random masks weighted by
    the score of the masked image.

        maps[b, :, :, l] = 1 / (N * p) * sum_n s_l(x_b * m_n) * m_n

    Each mask `m_n` is an `s x s` grid of cells kept with probability `p`,
    upsampled bilinearly to `(s + 1) * cell` pixels (`cell = ceil(H / s)`) and
    cropped at a random shift in `[0, cell)`, as the authors' code does. The
    grids and shifts come from stateless random ops seeded by `seed` (mask `n`
    does not depend on `batch_size`), so eager, `tf.function` and XLA runs
    agree; see `rise_masks`. Masked pixels become 0 in the model's input
    space. The paper scores class probabilities: explain
    `expose(model, outputs=Target(activation="softmax"))` for that; by default
    the model's first output (e.g. logits) is used.

    Args:
        model: a model or callable whose first output is the explained scores
            `(B, K)`.
        inputs: float images `(B, H, W, C)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        num_masks: number of masks `N` (the paper uses 4000 to 8000 on
            ImageNet; fewer give noisier maps).
        grid_size: cells per side `s` of the random grid (the paper's `s`,
            7 on 224 x 224 images); the cell size in pixels is `ceil(H / s)`.
        probability: probability `p` that a cell is kept, in (0, 1].
        batch_size: masked images per model call.
        seed: non-negative int seeding the masks.
        spatial_axis: the height and width axes of `inputs`.

    Returns:
        `(logits, maps)` of shapes `(B, L)` (the clean scores) and
        `(B, H, W, L)`, at the input resolution.

    Raises:
        ValueError: `num_masks`, `grid_size` or `batch_size` not positive,
            `probability` outside (0, 1], a negative `seed`, or bad `inputs`
            rank or `spatial_axis`.
        TypeError: a non-integer count or a non-numeric `probability`.

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 3)),
        ...     keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> logits, maps = rise(model, tf.ones((1, 8, 8, 3)), num_masks=100,
        ...                     grid_size=4)
        >>> maps.shape
        TensorShape([1, 8, 8, 2])

    References:
        Petsiuk, Das & Saenko, RISE: Randomized Input Sampling for Explanation
        of Black-box Models, BMVC 2018. arXiv:1806.07421.
    """
    num_masks, grid_size, probability, seed, batch_size = _check_rise(
        num_masks, grid_size, probability, seed, batch_size
    )
    x, to_model = channels_last(inputs, spatial_axis)
    batch, height, width = size(x, 0), size(x, 1), size(x, 2)
    logits, _ = scores(model, to_model(x), indices)
    logits = tf.cast(logits, tf.float32)
    grids, shifts = _rise_cells(num_masks, grid_size, probability, seed)

    def update(saliency, jobs, valid):
        sample, mask = jobs // num_masks, jobs % num_masks
        masks = _rise_upsample(
            tf.gather(grids, mask), tf.gather(shifts, mask), height, width
        )
        images = tf.gather(x, sample) * masks[..., None]
        values, _ = scores(model, to_model(images), _gather_rows(indices, sample))
        owner = tf.one_hot(sample, batch) * valid[:, None]  # (k, B)
        weights = owner[:, :, None] * tf.cast(values, tf.float32)[:, None, :]
        return saliency + tf.einsum("khw,kbl->bhwl", masks, weights)

    saliency = tf.zeros([batch, height, width, size(logits, 1)])
    saliency = chunked(batch * num_masks, batch_size, update, saliency)
    return logits, saliency / (num_masks * probability)
