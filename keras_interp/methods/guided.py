"""Guided backpropagation, and gradients at the input of any layer (dnnbrain).

Guided backpropagation runs the model layer by layer (`run_graph`) and swaps
the gradient of every ReLU-family activation, at any nesting depth, for the
guided one. The user's model is never modified: no layer is patched, no
attribute is set, no node is added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import received
from keras_interp.inspection.graph import call_pre_activation, has_graph, iter_layers
from keras_interp.methods import _nests
from keras_interp.methods._base import (
    channels_last,
    check_single_output,
    float_inputs,
    forward,
    is_nest,
)
from keras_interp.methods._differentiate import (
    SPATIAL_AXIS,
    channel_maps,
    channels_last_grads,
    check_filter,
    differentiate,
    input_maps,
    run_overridden,
    select,
)
from keras_interp.methods.record import OptionSpec, method_record

__all__ = ["guided_gradients", "layer_gradients"]

#: `(threshold, max_value, negative_slope)` of the guided activation functions.
RELU_ACTIVATIONS = {"relu": (0.0, None, 0.0), "relu6": (0.0, 6.0, 0.0)}


@method_record(
    family="gradient",
    postprocessing=filters.normalize,
    options={"gradient_filter": OptionSpec.function(optional=True)},
)
def guided_gradients(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: tuple[int, ...] = SPATIAL_AXIS,
    gradient_filter: Callable | None = tf.abs,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Guided backpropagation: only positive signals flow back through ReLUs.

    At every ReLU `y = relu(x)` the backward pass becomes
    `g_in = g_out * [g_out > 0] * [x > 0]` (ReLU6 also gates `[x < 6]`; a
    `ReLU` layer's `threshold`, `max_value` and `negative_slope` are honoured:
    `g_in = relu(g_out) * relu'(x)`). Guided are `ReLU` layers,
    `Activation("relu" | "relu6")` layers and layers with a fused
    `activation="relu" | "relu6"` (Conv2D, Dense, ...), inside nested models
    at any depth. Then `maps = mean_c filter(guided gradient)`.

    The model is run layer by layer with `inspection.graph.run_graph`, so
    `tf.custom_gradient` ReLUs replace the model's ones for this call only.
    ReLUs hidden inside a custom layer's `call` (or a `Lambda`) are not seen.

    Args:
        model: a functional or Sequential model (Keras 3 or tf_keras), or an
            exposed model (its first output is explained).
        inputs: float images `(B, H, W, C)`, or a tuple, list or dict of
            inputs of a model with several inputs: `maps` is then one map
            per input in the same structure (`(B, H, W, L)` for an image,
            `(B, *shape, L)` for another input).
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the height and width axes of `inputs`: `(-3, -2)` for
            `(B, H, W, C)`, `(-2, -1)` for channels-first `(B, C, H, W)`; the
            maps are channels-last `(B, H, W, L)` either way.
        gradient_filter: applied before averaging the channels. Defaults to
            `tf.abs`, as `gradients` (so both agree on a model without ReLUs);
            `None` keeps the signed guided gradient (dnnbrain).

    Returns:
        `(logits, maps)` of shapes `(B, L)` and `(B, H, W, L)`, unnormalised.

    Raises:
        ValueError: the model (or a model nested in it) is subclassed and has
            no layer graph.
        TypeError: `gradient_filter` is not callable.

    Example:
        >>> model = keras_interp.testing.models.gap_dense()
        >>> logits, maps = guided_gradients(model, tf.ones((1, 8, 8, 3)), [[2]])
        >>> maps.shape
        TensorShape([1, 8, 8, 1])

    References:
        Springenberg, Dosovitskiy, Brox & Riedmiller, Striving for Simplicity:
        The All Convolutional Net, ICLR workshop 2015. arXiv:1412.6806.
    """
    gradient_filter = check_filter(gradient_filter)
    _check_guidable(model, "guided_gradients")
    maps = _nests.filtered_maps if is_nest(inputs) else input_maps

    def run(x: Any) -> tf.Tensor:
        outputs = run_overridden(model, x, guided_override)
        check_single_output(model, outputs)
        return select(outputs[0], indices)

    return maps(
        run,
        inputs,
        gradient_filter,
        spatial_axis,
    )


@method_record(
    family="gradient",
    exposed=True,
    postprocessing=filters.normalize,
    shortcut=False,
    options={
        "guided": OptionSpec.boolean(),
        "gradient_filter": OptionSpec.function(optional=True),
    },
)
def layer_gradients(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    guided: bool = False,
    gradient_filter: Callable | None = None,
    spatial_axis: tuple[int, ...] = SPATIAL_AXIS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Back-propagation to a chosen layer: the gradient at that layer's input.

    dnnbrain's `SaliencyImage.backprop(image, to_layer)`: with
    `model = expose(source, arguments={"name": layer, "link": "input"})`,
    returning `[scores, a]`, `maps[b, h, w, l] = mean_c filter(d s_l / d a_b[h,
    w, c])` at the resolution of `a`. Exposing the layer's output instead
    (`"link": "output"`) gives the gradient at its output.

    The gradient is the total derivative with respect to the tensor `a`, along
    every path; dnnbrain's backward hook returned only the part flowing
    through the module, which differs where `a` also feeds a skip connection.
    The channels are averaged to keep the method contract; for the raw
    per-channel gradient differentiate the exposed model directly:
    `with tf.GradientTape() as tape: s, a = exposed(x); s = s[:, c]` then
    `tape.gradient(s, a)`. dnnbrain numbers channels from 1; keras_interp
    from 0. To explain a channel of an intermediate layer (dnnbrain's
    `from_layer`, `from_chn`), expose it as the scores:
    `outputs=Target(from_layer, reduce="mean")`.

    Args:
        model: an exposed model returning `[scores (B, K), a (B, H', W', C')]`.
        inputs: float images `(B, H, W, C)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        guided: use guided backpropagation (dnnbrain's `GuidedSaliencyImage`)
            through the ReLUs between `a` and the scores.
        gradient_filter: applied before averaging the channels. Defaults to
            `None` (the signed gradient, as dnnbrain, which applies no abs).
        spatial_axis: the height and width axes of `a` (rank 4), `(-3, -2)`
            for channels-last activations.

    Returns:
        `(logits, maps)` of shapes `(B, L)` and `(B, H', W', L)`.

    Raises:
        ValueError: the model does not return exactly `[scores, a]`, `a` has
            no spatial axes, or `guided=True` on a model without layer graph.
        TypeError: `gradient_filter` is not callable.

    Example:
        >>> model = keras_interp.testing.models.gap_dense()
        >>> exposed = expose(model, arguments={"name": "gap", "link": "input"})
        >>> logits, maps = layer_gradients(exposed, tf.ones((1, 8, 8, 3)), [[0]])
        >>> maps.shape
        TensorShape([1, 8, 8, 1])

    References:
        Chen et al., DNNBrain: A Unifying Toolbox for Mapping Deep Neural
        Networks and Brains, Frontiers in Computational Neuroscience 14, 2020.
        doi:10.3389/fncom.2020.580632. Simonyan et al. 2014, arXiv:1312.6034;
        Springenberg et al. 2015, arXiv:1412.6806.
    """
    gradient_filter = check_filter(gradient_filter)
    if guided:
        _check_guidable(model, "layer_gradients(guided=True)")
    inputs = float_inputs(inputs)
    name = received("model", getattr(model, "name", model))

    def run(x):
        if guided:
            outputs = run_overridden(model, x, guided_override)
        else:
            outputs = forward(model, x)
        if len(outputs) != 2:
            raise ValueError(
                "`model` must return [scores, activations], e.g. expose(model, "
                "arguments={'name': layer, 'link': 'input'}); it returned "
                f"{len(outputs)} output(s). {name}"
            )
        activations = tf.convert_to_tensor(outputs[1])
        if activations.shape.rank != 4:
            raise ValueError(
                "The exposed layer tensor must be a spatial map (B, H', W', C); "
                f"it has shape {tuple(activations.shape)}. {name}"
            )
        channels_last(activations, spatial_axis, "activations")
        return select(outputs[0], indices), [activations]

    logits, (grads,) = differentiate(run, inputs)
    grads = channels_last_grads(grads, spatial_axis)
    return logits, channel_maps(gradient_filter(grads))


# ------------------------------------------------------------ the guided walk
def guided_override(layer: Any, args: tuple, kwargs: dict) -> Any:
    """`run_graph` override: a guided computation for ReLU-family layers,
    `NotImplemented` (call the layer as usual) for the others."""
    kind = type(layer).__name__
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    if kind == "ReLU":
        max_value = getattr(layer, "max_value", None)
        params = (
            float(getattr(layer, "threshold", 0.0) or 0.0),
            None if max_value is None else float(max_value),
            float(getattr(layer, "negative_slope", 0.0) or 0.0),
        )
        return _guided(lambda x: layer(x, **kwargs), args[0], params)
    if name not in RELU_ACTIVATIONS:
        return NotImplemented
    if kind == "Activation":
        return _guided(layer.activation, args[0], RELU_ACTIVATIONS[name])
    pre_activation = call_pre_activation(layer, *args, **kwargs)
    return _guided(layer.activation, pre_activation, RELU_ACTIVATIONS[name])


def _guided(fn: Callable, x: tf.Tensor, params: tuple) -> tf.Tensor:
    """`fn(x)` whose gradient is `relu(g_out) * fn'(x)` for a ReLU-family `fn`
    with `(threshold, max_value, negative_slope)`."""
    threshold, max_value, negative_slope = params

    @tf.custom_gradient
    def guided_relu(x):
        def grad(upstream):
            passing = x > threshold
            if max_value is not None:
                passing = tf.logical_and(passing, x < max_value)
            local = tf.cast(passing, x.dtype)
            if negative_slope:
                local += negative_slope * tf.cast(x <= threshold, x.dtype)
            return tf.nn.relu(upstream) * local

        return fn(x), grad

    return guided_relu(x)


def _check_guidable(model: Any, method: str) -> None:
    source = getattr(model, "source_model", model)
    graph = has_graph(source)
    layers = iter_layers(source) if graph else ()
    nested = [p for p, lay in layers if hasattr(lay, "layers") and not has_graph(lay)]
    if not graph or nested:
        where = f" (nested model {nested[0]!r})" if nested else ""
        raise ValueError(
            f"{method} needs a functional or Sequential model, whose ReLUs can be "
            f"replaced while the model runs layer by layer; this model has no "
            f"layer graph{where}, as a subclassed model. Use `gradients` instead, "
            "or rebuild the model functionally. "
            + received("model", getattr(source, "name", type(source).__name__))
        )
