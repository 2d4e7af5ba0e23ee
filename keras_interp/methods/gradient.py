"""Gradient attribution: saliency, input x gradient, integrated gradients, FullGrad.

Every method differentiates the selected scores (the first output of the model,
gathered by `indices` inside the tape) and returns `(logits (B, L), maps)`.
For one unit the backward pass is `tape.gradient` of the batch sum (samples are
independent in inference mode); for several units it is one vectorised
`tape.jacobian` of the per-unit batch sums. Guided backpropagation and
gradients at an intermediate layer live in `keras_interp.methods.guided`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_callable, received
from keras_interp.inspection.expose import expose, exposed_layers
from keras_interp.inspection.graph import call_pre_activation
from keras_interp.inspection.heads import biases as layer_biases
from keras_interp.inspection.heads import get_logits_layer, layers_with_biases
from keras_interp.methods import _nests
from keras_interp.methods._base import forward, is_nest, scores
from keras_interp.methods._differentiate import (
    SPATIAL_AXIS,
    channel_maps,
    channels_last_grads,
    check_filter,
    differentiate,
    images,
    input_maps,
    run_overridden,
    select,
)
from keras_interp.methods._integrated import integrated_gradients
from keras_interp.methods.record import OptionSpec, method_record

__all__ = [
    "full_gradients",
    "full_gradients_model",
    "gradients",
    "input_x_gradient",
    "integrated_gradients",
]


# ------------------------------------------------------------------ saliency
@method_record(
    family="gradient",
    postprocessing=filters.normalize,
    options={"gradient_filter": OptionSpec.function(optional=True)},
)
def gradients(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: tuple[int, ...] = SPATIAL_AXIS,
    gradient_filter: Callable | None = tf.abs,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Vanilla gradient saliency: how much each pixel moves each score.

    `maps[b, h, w, l] = mean_c filter(d s_l(x_b) / d x_b[h, w, c])`.

    Works with any callable model (functional, Sequential, subclassed, exposed,
    a TF-Hub layer): only its first output, the scores `(B, K)`, is used.

    Args:
        model: a model (or callable) whose first output is the scores `(B, K)`.
        inputs: float images `(B, H, W, C)`, or a tuple, list or dict of
            inputs of a model with several inputs: `maps` is then one map
            per input in the same structure (`(B, H, W, L)` for an image,
            `(B, *shape, L)` for another input).
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the height and width axes of `inputs`: `(-3, -2)` for
            `(B, H, W, C)`, `(-2, -1)` for channels-first `(B, C, H, W)`; the
            maps are channels-last `(B, H, W, L)` either way.
        gradient_filter: applied elementwise before averaging the channels.
            Defaults to `tf.abs` (Simonyan et al. take the maximum absolute
            value over channels; keras-explainable the mean absolute value,
            kept here). `None` keeps the signed gradient.

    Returns:
        `(logits, maps)` of shapes `(B, L)` and `(B, H, W, L)`, unnormalised.

    Raises:
        TypeError: `gradient_filter` is not callable.

    Example:
        >>> model = keras_interp.testing.models.linear()
        >>> logits, maps = gradients(model, tf.ones((2, 6, 6, 3)), [[0], [1]])
        >>> maps.shape
        TensorShape([2, 6, 6, 1])

    References:
        Simonyan, Vedaldi & Zisserman, Deep Inside Convolutional Networks:
        Visualising Image Classification Models and Saliency Maps, ICLR
        workshop 2014. arXiv:1312.6034.
    """
    gradient_filter = check_filter(gradient_filter)
    maps = _nests.filtered_maps if is_nest(inputs) else input_maps
    return maps(
        lambda x: scores(model, x, indices)[0], inputs, gradient_filter, spatial_axis
    )


@method_record(
    family="gradient", postprocessing=filters.absolute_normalize, signed=True
)
def input_x_gradient(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: tuple[int, ...] = SPATIAL_AXIS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Input times gradient: the first-order contribution of every pixel.

    `maps[b, h, w, l] = sum_c x_b[h, w, c] * d s_l(x_b) / d x_b[h, w, c]`, signed
    (channels are summed, not made absolute, so for a linear model the map sums
    to the score minus the bias).

    Args:
        model: a model (or callable) whose first output is the scores `(B, K)`.
        inputs: float images `(B, H, W, C)`, or a tuple, list or dict of
            inputs of a model with several inputs: `maps` is then one map
            per input in the same structure (`(B, H, W, L)` for an image,
            `(B, *shape, L)` for another input).
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the height and width axes of `inputs`: `(-3, -2)` for
            `(B, H, W, C)`, `(-2, -1)` for channels-first `(B, C, H, W)`; the
            maps are channels-last `(B, H, W, L)` either way.

    Returns:
        `(logits, maps)` of shapes `(B, L)` and `(B, H, W, L)`, unnormalised.

    Example:
        >>> model = keras_interp.testing.models.linear()
        >>> logits, maps = input_x_gradient(model, tf.ones((1, 6, 6, 3)))
        >>> maps.shape
        TensorShape([1, 6, 6, 2])

    References:
        Shrikumar, Greenside, Shcherbina & Kundaje, Not Just a Black Box:
        Learning Important Features Through Propagating Activation
        Differences, 2016. arXiv:1605.01713.
    """
    if is_nest(inputs):
        inputs = _nests.checked(inputs, spatial_axis)
        logits, grads = _nests.input_gradients(model, inputs, indices)
        products = [g * x[:, None] for g, x in zip(grads, tf.nest.flatten(inputs))]
        return logits, _nests.per_input_maps(
            inputs, products, spatial_axis, tf.reduce_sum
        )
    inputs = images(inputs, spatial_axis)
    logits, (grads,) = differentiate(
        lambda x: (scores(model, x, indices)[0], [x]), inputs
    )
    products = channels_last_grads(grads * inputs[:, None], spatial_axis)
    return logits, channel_maps(products, tf.reduce_sum)


# ------------------------------------------------------------------- FullGrad
def full_gradients_model(model: Any) -> Any:
    """The model `full_gradients` expects: `[logits, *layers with a bias]`.

    `expose(model, arguments=layers_with_biases(model, exclude=[logits]),
    outputs=logits)`, with `logits = get_logits_layer(model)` (its output
    taken before a softmax/sigmoid).

    Args:
        model: a functional or Sequential model (nested backbones allowed).

    Returns:
        The exposed model.

    Raises:
        ValueError: as `expose` (no logits layer, no layer graph).

    Example:
        >>> exposed = full_gradients_model(keras_interp.testing.models.gap_dense())
        >>> [name for name, _ in exposed.endpoints]
        ['logits', 'conv']
    """
    logits = get_logits_layer(model)
    layers = layers_with_biases(model, exclude=[logits], return_biases=False)
    return expose(model, arguments=layers, outputs=logits)


@method_record(
    family="gradient",
    exposed=True,
    exposer=full_gradients_model,
    postprocessing=filters.normalize,
    options={"psi": OptionSpec.function(optional=True)},
)
def full_gradients(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: tuple[int, ...] = SPATIAL_AXIS,
    psi: Callable | None = None,
    biases: Sequence[Any] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """FullGrad: input-gradient plus the bias-gradients of every layer.

    `maps_l = r(psi(x * d s_l/dx)) + sum_j r(psi(b_j * d s_l/dz_j))`, where
    `z_j` is the output of the j-th exposed layer before its activation, `b_j`
    its bias (broadcast over space), `psi` is applied per channel and unit,
    and `r` averages the channels and resizes (bilinear) to the input size.
    The maps are therefore at input resolution.

    Differences from keras-explainable, deliberate: one map per explained unit
    (the reference summed all selected units into a single map); the
    bias-gradient of a layer with a fused activation (`Conv2D(...,
    activation="relu")`) is taken before the activation, where the bias is
    added (the reference used the activated output); non-spatial
    intermediates (Dense outputs) have no map and are skipped, as in the
    authors' implementation. Channels are averaged, as in keras-explainable
    (the authors summed them).

    Args:
        model: an exposed model returning `[scores, *intermediates]`, e.g.
            `full_gradients_model(model)` or `expose(model, arguments=layers,
            outputs=logits_layer)`.
        inputs: float images `(B, H, W, C)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the height and width axes of the inputs and of the
            intermediates (same layout; `(-2, -1)` for channels-first).
        psi: `psi(t, axis)` applied to every term `(B, L, H, W, C)`, `axis`
            being its spatial axes `(-3, -2)`. Defaults to the absolute value
            followed by min-max normalisation over space.
        biases: one bias per intermediate, broadcastable to its channels.
            Defaults to `inspection.biases` of the exposed layers.

    Returns:
        `(logits, maps)` of shapes `(B, L)` and `(B, H, W, L)`.

    Raises:
        ValueError: `model` is not an exposed model and `biases` is not given,
            the model has no intermediate outputs, or `biases` has another
            length.
        TypeError: `psi` is not callable.

    Example:
        >>> model = full_gradients_model(keras_interp.testing.models.gap_dense())
        >>> logits, maps = full_gradients(model, tf.ones((1, 8, 8, 3)), [[0]])
        >>> maps.shape
        TensorShape([1, 8, 8, 1])

    References:
        Srinivas & Fleuret, Full-Gradient Representation for Neural Network
        Visualization, NeurIPS 2019. arXiv:1905.00780.
    """
    psi = _absolute_normalize if psi is None else check_callable(psi, "psi")
    layers = list(exposed_layers(model))[1:]
    if biases is None and not layers:
        raise ValueError(
            "`model` must be an exposed model returning [scores, *intermediates], "
            "e.g. full_gradients_model(model) or expose(model, arguments=layers, "
            "outputs=logits_layer), or pass `biases`. "
            + received("model", getattr(model, "name", model))
        )
    inputs = images(inputs, spatial_axis)

    def run(x):
        outputs, pre_activations = _full_gradient_outputs(model, x, layers)
        if len(outputs) < 2:
            raise ValueError(
                "`model` must return [scores, *intermediates]; it returned "
                f"{len(outputs)} output(s). "
                + received("model", getattr(model, "name", model))
            )
        return select(outputs[0], indices), [x, *pre_activations]

    logits, (grad_x, *grads) = differentiate(run, inputs)
    terms = layer_biases(layers) if biases is None else list(biases)
    if len(terms) != len(grads):
        raise ValueError(
            f"`biases` must hold one bias per intermediate output ({len(grads)}). "
            f"{received('biases', terms)}"
        )
    product = channels_last_grads(inputs[:, None] * grad_x, spatial_axis)
    maps = channel_maps(psi(product, SPATIAL_AXIS))
    # Bilinear resizing is linear: the terms of one resolution are summed
    # first and resized once (a few resizes instead of one per layer).
    by_size: dict[Any, tf.Tensor] = {}
    for index, (bias, grad) in enumerate(zip(terms, grads)):
        if grad.shape.rank != 5:
            continue  # no spatial map (a Dense output)
        grad = channels_last_grads(grad, spatial_axis)
        term = channel_maps(
            psi(tf.cast(bias, tf.float32) * tf.cast(grad, tf.float32), SPATIAL_AXIS)
        )
        size = tuple(term.shape[1:3])
        key = size if None not in size else index
        by_size[key] = by_size[key] + term if key in by_size else term
    for term in by_size.values():
        maps += tf.image.resize(term, tf.shape(maps)[1:3], method="bilinear")
    return logits, maps


def _full_gradient_outputs(model, inputs, layers):
    """The model's outputs and, per intermediate, the tensor to differentiate:
    the pre-activation of a layer with a fused activation, else the output."""
    links = [link for _, link in getattr(model, "endpoints", [])][1:]
    fused = {
        id(layer)
        for layer, link in zip(layers, links)
        if link == "output" and _has_activation(layer)
    }
    if not fused:
        outputs = forward(model, inputs)
        return outputs, outputs[1:]
    captured = {}

    def capture(layer, args, kwargs):
        if id(layer) not in fused:
            return NotImplemented
        captured[id(layer)] = call_pre_activation(layer, *args, **kwargs)
        return layer.activation(captured[id(layer)])

    outputs = run_overridden(model, inputs, capture)
    return outputs, [
        captured.get(id(layer), output) for layer, output in zip(layers, outputs[1:])
    ]


def _has_activation(layer: Any) -> bool:
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return type(layer).__name__ != "Activation" and name not in (None, "linear")


def _absolute_normalize(x: tf.Tensor, axis: tuple[int, ...]) -> tf.Tensor:
    """`|x|` min-max normalised to [0, 1] over `axis` (keras-explainable)."""
    x = tf.abs(x)
    x = x - tf.reduce_min(x, axis=axis, keepdims=True)
    return tf.math.divide_no_nan(x, tf.reduce_max(x, axis=axis, keepdims=True))
