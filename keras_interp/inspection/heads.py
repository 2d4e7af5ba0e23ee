"""Find the heads of a model: its logits layer, its global pooling, its biases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import received
from keras_interp.inspection.graph import (
    find_layer,
    iter_layers,
    output_layers,
    output_shape,
)


def _is_global_pooling(layer: Any) -> bool:
    kind = type(layer).__name__
    return kind == "Flatten" or (kind.startswith("Global") and "Pool" in kind)


def _is_normalization(layer: Any) -> bool:
    return type(layer).__name__ in (
        "BatchNormalization",
        "SyncBatchNormalization",
        "LayerNormalization",
    )


def get_logits_layer(model: Any, name: Any = None) -> Any:
    """The layer that outputs the model's logits.

    The logits layer is the last layer (at any nesting depth) with a `kernel`,
    provided its output has no spatial extent: a Dense layer, or a 1x1
    convolution on a pooled `(1, 1)` map as in Keras' MobileNet. A model with
    several outputs has no single logits layer: it is refused rather than
    guessed (choose one with `Target(output=...)`).

    Args:
        model: a Keras model.
        name: an explicit layer reference (see `find_layer`), returned as is.

    Returns:
        The layer.

    Raises:
        ValueError: the model has no layer with a kernel, the last such layer
            outputs a spatial map (a headless backbone), or the model has
            several outputs.

    Example:
        >>> get_logits_layer(keras.applications.MobileNetV2(weights=None)).name
        'predictions'
    """
    if name is not None:
        return find_layer(model, name)
    outputs = output_layers(model)
    if len(outputs) > 1:
        listed = ", ".join(
            f"{i}: {' / '.join(map(repr, names))}"
            for i, (names, _) in enumerate(outputs)
        )
        raise ValueError(
            f"Model {model.name!r} has {len(outputs)} outputs ({listed}): choose "
            "the one to explain with `outputs=Target(output=index or name)`, e.g. "
            "expose(model, outputs=Target(output=0)), or `select_output(model, "
            "output)` for the methods that take a plain model. "
            f"{received('model', model.name)}"
        )
    candidates = [layer for _, layer in iter_layers(model) if hasattr(layer, "kernel")]
    if not candidates:
        raise ValueError(
            f"Model {model.name!r} has no logits layer: no layer has a kernel. "
            "Pass the layer to explain with `outputs=`."
        )
    layer = candidates[-1]
    shape = output_shape(layer)
    if shape is not None and any(d not in (1, None) for d in shape[1:-1]):
        raise ValueError(
            f"Model {model.name!r} has no logits layer: its last layer with a "
            f"kernel, {layer.name!r}, outputs a spatial map of shape {shape}. "
            "Is this a headless backbone? Pass the layer to explain with "
            "`outputs=`."
        )
    return layer


def get_global_pooling_layer(model: Any, name: Any = None) -> Any:
    """The last global pooling (or Flatten) layer, at any nesting depth.

    Its input is the default layer explained by the CAM methods: the last
    spatial feature map before the classifier.

    Args:
        model: a Keras model.
        name: an explicit layer reference (see `find_layer`), returned as is.

    Returns:
        The layer.

    Raises:
        ValueError: the model has no global pooling or Flatten layer.
    """
    if name is not None:
        return find_layer(model, name)
    candidates = [layer for _, layer in iter_layers(model) if _is_global_pooling(layer)]
    if not candidates:
        raise ValueError(
            f"Model {model.name!r} has no global pooling or Flatten layer, so "
            "the layer to explain cannot be guessed. Pass it with `arguments=`, "
            "e.g. expose(model, arguments='block5_conv3')."
        )
    return candidates[-1]


def layers_with_biases(
    model: Any, exclude: Sequence[Any] = (), return_biases: bool = True
) -> Any:
    """Every layer (at any depth) that adds a bias: Dense/Conv biases and the
    implicit bias of normalization layers.

    Args:
        model: a Keras model.
        exclude: layers (or references) to leave out, e.g. the logits layer.
        return_biases: also return `biases(layers)`.

    Returns:
        `layers`, or `(layers, biases)` when `return_biases` is True.
    """
    excluded = {id(find_layer(model, ref)) for ref in exclude}
    layers = [
        layer
        for _, layer in iter_layers(model)
        if id(layer) not in excluded
        and (_is_normalization(layer) or getattr(layer, "bias", None) is not None)
    ]
    return (layers, biases(layers)) if return_biases else layers


def biases(layers: Sequence[Any]) -> list[tf.Tensor]:
    """The bias each layer adds to its output, one 1-D tensor per layer.

    - Dense, Conv and similar: the `bias` weight.
    - BatchNormalization: the inference-time offset
      `beta - moving_mean * gamma / sqrt(moving_variance + epsilon)`, with the
      layer's own `epsilon`, `gamma = 1` when `scale=False` and `beta = 0`
      when `center=False` (keras-explainable used a fixed 1e-7 and failed
      without gamma or beta).
    - LayerNormalization: `beta` (its statistics are per sample, so it has no
      fixed offset beyond `beta`); zeros when `center=False`.

    Args:
        layers: layers as returned by `layers_with_biases`.

    Returns:
        A list of float32 tensors `(channels,)`.

    Raises:
        ValueError: a layer has no bias.

    References:
        Srinivas & Fleuret, Full-Gradient Representation for Neural Network
        Visualization, NeurIPS 2019. arXiv:1905.00780.
    """
    return [_bias(layer) for layer in layers]


def _bias(layer: Any) -> tf.Tensor:
    kind = type(layer).__name__
    if "BatchNormalization" in kind:
        mean = tf.convert_to_tensor(layer.moving_mean, tf.float32)
        variance = tf.convert_to_tensor(layer.moving_variance, tf.float32)
        gamma = _weight_or(layer, "gamma", "scale", tf.ones_like(mean))
        beta = _weight_or(layer, "beta", "center", tf.zeros_like(mean))
        return beta - mean * gamma / tf.sqrt(variance + layer.epsilon)
    if kind == "LayerNormalization":
        weight = layer.beta if layer.center else getattr(layer, "gamma", None)
        zeros = tf.zeros(() if weight is None else weight.shape, tf.float32)
        return _weight_or(layer, "beta", "center", zeros)
    bias = getattr(layer, "bias", None)
    if bias is None:
        raise ValueError(
            f"Layer {layer.name!r} has no bias. {received('layer', layer.name)}"
        )
    return tf.convert_to_tensor(bias, tf.float32)


def _weight_or(layer: Any, weight: str, flag: str, default: tf.Tensor) -> tf.Tensor:
    if getattr(layer, flag, True) and getattr(layer, weight, None) is not None:
        return tf.convert_to_tensor(getattr(layer, weight), tf.float32)
    return default
