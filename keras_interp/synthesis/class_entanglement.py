"""Entanglement: which other classes a model sees in an input of one class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_interp._validation import received


@dataclass(frozen=True)
class Entanglement:
    """For one input of class `target`: the other classes, most entangled first.

    Attributes:
        target: the input's class.
        classes: the other class indices, by decreasing share `(K-1,)`.
        probabilities: their softmax probabilities on the input `(K-1,)`.
        shares: their share of the probability the target leaves,
            `p_j / (1 - p_target)`, computed as a softmax over the logits
            without the target, so it stays exact when `p_target` rounds to 1
            `(K-1,)`.
        entangled: whether each share is above the uniform share
            `1 / (K - 1)` (never for two classes) `(K-1,)`.
    """

    target: int
    classes: np.ndarray
    probabilities: np.ndarray
    shares: np.ndarray
    entangled: np.ndarray


def entanglement(logits: Any, target: int) -> Entanglement:
    """Rank the other classes by how strongly the model predicts them.

    A class prototype maximises its class, so the target's probability is near
    1 and the other classes split what is left. How they split it (a softmax
    over the logits without the target) shows which classes share features
    with the target: in a prototype of "husky", "malamute" keeps most of the
    rest. This is our reading of Leap's entanglement (leap-ie is closed
    source): the model's predictions for every other class on the prototype.

    Args:
        logits: the model's logits on one input `(K,)`.
        target: the input's class, in `[0, K)`.

    Returns:
        An `Entanglement`, most entangled class first.

    Raises:
        ValueError: fewer than two classes, or `target` out of range.

    Example:
        >>> entanglement(np.array([5.0, 1.0, 3.0]), target=0).classes
        array([2, 1])

    References:
        Tagade & Rumbelow, Prototype Generation: Robust Feature Visualisation
        for Data Independent Interpretability, 2023. arXiv:2309.17144.
    """
    logits = np.asarray(logits, np.float64).reshape(-1)
    k = logits.size
    if k < 2:
        raise ValueError(
            f"Entanglement needs at least two classes. {received('logits', logits)}"
        )
    if not 0 <= int(target) < k:
        raise ValueError(f"`target` must lie in [0, {k}). {received('target', target)}")
    target = int(target)
    others = np.array([j for j in range(k) if j != target], int)
    z = np.exp(logits[others] - logits[others].max())
    shares = z / z.sum()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-shares, kind="stable")
    uniform_share = 1.0 / (k - 1)
    return Entanglement(
        target=target,
        classes=others[order],
        probabilities=p[others][order].astype(np.float32),
        shares=shares[order].astype(np.float32),
        entangled=(shares[order] > uniform_share * (1 + 1e-6)) & (k > 2),
    )
