"""Faithfulness: does removing what the map points at change the model's score?"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_one_of,
    check_positive_int,
    received,
)
from keras_interp.metrics._common import (
    MetricResult,
    baseline_images,
    check_inputs,
    correlation,
    perturbed_scores,
    rank_pixels,
    resolve_maps,
)


def _segment_ranks(
    x: np.ndarray, maps: np.ndarray, segments: Any, n_segments: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the rank of its superpixel by mean map value; segment counts."""
    if segments is None:
        from skimage.segmentation import slic

        segments = np.stack(
            [
                slic(image, n_segments=n_segments, start_label=0, channel_axis=-1)
                for image in x
            ]
        )
    segments = np.asarray(segments)
    if segments.shape != x.shape[:3] or segments.dtype.kind not in "iu":
        raise ValueError(
            f"`segments` must be integer labels of shape {x.shape[:3]}. "
            f"{received('segments', segments)}"
        )
    rng = np.random.default_rng(seed)
    ranks = np.empty(x.shape[:3], np.int32)
    counts = np.empty(len(x), np.int64)
    for i in range(len(x)):
        labels, inverse = np.unique(segments[i], return_inverse=True)
        inverse = inverse.reshape(segments[i].shape)
        means = np.bincount(inverse.ravel(), maps[i].ravel()) / np.bincount(
            inverse.ravel()
        )
        tie = rng.permutation(len(labels))
        order = tie[np.argsort(-means[tie], kind="stable")]
        segment_rank = np.empty(len(labels), np.int32)
        segment_rank[order] = np.arange(len(labels))
        ranks[i], counts[i] = segment_rank[inverse], len(labels)
    return ranks, counts


def _deletion_copies(data, i, kept):
    xs, bs, rs, ys = (tf.gather(t, i) for t in data)
    return tf.where((rs < kept[:, None, None])[..., None], bs, xs), ys


def _insertion_copies(data, i, kept):
    xs, bs, rs, ys = (tf.gather(t, i) for t in data)
    return tf.where((rs < kept[:, None, None])[..., None], xs, bs), ys


_CAUSAL = {"deletion": _deletion_copies, "insertion": _insertion_copies}


def _subset_copies(data, i, s):
    xs, bs, ys = (tf.gather(t, i) for t in data[:3])
    hole = tf.gather(data[3], s)[..., None]
    return tf.where(hole, bs, xs), ys


def _causal(
    mode: str,
    model: Any,
    x: Any,
    y: Any,
    method: Any,
    maps: Any,
    batch_size: int,
    seed: int,
    steps: int,
    baseline: Any,
    score: str,
    order: str,
    segments: Any,
    n_segments: int,
) -> MetricResult:
    x, y = check_inputs(model, x, y)
    steps = check_positive_int(steps, "steps")
    check_one_of(order, ("pixel", "superpixel"), "order")
    maps = resolve_maps(model, x, y, method, maps, batch_size)
    base = baseline_images(x, baseline)
    if order == "pixel":
        ranks = rank_pixels(maps, seed)
        counts = np.full(len(x), x.shape[1] * x.shape[2])
    else:
        ranks, counts = _segment_ranks(x, maps, segments, n_segments, seed)
    # As xplique: perturbed counts floor(linspace(0, total, steps + 1)).
    k = np.stack([np.linspace(0, c, steps + 1).astype(np.int32) for c in counts])
    image = np.repeat(np.arange(len(x), dtype=np.int32), steps + 1)
    values = perturbed_scores(
        model, score, _CAUSAL[mode], mode, (x, base, ranks, y), (image, k.ravel()),
        batch_size,
    )  # fmt: skip
    curves = values.reshape(len(x), steps + 1)
    auc = 0.5 * (curves[:, :-1] + curves[:, 1:]).mean(axis=1)
    return MetricResult(
        mode, auc, curves, np.linspace(0.0, 1.0, steps + 1), {"score": score}
    )


def deletion(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    steps: int = 10,
    baseline: float | str = 0.0,
    score: str = "probability",
    order: str = "pixel",
    segments: Any = None,
    n_segments: int = 50,
) -> MetricResult:
    """Deletion: the score as the most relevant pixels are removed first.

    Pixels (or superpixels) are ranked by decreasing map value; step `s` of
    `steps` replaces the first `floor(s * N / steps)` of the N by the baseline
    (all channels). The area under the curve of scores (trapezoidal rule on
    `[0, 1]`) is the value: lower is better.

    Args:
        model: the classifier (any model the engine takes; its logits are
            read through `expose`).
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        method: the attribution method (name, spec or function), used when
            `maps` is `None`.
        maps: precomputed maps `(B, H, W)` (or `(B, H, W, 1)`).
        batch_size: perturbed copies per forward pass.
        seed: seed of the tie-breaking order.
        steps: number of steps from the image to the baseline.
        baseline: a value, `"blur"` (Gaussian, sigma H/16) or `"mean"` (each
            image's channel means).
        score: `"probability"` (softmax of the logits), `"logit"`, or
            `"output"` (the model's own output).
        order: `"pixel"` or `"superpixel"` (SLIC segments ranked by mean map).
        segments: integer segment labels `(B, H, W)` for `order="superpixel"`;
            `None` runs SLIC with `n_segments`.
        n_segments: SLIC's target number of segments.

    Returns:
        `MetricResult` with `values` (AUC per image), `curves` `(B, steps+1)`
        and `axis` (fraction removed).

    Raises:
        ValueError: bad images, labels, maps or options.

    Example:
        >>> from keras_interp.testing.models import gap_dense
        >>> model = gap_dense()  # a tiny CNN on 8x8 images, 3 classes
        >>> x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3))
        >>> result = deletion(model, x, method="gradcam", steps=8)
        >>> result.values.shape, result.curves.shape
        ((2,), (2, 9))
        >>> bool(0.0 <= result.mean <= 1.0)  # an area under probabilities
        True

    References:
        Petsiuk et al., RISE: Randomized Input Sampling for Explanation of
        Black-box Models, BMVC 2018. arXiv:1806.07421.
    """
    return _causal(
        "deletion", model, x, y, method, maps, batch_size, seed, steps, baseline,
        score, order, segments, n_segments,
    )  # fmt: skip


def insertion(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    steps: int = 10,
    baseline: float | str = "blur",
    score: str = "probability",
    order: str = "pixel",
    segments: Any = None,
    n_segments: int = 50,
) -> MetricResult:
    """Insertion: the score as the most relevant pixels are restored first.

    Starts from the baseline (a blurred copy by default, as in the paper) and
    restores pixels in decreasing map order; higher AUC is better. Arguments
    as in `deletion`.

    Returns:
        `MetricResult` with AUC `values`, `curves` `(B, steps+1)`, `axis`.

    Raises:
        ValueError: bad images, labels, maps or options.

    References:
        Petsiuk et al., RISE, BMVC 2018. arXiv:1806.07421.
    """
    return _causal(
        "insertion", model, x, y, method, maps, batch_size, seed, steps, baseline,
        score, order, segments, n_segments,
    )  # fmt: skip


def _subset_correlation(
    name: str,
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    maps: np.ndarray,
    removed: np.ndarray,
    baseline: Any,
    score: str,
    kind: str,
    batch_size: int,
) -> MetricResult:
    """Correlation, per image, of attribution sums over removed subsets with
    the score drops they cause. `removed` is bool `(S, H, W)`."""
    check_one_of(kind, ("pearson", "spearman"), "correlation")
    base = baseline_images(x, baseline)
    samples, b = len(removed), len(x)
    # Row `samples` removes nothing: the unperturbed score, in the same pass.
    holes = np.concatenate([removed, np.zeros_like(removed[:1])])
    image = np.repeat(np.arange(b, dtype=np.int32), samples + 1)
    sample = np.tile(np.arange(-1, samples, dtype=np.int32), b)
    sample = np.where(sample < 0, samples, sample)
    scores = perturbed_scores(
        model, score, _subset_copies, "subsets", (x, base, y, holes),
        (image, sample), batch_size,
    )  # fmt: skip
    scores = scores.reshape(b, samples + 1)
    drops = scores[:, :1] - scores[:, 1:]
    sums = maps.reshape(b, -1) @ removed.reshape(samples, -1).T.astype(np.float32)
    values = correlation(sums.astype(np.float64), drops, kind)
    return MetricResult(name, values, info={"drops": drops, "sums": sums})


def mu_fidelity(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    grid_size: int = 9,
    subset_percent: float = 0.2,
    nb_samples: int = 128,
    baseline: float | str = 0.0,
    score: str = "probability",
    correlation: str = "pearson",
) -> MetricResult:
    """MuFidelity: correlation of subset attribution sums and score drops.

    The image is cut into a `grid_size` x `grid_size` grid; each of
    `nb_samples` seeded subsets removes every cell with probability
    `subset_percent` (set to the baseline). Per image, the value is the
    correlation between `f(x) - f(x without S)` and `sum_{i in S} map_i`.
    Higher is better.

    Args:
        model: the classifier.
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        method: the attribution method, used when `maps` is `None`.
        maps: precomputed maps `(B, H, W)`.
        batch_size: perturbed copies per forward pass.
        seed: seed of the subsets (shared by all images).
        grid_size: cells per side (`None`: every pixel is a cell).
        subset_percent: probability that a cell is removed.
        nb_samples: number of subsets.
        baseline: value, `"blur"` or `"mean"`.
        score: `"probability"`, `"logit"` or `"output"`.
        correlation: `"pearson"` (the paper) or `"spearman"` (xplique).

    Returns:
        `MetricResult` with one correlation per image; `info` holds `drops`
        and `sums` `(B, nb_samples)`.

    Raises:
        ValueError: bad images, labels, maps or options.

    References:
        Bhatt et al., Evaluating and Aggregating Feature-based Model
        Explanations, IJCAI 2020. arXiv:2005.00631.
    """
    x, y = check_inputs(model, x, y)
    maps = resolve_maps(model, x, y, method, maps, batch_size)
    nb_samples = check_positive_int(nb_samples, "nb_samples")
    h, w = x.shape[1:3]
    g = h if grid_size is None else check_positive_int(grid_size, "grid_size")
    if not 0.0 < subset_percent < 1.0:
        raise ValueError(
            "`subset_percent` must be in (0, 1). "
            f"{received('subset_percent', subset_percent)}"
        )
    cells = np.random.default_rng(seed).uniform(size=(nb_samples, g, g))
    rows = np.arange(h) * g // h
    cols = np.arange(w) * g // w
    removed = (cells < subset_percent)[:, rows][:, :, cols]
    return _subset_correlation(
        "mu_fidelity", model, x, y, maps, removed, baseline, score, correlation,
        batch_size,
    )  # fmt: skip


def faithfulness_correlation(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    subset_size: int | None = None,
    nb_samples: int = 100,
    baseline: float | str = 0.0,
    score: str = "probability",
    correlation: str = "pearson",
) -> MetricResult:
    """Faithfulness correlation: as `mu_fidelity` with random pixel subsets of
    exactly `subset_size` pixels (default: 1/16 of the image), as Quantus.

    Returns:
        `MetricResult` with one correlation per image.

    Raises:
        ValueError: bad images, labels, maps or options.

    References:
        Bhatt et al., IJCAI 2020. arXiv:2005.00631.
    """
    x, y = check_inputs(model, x, y)
    maps = resolve_maps(model, x, y, method, maps, batch_size)
    nb_samples = check_positive_int(nb_samples, "nb_samples")
    pixels = x.shape[1] * x.shape[2]
    size = max(1, pixels // 16) if subset_size is None else subset_size
    size = check_positive_int(size, "subset_size")
    if size >= pixels:
        raise ValueError(
            f"`subset_size` must be below the number of pixels ({pixels}). "
            f"{received('subset_size', subset_size)}"
        )
    rng = np.random.default_rng(seed)
    chosen = np.argsort(rng.uniform(size=(nb_samples, pixels)), axis=1)[:, :size]
    removed = np.zeros((nb_samples, pixels), bool)
    np.put_along_axis(removed, chosen, True, axis=1)
    removed = removed.reshape(nb_samples, *x.shape[1:3])
    return _subset_correlation(
        "faithfulness_correlation", model, x, y, maps, removed, baseline, score,
        correlation, batch_size,
    )  # fmt: skip
