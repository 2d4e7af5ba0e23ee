"""Concept activations and logit gradients, batched and compiled by the engine.

A concept model (`keras_interp.models.Model`: `KerasModel`, a frozen graph,
...) is not a Keras model: `layer_call` gives the engine a callable for one of
its layers, `x -> [activations]` or `x -> [logits, activations]`, kept once
per (model, layer) so that `explain` compiles each step once and reuses it
across calls and batch sizes (the class index travels as data, the indices).
The gradient step differentiates with the method layer's `differentiate`.

Images given one by one are prepared (`model.prepare`: crop, resize, scale)
into one float batch before `explain` runs: the batch is of the same order of
size as the activations or gradients returned for it.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_images, progress_verbosity, received
from keras_interp.engine import compiled_function, explain
from keras_interp.engine.cache import cached_variant
from keras_interp.methods._differentiate import differentiate, select

#: Array types accepted as a batch (prepared images or activations).
ARRAY_TYPES = (np.ndarray, tf.Tensor)


class LayerCall:
    """One layer of a concept model as a callable: `x -> [activations]`, or
    `x -> [logits, activations]` with `logits=True`; `x` is a prepared float
    batch `(B, H, W, 3)` in the model's input range."""

    def __init__(self, model: Any, layer: str, logits: bool) -> None:
        self.model = model  # a weakref.proxy (see `layer_call`)
        self.layer = layer
        self.logits = logits
        self.name = f"{model.__class__.__name__}_{layer}".replace("/", "_")

    def __call__(self, inputs: Any, training: Any = None) -> list[tf.Tensor]:
        x = tf.cast(inputs, tf.float32)
        if self.logits:
            return list(self.model.logits_and_layer(x, self.layer))
        return list(self.model.layer_outputs(x, [self.layer]))


def layer_call(model: Any, layer: str, logits: bool) -> Any:
    """The callable the engine runs for `(model, layer)`, the same every time.

    For a `KerasModel` it is the exposed Keras model (`expose(keras_model,
    arguments=[layer])`, with the logits or without), kept per Keras model, so
    a raw Keras model wrapped anew at each call still reuses its compiled
    functions; for other models a `LayerCall`. Either reaches the model
    through a `weakref.proxy`: the cache never keeps a model alive.
    """
    from keras_interp.inspection import expose
    from keras_interp.models.base import KerasModel

    key = (layer, bool(logits))
    if isinstance(model, KerasModel):
        outputs = None if logits else []
        return _cached(
            model.keras_model,
            key,
            lambda source: expose(source, arguments=[layer], outputs=outputs),
        )
    return _cached(model, key, lambda source: LayerCall(source, layer, logits))


def _cached(owner: Any, key: tuple, build: Any) -> Any:
    """`build(weakref.proxy(owner))`, made once per `(owner, key)` in the
    engine's one per-model cache (`cache.cached_variant`)."""
    try:
        proxy = weakref.proxy(owner)
    except TypeError:  # not weakly referenceable: nothing to cache against
        return build(owner)
    return cached_variant(owner, ("concepts", *key), lambda: build(proxy))


# -- the steps the engine runs ----------------------------------------------------
def activation_rows(
    model: Any,
    inputs: tuple[tf.Tensor],
    indices: Any = None,
    *,
    spatial_axis: tuple[int, ...] = (-3, -2),
) -> tuple[tf.Tensor, tuple[tf.Tensor]]:
    """`(scores (B, 0), (activations (B, D),))`, flattened in NHWC order."""
    (x,) = inputs
    (activations,) = model(x, training=False)
    rows = tf.reshape(activations, [tf.shape(x)[0], -1])
    return tf.zeros([tf.shape(x)[0], 0]), (rows,)


def gradient_rows(
    model: Any,
    inputs: tuple[tf.Tensor],
    indices: tf.Tensor,
    *,
    spatial_axis: tuple[int, ...] = (-3, -2),
    layer: str = "",
) -> tuple[tf.Tensor, tuple[tf.Tensor]]:
    """`(logits (B, L), (d logits_l / d a (B, D, L),))`, `a` flattened NHWC.

    `model` returns `[logits, a]`; `layer` names `a` in error messages.

    Raises:
        ValueError: the logits do not depend on the layer (found while tracing).
    """
    (x,) = inputs
    seen: list[tf.Tensor] = []

    def run(images: tf.Tensor) -> tuple[tf.Tensor, list]:
        logits, activations = model(images, training=False)
        seen[:] = [logits, activations]
        return select(logits, indices), [activations]

    logits, (grads,) = differentiate(run, x)  # grads (B, L, *a.shape[1:])
    if not tf.executing_eagerly() and tf.gradients(*seen)[0] is None:
        raise ValueError(
            f"The logits do not depend on layer {layer!r}: choose a layer "
            f"before the logits. {received('layer_name', layer)}"
        )
    rows = tf.reshape(grads, [tf.shape(x)[0], tf.shape(grads)[1], -1])
    return logits, (tf.transpose(rows, [0, 2, 1]),)


# -- what the concept functions call ------------------------------------------------
def prepared(model: Any, images: Any, arg: str) -> np.ndarray:
    """A float32 input batch: a float array or tensor of rank 4 as it is;
    anything else is a sequence of images, each prepared with `model.prepare`.
    """
    if is_float_batch(images):
        return check_images(images, arg)
    if isinstance(images, ARRAY_TYPES) and np.ndim(images) != 4:
        raise ValueError(
            f"`{arg}` must be a sequence of images or a batch of rank 4 "
            f"(batch, height, width, channels). {received(arg, images)}"
        )
    items = [
        np.asarray(im) if isinstance(im, tf.Tensor) else im
        for im in check_nonempty(images, arg)
    ]
    check_nonempty(items, arg)  # an iterator may have been empty
    return np.concatenate([model.prepare(im) for im in items])


def layer_activations(
    model: Any,
    images: Any,
    layer: str,
    *,
    batch_size: int = 32,
    verbose: Any = 0,
    arg: str = "images",
) -> np.ndarray:
    """Flattened activations `(N, D)` of `layer` (NHWC order), float32.

    Args:
        model: a `keras_interp.models.Model`.
        images: a prepared float batch `(N, H, W, 3)` or a sequence of images.
        layer: one of the model's layers (already checked).
        batch_size: images per forward pass.
        verbose: `"auto"`, 0, 1 or 2, as `explain`.
        arg: the argument's name in error messages.
    """
    x = prepared(model, images, arg)
    verbose = progress_verbosity(verbose, -(-len(x) // batch_size))
    _, (rows,) = explain(
        activation_rows,
        layer_call(model, layer, logits=False),
        (x,),
        batch_size=batch_size,
        postprocessing=None,
        resizing=False,
        verbose=verbose,
    )
    return rows


def logit_gradients(
    model: Any, images: Any, layer: str, class_index: int, batch_size: int, arg: str
) -> np.ndarray:
    """`grad_a z_k(a)` per image, flattened NHWC: float32 `(N, D)`.

    Raises:
        ValueError: `class_index` is not below the number of logits, or the
            logits do not depend on `layer`.
    """
    x = prepared(model, images, arg)
    call = layer_call(model, layer, logits=True)
    indices = np.full((len(x), 1), class_index, np.int64)
    try:
        _, (rows,) = explain(
            gradient_rows,
            call,
            (x,),
            indices,
            batch_size=batch_size,
            postprocessing=None,
            resizing=False,
            verbose=0,
            layer=layer,
        )
    except ValueError:
        function = gradient_function(call, layer)
        widths = [w for w in function.unit_widths if w is not None]
        if widths and class_index >= min(widths):
            raise ValueError(
                "`class_index` must be smaller than the number of logits "
                f"({min(widths)}). {received('class_index', class_index)}"
            ) from None
        raise
    return rows[..., 0]


def gradient_function(call: Any, layer: str) -> Any:
    """The compiled function `logit_gradients` runs for `call` (the engine's
    cached one: its `unit_widths` and trace count can be read)."""
    return compiled_function(
        gradient_rows, call, postprocessing=None, resizing=False, layer=layer
    )


# -- argument checks shared by the concept functions -----------------------------
def check_nonempty(images: Any, arg: str) -> Any:
    """`images` after cheap checks: not a lone path, not an empty collection."""
    if isinstance(images, (str, bytes, os.PathLike)) or not hasattr(images, "__iter__"):
        raise TypeError(
            f"`{arg}` must be a sequence of images or a batch array. "
            f"{received(arg, images)}"
        )
    if hasattr(images, "__len__") and len(images) == 0:
        raise ValueError(f"`{arg}` must not be empty. {received(arg, images)}")
    return images


def is_float_batch(images: Any) -> bool:
    """Whether `images` is a float array or tensor (a prepared batch)."""
    if isinstance(images, tf.Tensor):
        return images.dtype.is_floating
    return isinstance(images, np.ndarray) and images.dtype.kind == "f"
