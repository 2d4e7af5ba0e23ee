"""Complexity: how concentrated a map is (sparseness, entropy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_interp.metrics._common import (
    MetricResult,
    check_inputs,
    ratio,
    resolve_maps,
)


def _magnitudes(model, x, y, method, maps, batch_size) -> np.ndarray:
    if maps is not None and model is None:
        from keras_interp.metrics._common import check_maps

        maps = np.asarray(maps)
        reference = np.zeros((*maps.shape[:3], 1), np.float32)
        return np.abs(check_maps(maps, reference)).reshape(len(maps), -1)
    x, y = check_inputs(model, x, y)
    maps = resolve_maps(model, x, y, method, maps, batch_size)
    return np.abs(maps).reshape(len(maps), -1).astype(np.float64)


def sparseness(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
) -> MetricResult:
    """Sparseness: the Gini index of the map's magnitudes (1 = one pixel).

    `G = sum_i (2i - n - 1) a_(i) / (n sum_i a_i)` over the magnitudes sorted
    ascending, `a_(1) <= ... <= a_(n)`. A map of zeros scores 0.

    Args:
        model: the classifier (may be `None` when `maps` is given).
        x: images `(B, H, W, C)` (ignored when `model` is `None`).
        y: class indices `(B,)`, or `None`.
        method: the attribution method, used when `maps` is `None`.
        maps: precomputed maps `(B, H, W)`.
        batch_size: images per step when computing maps.
        seed: unused (the metric is deterministic); kept for the common signature.

    Returns:
        `MetricResult` with one Gini index per image, in [0, 1).

    Example:
        >>> one_pixel = np.zeros((1, 4, 4))
        >>> one_pixel[0, 1, 2] = 5.0
        >>> uniform = np.ones((1, 4, 4))
        >>> sparseness(None, None, maps=np.concatenate([one_pixel, uniform])).values
        array([0.9375, 0.    ])

    References:
        Chalasani et al., Concise Explanations of Neural Networks using
        Adversarial Training, ICML 2020. arXiv:1810.06583.
    """
    a = np.sort(_magnitudes(model, x, y, method, maps, batch_size), axis=1)
    n = a.shape[1]
    i = np.arange(1, n + 1)
    gini = ratio(((2 * i - n - 1) * a).sum(axis=1), n * a.sum(axis=1), 0.0)
    return MetricResult("sparseness", gini)


def complexity(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
) -> MetricResult:
    """Complexity: entropy of the fractional contributions `|a_i| / sum |a|`.

    `H = -sum_i p_i log p_i` (natural log; `0 log 0 = 0`); lower is simpler.
    A map of zeros is taken as uniform (`log n`). Arguments as in `sparseness`.

    Returns:
        `MetricResult` with one entropy per image, in [0, log(H W)].

    References:
        Bhatt et al., Evaluating and Aggregating Feature-based Model
        Explanations, IJCAI 2020. arXiv:2005.00631.
    """
    a = _magnitudes(model, x, y, method, maps, batch_size)
    total = a.sum(axis=1, keepdims=True)
    p = ratio(a, total, 1.0 / a.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return MetricResult("complexity", terms.sum(axis=1))
