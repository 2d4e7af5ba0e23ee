"""RISE: randomized input sampling for explanation (a perturbation method).

Split from `keras_interp.methods.perturbation`, which re-exports `rise` and
`rise_masks`. Masked copies are scored in chunks of `batch_size` images inside
one `tf.while_loop`; `batch_size` may be a run-time tensor (see
`keras_interp.methods._batching`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_positive_int, received
from keras_interp.methods._base import Size, channels_last, chunked, scores, size
from keras_interp.methods._batching import check_batch_size
from keras_interp.methods.record import OptionSpec, method_record


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
        check_batch_size(batch_size),
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
        batch_size: masked images per model call: a positive int, or a
            scalar int tensor (the engine passes its batch size at run time).
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
        chosen = None if indices is None else tf.gather(indices, sample)
        values, _ = scores(model, to_model(images), chosen)
        owner = tf.one_hot(sample, batch) * valid[:, None]  # (k, B)
        weights = owner[:, :, None] * tf.cast(values, tf.float32)[:, None, :]
        return saliency + tf.einsum("khw,kbl->bhwl", masks, weights)

    saliency = tf.zeros([batch, height, width, size(logits, 1)])
    saliency = chunked(batch * num_masks, batch_size, update, saliency)
    return logits, saliency / (num_masks * probability)
