"""Graph pieces of the export: the classifier head and the overlay image."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import received
from keras_interp.visualization import colorize

#: How `Head.probabilities` turns logits into probabilities (see `read_head`).
PROBABILITY_MODES = ("softmax", "sigmoid", "identity", "model")


@dataclasses.dataclass(frozen=True)
class Head:
    """How to get a classifier's logits and probabilities in the graph.

    Attributes:
        classes: the number of classes `K`.
        logits_model: a model mapping images to the logits `(B, K)` (the
            pre-activation of a softmax/sigmoid head, as `expose` gives them).
        model: the user's model.
        mode: how probabilities are made: `"softmax"`/`"sigmoid"` of the
            logits, `"identity"` (the logits already are probabilities) or
            `"model"` (the model's own outputs, one more forward pass).
    """

    classes: int
    logits_model: Any
    model: Any
    mode: str

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """The logits `(B, K)`, float32."""
        return _first(self.logits_model(images, training=False))

    def probabilities(self, images: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """The probabilities `(B, K)` for `images` whose logits are `logits`."""
        if self.mode == "softmax":
            return tf.nn.softmax(logits, axis=-1)
        if self.mode == "sigmoid":
            return tf.sigmoid(logits)
        if self.mode == "identity":
            return logits
        return tf.cast(self.model(images, training=False), tf.float32)


def _first(outputs: Any) -> tf.Tensor:
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return tf.cast(outputs, tf.float32)


def read_head(model: Any, seed: int = 0) -> Head:
    """Find `model`'s logits and how its outputs relate to them.

    The logits come from `expose(model, arguments=[])` (the model itself when
    it cannot be exposed). Which of softmax, sigmoid or nothing turns them
    into the model's outputs is read off one forward pass on random inputs;
    when none does, probabilities are the model's outputs, or a softmax of
    them when they are logits.

    Raises:
        ValueError: `model` does not have a single `(B, K)` output.
    """
    from keras_interp.inspection import expose

    shape = getattr(model, "output_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or not shape[1]:
        raise ValueError(
            "`model` must be a classifier with one output (B, K). "
            f"{received('model.output_shape', shape)}"
        )
    try:
        logits_model = expose(model, arguments=[])
    except ValueError:
        logits_model = model
    input_shape = (2, *model.input_shape[1:])
    if None in input_shape:
        raise ValueError(
            "`model` must have a fixed input size to be exported. "
            f"{received('model.input_shape', model.input_shape)}"
        )
    probe = np.random.default_rng(seed).uniform(-1, 1, input_shape)
    probe = tf.constant(probe, tf.float32)
    outputs = np.asarray(_first(model(probe, training=False)))
    logits = np.asarray(_first(logits_model(probe, training=False)))

    def same(a: np.ndarray) -> bool:
        return np.allclose(a, outputs, rtol=1e-4, atol=1e-6)

    if same(np.asarray(tf.nn.softmax(logits))) and not same(logits):
        mode = "softmax"
    elif same(np.asarray(tf.sigmoid(logits))) and not same(logits):
        mode = "sigmoid"
    elif same(logits):
        rows = outputs.sum(axis=-1)
        distribution = (outputs >= 0).all() and np.allclose(rows, 1, atol=1e-4)
        mode = "identity" if distribution else "softmax"
    else:
        mode = "model"
    return Head(int(shape[1]), logits_model, model, mode)


#: Key prefix of the method outputs holding the full logits a method computed.
SCORES = "_scores_"


def gathered_from(
    logits: tf.Tensor, classes: tf.Tensor, width: int
) -> tf.Tensor | None:
    """The full scores `(B, width)` that a method's `logits` were gathered from.

    Methods return the logits of the requested classes, `tf.gather(scores,
    classes, batch_dims=1)` (`inspection.gather_units`) of the scores of
    their own forward pass. Walking back from `logits` through `Identity` and
    `Cast` ops in the traced graph finds `scores` when that gather made them
    directly (not inside a loop, not averaged over perturbed copies).

    Args:
        logits: a method's logits `(B, L)`, a symbolic tensor.
        classes: the class indices `(B, L)` the method was given.
        width: the number of classes `K`.

    Returns:
        The symbolic `(B, K)` tensor, or `None` when `logits` are not such a
        gather of `classes`.
    """
    if tf.executing_eagerly() or not hasattr(logits, "op"):
        return None

    def source(tensor: Any) -> Any:
        while tensor.op.type in ("Identity", "Cast"):
            tensor = tensor.op.inputs[0]
        return tensor

    gathered = source(logits)
    op = gathered.op
    if op.type != "GatherV2" or op.get_attr("batch_dims") != 1:
        return None
    scores, indices = op.inputs[0], source(op.inputs[1])
    if indices.name != source(classes).name or scores.dtype != tf.float32:
        return None
    if scores.shape.rank != 2 or scores.shape[-1] != width:
        return None
    return scores


def reusable_scores(
    core: Callable, head: Head, size: tuple[int, int], channels: int, seed: int = 0
) -> str | None:
    """The first `SCORES` output of `core` that equals the head's logits.

    `core(images, classes)` returns each method's maps and, where
    `gathered_from` found them, the full scores of the method's forward pass.
    They replace the head's own forward pass only where they equal its
    logits, checked on a random probe batch (a method whose model ends at a
    softmax gives probabilities, one averaging perturbed copies others).

    Returns:
        The output key, or `None` when no method's scores are the logits.
    """
    probe = np.random.default_rng(seed).uniform(-1, 1, (2, *size, channels))
    probe = tf.constant(probe, tf.float32)
    outputs = core(probe, tf.zeros((2, 1), tf.int32))
    keys = sorted(
        (k for k in outputs if k.startswith(SCORES)),
        key=lambda k: int(k[len(SCORES) :]),
    )
    if not keys:
        return None
    expected = np.asarray(head.logits(probe))
    scale = max(float(np.abs(expected).max()), 1e-6)
    for key in keys:
        if np.allclose(outputs[key], expected, rtol=1e-4, atol=1e-5 * scale):
            return key
    return None


def overlay_png(pixels: tf.Tensor, maps: tf.Tensor, alpha: float = 0.5) -> tf.Tensor:
    """PNG-encoded overlays of the first map channel over `pixels`.

    Each map `(H, W)` is min-max normalised per image, coloured with the
    colour map of `keras_interp.visualization.colorize` (a 256-entry table) and
    blended as `(1 - alpha) image + alpha colour`, as
    `visualization.overlay`.

    Args:
        pixels: float `(B, H, W, 3)` in [0, 1].
        maps: float `(B, H, W, L)`.
        alpha: the heatmap's opacity.

    Returns:
        string `(B,)`, one PNG per image.
    """
    heat = maps[..., 0]
    low = tf.reduce_min(heat, axis=[1, 2], keepdims=True)
    span = tf.reduce_max(heat, axis=[1, 2], keepdims=True) - low
    safe = tf.where(span > 0, span, tf.ones_like(span))
    norm = tf.where(span > 0, (heat - low) / safe, tf.zeros_like(heat))
    table = tf.constant(colorize(np.linspace(0, 1, 256)[None])[0], tf.float32)
    colours = tf.gather(table, tf.cast(tf.round(norm * 255.0), tf.int32))
    blended = (1 - alpha) * tf.clip_by_value(pixels, 0, 1) + alpha * colours
    images = tf.cast(tf.round(tf.clip_by_value(blended, 0, 1) * 255.0), tf.uint8)
    encode: Callable = tf.io.encode_png
    return tf.map_fn(encode, images, fn_output_signature=tf.string)
