"""The analysis tools' forward and backward passes, run by the engine.

Each tool hands `keras_interp.engine.explain` one of the two steps below and
an exposed model of the layer it reads. `explain` batches, validates and
compiles: the step is traced once per (exposed model, step, options), and
batch sizes, channels and units travel as data (the indices), so a tool called
again with another batch size, channel or unit reuses the compiled function.
For that the exposed model must be the same object from call to call:
`exposed_layer` keeps one per (model, purpose, layer), tied to the model by a
weak reference (the exposed model reaches the model through a
`weakref.proxy`, so the cache never keeps a model alive).

The images are passed to `explain` as a 1-tuple, the engine's form for a
model's inputs given one by one, whose maps come back as computed (any rank,
no resizing): this is what lets 1-D and 3-D images and dense layers through.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp.engine import explain
from keras_interp.engine.cache import cached_variant
from keras_interp.inspection.units import gather_units
from keras_interp.methods._differentiate import differentiate


def exposed_layer(model: Any, key: tuple, build: Callable[[Any], Any]) -> Any:
    """`build(weakref.proxy(model))`, made once per `(model, key)`.

    Kept in the engine's one per-model cache (`cache.cached_variant`), so
    it lives and dies with the model, like its compiled functions.

    Args:
        model: the user's Keras model.
        key: what the exposed model is for, e.g. `("channel", layer_path)`.
        build: makes the exposed model from a proxy of `model`.

    Returns:
        The exposed model (built anew for models without weak references).
    """
    try:
        proxy = weakref.proxy(model)
    except TypeError:  # not weakly referenceable: nothing to cache against
        return build(model)
    return cached_variant(model, ("analysis", *key), lambda: build(proxy))


def _first(outputs: Any) -> tf.Tensor:
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _no_scores(x: tf.Tensor) -> tf.Tensor:
    return tf.zeros([tf.shape(x)[0], 0])


def channel_maps(
    model: Any,
    inputs: tuple[tf.Tensor],
    indices: tf.Tensor,
    *,
    spatial_axis: tuple[int, ...] = (-3, -2),
) -> tuple[tf.Tensor, tuple[tf.Tensor]]:
    """The step of `channel_activation`: the maps of the channels `indices`.

    Args:
        model: an exposed model returning `[a]`, `a` of shape `(B, ..., C)`.
        inputs: `(x,)`, the images `(B, H, W, C_in)` (any rank).
        indices: the channels, int `(B, L)`.
        spatial_axis: unused (the engine's contract).

    Returns:
        `(scores (B, 0), (maps (B, ..., L),))`.
    """
    (x,) = inputs
    activations = _first(model(x, training=False))
    return _no_scores(x), (gather_units(activations, indices),)


def unit_saliency(
    model: Any,
    inputs: tuple[tf.Tensor],
    indices: tf.Tensor,
    *,
    spatial_axis: tuple[int, ...] = (-3, -2),
    squared: bool = False,
) -> tuple[tf.Tensor, tuple[tf.Tensor]]:
    """The step of `gradient_receptive_field`: `sum_c |d s / d x|` per image.

    `s` is `sum_l a_flat[b, indices[b, l]]` (`squared=False`) or
    `sum_l a_flat[b, indices[b, l]]^2 / 2`, `a_flat` the exposed activation
    flattened; the gradient comes from the method layer's `differentiate`.

    Args:
        model: an exposed model returning `[a]`.
        inputs: `(x,)`, the images `(B, *spatial, C_in)`.
        indices: flat positions in `a[b]`, int `(B, L)`.
        spatial_axis: unused (the engine's contract).
        squared: the score is half the sum of squares.

    Returns:
        `(s (B, 1), (saliency (B, *spatial, 1),))`.
    """
    (x,) = inputs

    def run(images: tf.Tensor) -> tuple[tf.Tensor, list]:
        activations = _first(model(images, training=False))
        flat = tf.reshape(activations, [tf.shape(activations)[0], -1])
        selected = gather_units(flat, indices)
        if squared:
            selected = 0.5 * tf.square(selected)
        return tf.reduce_sum(selected, axis=-1, keepdims=True), [images]

    score, (grads,) = differentiate(run, x)  # grads (B, 1, *spatial, C_in)
    saliency = tf.reduce_sum(tf.abs(grads[:, 0]), axis=-1, keepdims=True)
    return score, (saliency,)


def run_step(
    step: Callable, exposed: Any, images: np.ndarray, indices: np.ndarray, **kw: Any
) -> np.ndarray:
    """`explain(step, exposed, (images,), indices)`'s only map, as numpy.

    Args:
        step: `channel_maps` or `unit_saliency`.
        exposed: the exposed model.
        images: float32 `(N, ...)`.
        indices: int `(N, L)`.
        **kw: `batch_size` and the step's options.

    Returns:
        float32 `(N, ..., L)`.
    """
    _, (maps,) = explain(
        step,
        exposed,
        (images,),
        indices,
        postprocessing=None,
        resizing=False,
        verbose=0,
        **kw,
    )
    return maps
