"""ROAD: remove and debias, with noisy linear imputation."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_non_negative_float,
    check_one_of,
    check_positive_int,
    received,
)
from keras_interp.methods._base import hashed_normal
from keras_interp.metrics._common import (
    MetricResult,
    check_inputs,
    perturbed_scores,
    rank_pixels,
    resolve_maps,
)

#: ROAD's neighbour weights: 1/6 for the 4 direct neighbours, 1/12 diagonal.
_KERNEL = np.array([[1, 2, 1], [2, 0, 2], [1, 2, 1]], np.float32) / 12.0


def noisy_linear_impute(
    images: tf.Tensor,
    removed: tf.Tensor,
    *,
    iterations: int = 100,
    noise: float = 0.01,
    seed: int = 0,
    keys: tf.Tensor | None = None,
) -> tf.Tensor:
    """Fill removed pixels with the weighted mean of their 8 neighbours, plus noise.

    Solves ROAD's linear system `v_p = sum_n w_n v_n / sum_n w_n` (removed
    pixels `p`, neighbours `n` inside the image, kept pixels fixed) by
    `iterations` Jacobi steps started from each image's mean colour, in
    TensorFlow (batched, traceable) instead of a per-image sparse solve.
    Gaussian noise of std `noise` is then added to the imputed pixels.

    Args:
        images: float `(N, H, W, C)`.
        removed: bool `(N, H, W)`.
        iterations: Jacobi steps.
        noise: standard deviation of the added noise.
        seed: seed of the noise.
        keys: int `(N,)` per-copy noise keys (default: the row index).

    Returns:
        float32 `(N, H, W, C)`.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    channels = images.shape[-1]
    hole = tf.cast(removed, tf.float32)[..., None]
    kernel = tf.constant(np.repeat(_KERNEL[:, :, None, None], channels, axis=2))
    weight = tf.nn.depthwise_conv2d(
        tf.ones_like(images), kernel, strides=[1, 1, 1, 1], padding="SAME"
    )
    start = tf.reduce_mean(images, axis=(1, 2), keepdims=True)
    values = images * (1.0 - hole) + start * hole

    def body(step: tf.Tensor, v: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mean = tf.nn.depthwise_conv2d(v, kernel, [1, 1, 1, 1], "SAME") / weight
        return step + 1, images * (1.0 - hole) + mean * hole

    _, values = tf.while_loop(
        lambda step, _: step < iterations, body, (tf.constant(0), values)
    )
    if keys is None:
        keys = tf.range(tf.shape(images)[0])
    shape = tf.shape(images)[1:]
    jitter = tf.map_fn(
        lambda key: hashed_normal(shape, seed, key, stddev=noise),
        tf.cast(keys, tf.int32),
        fn_output_signature=tf.float32,
    )
    return values + jitter * hole


def _road_copies(data, i, k, keys, *, iterations, noise, seed):
    xs, rs, ys = (tf.gather(t, i) for t in data)
    removed = rs < k[:, None, None]
    imputed = noisy_linear_impute(
        xs, removed, iterations=iterations, noise=noise, seed=seed, keys=keys
    )
    return imputed, ys


def road(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    percentages: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    order: str = "morf",
    noise: float = 0.01,
    iterations: int = 100,
    score: str = "probability",
) -> MetricResult:
    """ROAD: scores after removing a share of pixels and imputing them.

    For each percentage p, the `p * H * W` most relevant pixels (`"morf"`,
    lower is better) or least relevant (`"lerf"`, higher is better) are
    removed and imputed with `noisy_linear_impute`, so that the removal leaks
    no shape information (the debiasing of ROAD). The value is the mean score
    over the percentages. `model`, `x`, `y`, `method`, `maps` and
    `batch_size` as in `deletion`.

    Args:
        seed: seed of the imputation noise and of ties in the order.
        percentages: shares of pixels removed, in (0, 1).
        order: `"morf"` (most relevant first) or `"lerf"`.
        noise: imputation noise standard deviation.
        iterations: Jacobi steps of the imputation.
        score: `"probability"`, `"logit"` or `"output"`.

    Returns:
        `MetricResult` with the mean score per image, `curves` `(B, P)` and
        `axis` (the percentages).

    Raises:
        ValueError: bad images, labels, maps or options.

    References:
        Rong et al., A Consistent and Efficient Evaluation Strategy for
        Attribution Methods, ICML 2022. arXiv:2202.00449.
    """
    x, y = check_inputs(model, x, y)
    maps = resolve_maps(model, x, y, method, maps, batch_size)
    check_one_of(order, ("morf", "lerf"), "order")
    noise = check_non_negative_float(noise, "noise")
    iterations = check_positive_int(iterations, "iterations")
    shares = np.asarray(percentages, np.float64)
    if shares.ndim != 1 or not len(shares) or ((shares <= 0) | (shares >= 1)).any():
        raise ValueError(
            "`percentages` must be a non-empty list of numbers in (0, 1). "
            f"{received('percentages', percentages)}"
        )
    pixels = x.shape[1] * x.shape[2]
    ranks = rank_pixels(maps, seed)
    if order == "lerf":
        ranks = pixels - 1 - ranks
    counts = np.round(shares * pixels).astype(np.int32)
    b, p = len(x), len(counts)
    image = np.repeat(np.arange(b, dtype=np.int32), p)
    count = np.tile(counts, b)
    key = np.arange(b * p, dtype=np.int32)
    build = functools.partial(
        _road_copies, iterations=iterations, noise=noise, seed=seed
    )
    curves = perturbed_scores(
        model, score, build, ("road", iterations, noise, seed), (x, ranks, y),
        (image, count, key), batch_size,
    ).reshape(b, p)  # fmt: skip
    return MetricResult(
        f"road_{order}", curves.mean(axis=1), curves, shares, {"score": score}
    )
