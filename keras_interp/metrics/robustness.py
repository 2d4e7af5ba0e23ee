"""Robustness: do maps stay put when the input moves a little?"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_interp._validation import (
    check_one_of,
    check_positive_float,
    check_positive_int,
)
from keras_interp.metrics._common import (
    MetricResult,
    check_inputs,
    explain_maps,
    require_method,
    resolve_maps,
)


def _neighbour_maps(model, x, y, method, maps, batch_size, seed, radius, nb_samples):
    require_method(method, "robustness metrics")
    radius = check_positive_float(radius, "radius")
    nb_samples = check_positive_int(nb_samples, "nb_samples")
    x, y = check_inputs(model, x, y)
    original = resolve_maps(model, x, y, method, maps, batch_size)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-radius, radius, (len(x), nb_samples, *x.shape[1:]))
    neighbours = (x[:, None] + noise.astype(np.float32)).reshape(-1, *x.shape[1:])
    moved = explain_maps(
        method, model, neighbours, np.repeat(y, nb_samples), batch_size
    )
    return original, moved.reshape(len(x), nb_samples, *x.shape[1:3])


def max_sensitivity(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    radius: float = 0.05,
    nb_samples: int = 10,
) -> MetricResult:
    """Max-sensitivity: the largest relative change of the map in a neighbourhood.

    `max_j ||Phi(x + d_j) - Phi(x)||_F / ||Phi(x)||_F` over `nb_samples` seeded
    perturbations `d_j` uniform in the L-infinity ball of `radius`. All copies
    are explained in one batched engine call. Lower is better.

    Args:
        model: the classifier.
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        method: the attribution method (required).
        maps: the maps of `x`, if already computed.
        batch_size: images per step.
        seed: seed of the perturbations.
        radius: half-width of the uniform noise, in input units.
        nb_samples: perturbations per image.

    Returns:
        `MetricResult` with one sensitivity per image.

    References:
        Yeh et al., On the (In)fidelity and Sensitivity of Explanations,
        NeurIPS 2019. arXiv:1901.09392.
    """
    original, moved = _neighbour_maps(
        model, x, y, method, maps, batch_size, seed, radius, nb_samples
    )
    change = np.sqrt(((moved - original[:, None]) ** 2).sum(axis=(2, 3)))
    size = np.sqrt((original**2).sum(axis=(1, 2)))[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(size > 0, change / size, np.where(change > 0, np.inf, 0.0))
    return MetricResult("max_sensitivity", relative.max(axis=1).astype(np.float64))


def average_stability(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    radius: float = 0.1,
    nb_samples: int = 20,
    distance: str = "l2",
) -> MetricResult:
    """Average stability: the mean distance between the map of `x` and the maps
    of `nb_samples` seeded neighbours `x + d`, `d` uniform in `[-radius,
    radius]`. Lower is better. Arguments as in `max_sensitivity`, plus
    `distance` (`"l2"` or `"l1"`, on the raw maps).

    Returns:
        `MetricResult` with one mean distance per image.

    References:
        Bhatt et al., Evaluating and Aggregating Feature-based Model
        Explanations, IJCAI 2020. arXiv:2005.00631.
    """
    check_one_of(distance, ("l2", "l1"), "distance")
    original, moved = _neighbour_maps(
        model, x, y, method, maps, batch_size, seed, radius, nb_samples
    )
    delta = moved - original[:, None]
    if distance == "l2":
        d = np.sqrt((delta.astype(np.float64) ** 2).sum(axis=(2, 3)))
    else:
        d = np.abs(delta.astype(np.float64)).sum(axis=(2, 3))
    return MetricResult("average_stability", d.mean(axis=1))
