"""Directional derivatives of a class logit along a CAV, and the TCAV score.

The directional derivative of class `k` at a layer along a CAV `v` is
`S_k(x) = grad_a z_k(a) . v`, with `a` the layer's activation flattened in NHWC
order and `z_k` the class logit; the TCAV score of a set of target images is the
fraction with `S_k(x) > 0`.

Sign convention: tcav differentiates a *loss* (the softmax cross-entropy of the
target class) and counts derivatives `< 0`; we differentiate the logit `z_k`, as
the paper defines `S`, and count derivatives `> 0`. The counts are identical for
the loss `-z_k`, and close for the cross-entropy, whose gradient is `-grad z_k`
plus the softmax-weighted gradients of all logits (small for a confident class).

The target images' logit gradients are computed once (`logit_gradients`, run
by the engine with the method layer's `differentiate`); every CAV's
directional derivatives are then one matrix product (`cav_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_interp._validation import check_positive_int, received
from keras_interp.concepts._batching import logit_gradients

__all__ = ["directional_derivatives", "tcav_score"]


# -- arguments -------------------------------------------------------------------
def as_model(model: Any) -> Any:
    """`model` as a `keras_interp.models.Model`; a raw Keras model is wrapped in
    `KerasModel` with input range `(0, 1)`."""
    from keras_interp.models.base import KerasModel, Model

    if isinstance(model, Model):
        return model
    if hasattr(model, "layers") and callable(model):
        return KerasModel(model)  # input range (0, 1)
    raise TypeError(
        "`model` must be a keras_interp.models.Model (KerasModel, GooglenetModel, "
        f"FrozenGraphModel, ...) or a Keras model. {received('model', model)}"
    )


def unit_direction(cav: Any, dim: int) -> np.ndarray:
    """A CAV's vector (or a raw direction) as a unit float64 vector `(D,)`."""
    try:
        v = np.asarray(getattr(cav, "vector", cav), np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`cav` must be a CAV or a 1-D direction. {received('cav', cav)}"
        ) from None
    if v.ndim != 1 or v.size != dim:
        raise ValueError(
            f"`cav` must have one value per activation of the layer ({dim}), got "
            f"shape {v.shape}: was it trained on another layer? {received('cav', cav)}"
        )
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"`cav` must be finite and non-zero. {received('cav', cav)}")
    return v / norm


# -- directional derivatives and score ----------------------------------------
def directional_derivatives(
    model: Any,
    images: Any,
    layer_name: str,
    cav: Any,
    class_index: int,
    *,
    batch_size: int = 32,
) -> np.ndarray:
    """Directional derivatives of a class logit along a CAV, one per image.

    `S_k(x) = grad_a z_k(a) . v`, with `a` the activation of `layer_name`
    flattened in NHWC order, `z_k` logit `class_index` and `v` the CAV's unit
    vector: positive when moving the activation towards the concept raises
    the logit (tcav's loss gradient has the opposite sign: module docstring).

    Args:
        model: a `keras_interp.models.Model` (`KerasModel`, a frozen-graph
            model, ...); a raw Keras model is wrapped in `KerasModel` with
            input range `(0, 1)`.
        images: a sequence of images of any kind (each prepared with
            `model.prepare`), or a float batch `(N, H, W, 3)` already prepared
            (in the model's input range).
        layer_name: the layer of the CAV, one of the model's layer names.
        cav: a `CAV` or a 1-D direction of the layer's flattened size (scaled
            to unit norm).
        class_index: the logit differentiated.
        batch_size: images per forward and backward pass. The engine
            (`keras_interp.engine.explain`) runs the batches, compiled once per
            model and layer: other batch sizes and classes reuse the trace, so
            the model's `logits_and_layer` must be traceable by TensorFlow.

    Returns:
        float64 `(N,)`.

    Raises:
        ValueError: empty `images`, unknown `layer_name`, `class_index` out of
            range, or a `cav` of the wrong size or zero.
        TypeError: a `model`, `images` or `cav` of the wrong kind.

    Example:
        >>> model = gap_dense()  # logit k = mean_hw(conv) @ W[:, k] + b_k
        >>> images = np.random.default_rng(0).uniform(size=(4, 8, 8, 3))
        >>> s = directional_derivatives(model, images, "conv", np.ones(256), 1)
        >>> w = model.get_layer("logits").get_weights()[0]  # (4 channels, 3)
        >>> bool(np.allclose(s, w[:, 1].sum() / 16))  # every 1/16 * W[c, 1] / 64
        True
        >>> tcav_score(s) == float(w[:, 1].sum() > 0)
        True

    References:
        Kim et al., Interpretability Beyond Feature Attribution: Quantitative
        Testing with Concept Activation Vectors (TCAV), ICML 2018.
        arXiv:1711.11279.
    """
    model = as_model(model)
    layer_name = model.check_layer(layer_name)
    class_index = check_positive_int(class_index, "class_index", allow_zero=True)
    batch_size = check_positive_int(batch_size, "batch_size")
    grads = logit_gradients(
        model, images, layer_name, class_index, batch_size, "images"
    )
    return grads.astype(np.float64) @ unit_direction(cav, grads.shape[1])


def tcav_score(derivatives: Any) -> float | np.ndarray:
    """The TCAV score: the fraction of positive directional derivatives.

    Args:
        derivatives: directional derivatives `(N,)`, or `(R, N)` for `R` CAVs.

    Returns:
        A float in [0, 1] for `(N,)`; float64 `(R,)` for `(R, N)`.

    Raises:
        ValueError: empty or not 1-D/2-D.

    Example:
        >>> tcav_score([0.3, -0.1, 2.0, 0.5])
        0.75

    References:
        Kim et al., TCAV, ICML 2018. arXiv:1711.11279 (eq. 2).
    """
    d = np.asarray(derivatives, np.float64)
    if d.ndim not in (1, 2) or d.shape[-1] == 0:
        raise ValueError(
            "`derivatives` must be a non-empty array of shape (N,) or (R, N). "
            f"{received('derivatives', derivatives)}"
        )
    scores = np.mean(d > 0, axis=-1)
    return float(scores) if d.ndim == 1 else scores


def cav_scores(grads: np.ndarray, cavs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`(scores (R,), derivatives (R, T))` of the target gradients along CAVs."""
    directions = np.stack([unit_direction(cav, grads.shape[1]) for cav in cavs])
    derivatives = directions @ grads.astype(np.float64).T
    return tcav_score(derivatives), derivatives
