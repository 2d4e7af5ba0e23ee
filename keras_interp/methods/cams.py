"""Class activation maps: CAM, Grad-CAM, Grad-CAM++ and LayerCAM.

Every method here explains an intermediate layer, so it takes an *exposed*
model whose call returns `[scores (B, K), activations (B, H', W', C)]`, as made
by `keras_interp.inspection.expose`. The maps are combinations of the
activation channels, `(B, H', W', L)`, unnormalised and not resized: the engine
resizes and post-processes them. `spatial_axis` names the inputs' height and
width axes; channels-first activations `(B, C, H', W')` (`spatial_axis=(-2,
-1)`) are moved channels last first (`_cam_activations.py`), so the maps are
`(B, H', W', L)` in both layouts. Score-CAM lives in `scorecam.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import received
from keras_interp.inspection.expose import select_output_layer
from keras_interp.inspection.graph import find_layer, output_layers
from keras_interp.inspection.heads import get_logits_layer
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import float_inputs
from keras_interp.methods._cam_activations import (
    SPATIAL_AXIS,
    cam_activations,
    exposed_outputs,
    jacobian,
)
from keras_interp.methods.record import OptionSpec, method_record


def _combine(activations: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """`maps[b, ..., l] = sum_c activations[b, ..., c] * weights[b, l, c]`."""
    return tf.einsum("b...c,blc->b...l", activations, weights)


def _gradients(model: Any, inputs: Any, indices: Any, spatial_axis: Any, name: str):
    """`(selected (B, L), activations, grads (B, L, ..., C), spatial axes)`,
    activations and gradients channels last."""
    inputs = float_inputs(inputs)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(inputs)
        full, raw = exposed_outputs(model, inputs, name)
        selected = gather_units(full, indices)
    activations, axes, move = cam_activations(raw, spatial_axis)
    grads = move(jacobian(tape, selected, raw))
    return tf.cast(selected, tf.float32), activations, grads, axes


def _first_output_layer(model: Any) -> Any:
    """The layer producing a plain model's first output (its logits layer if
    it has a single output), or None."""
    if not hasattr(model, "layers"):
        return None
    if len(output_layers(model)) > 1:
        return select_output_layer(model, 0)
    return get_logits_layer(model)


def _classifier_kernel(
    model: Any, logits_layer: Any, channels: Any, units: Any
) -> tf.Tensor:
    """The logits layer's kernel as a float32 `(C, K)` matrix."""
    layer = logits_layer
    if layer is None:
        layer = getattr(model, "logits_layer", None)
        if layer is None and not hasattr(model, "logits_layer"):
            # A hand-built [logits, activations] model, as in keras-explainable's
            # tests: the layer producing its first output.
            try:
                layer = _first_output_layer(model)
            except ValueError:
                layer = None
        if layer is None:
            raise ValueError(
                "`cam` weighs the activations by the kernel of the logits layer, "
                "but the exposed model has none: its first output is not the "
                "plain output of a Dense or 1x1 Conv layer (e.g. a reduced or "
                "squashed `Target`). Pass the classifier with `logits_layer=`, "
                "or use `gradcam`. "
                f"{received('model', getattr(model, 'name', model))}"
            )
    elif not hasattr(layer, "kernel"):
        layer = find_layer(getattr(model, "source_model", model), layer)
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        raise ValueError(
            "`logits_layer` must be a layer with a kernel (a Dense or 1x1 Conv "
            f"layer). {received('logits_layer', getattr(layer, 'name', layer))}"
        )
    kernel = tf.cast(tf.convert_to_tensor(kernel), tf.float32)
    shape = tuple(kernel.shape)
    if len(shape) < 2 or any(d != 1 for d in shape[:-2]):
        raise ValueError(
            "`logits_layer` must be a Dense layer or a 1x1 convolution; its "
            f"kernel has shape {shape}. "
            f"{received('logits_layer', getattr(layer, 'name', layer))}"
        )
    name = getattr(layer, "name", layer)
    if channels is not None and shape[-2] != channels:
        raise ValueError(
            f"The kernel of `logits_layer` takes {shape[-2]} inputs but the "
            f"activations have {channels} channels, so they do not feed this "
            "classifier: expose the layer whose globally pooled output enters "
            f"it. {received('logits_layer', name)}"
        )
    if units is not None and shape[-1] != units:
        raise ValueError(
            f"The kernel of `logits_layer` has {shape[-1]} units but the "
            f"explained scores have {units}: it is not the layer whose output "
            f"the model explains. {received('logits_layer', name)}"
        )
    return tf.reshape(kernel, shape[-2:])


@method_record(
    family="cam",
    exposed=True,
    postprocessing=filters.positive_normalize,
    signed=True,
    options={"logits_layer": OptionSpec(optional=True, doc="the classifier layer")},
)
def cam(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: int | Sequence[int] = SPATIAL_AXIS,
    logits_layer: Any = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Class activation maps: the activations weighted by the classifier kernel.

    `maps[b, h, w, l] = sum_c A[b, h, w, c] * W[c, indices[b, l]]`, with `W`
    the kernel of the logits layer. No bias and no ReLU (post-processing
    filters the maps). Exact for `GlobalAveragePooling -> Dense` heads, where
    `logits = mean_hw(maps) + bias`. No gradient is computed.

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`).
        inputs: float images `(B, H, W, C_in)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the inputs' height and width axes, `(-3, -2)` or
            `(-2, -1)` (channels first); the activations are read alike.
        logits_layer: the classifier whose kernel weighs the channels: a layer
            or a reference to a layer of `model.source_model` (see
            `find_layer`). Defaults to `model.logits_layer`. A 1x1 Conv kernel
            `(1, 1, C, K)` is squeezed to `(C, K)`.

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, H', W', L)`, unnormalised.

    Raises:
        ValueError: `model` is not exposed, it has no logits layer (its first
            output is a reduced `Target`) and none is given, the kernel is not
            Dense-like or its input size differs from the number of channels.

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense())
        >>> scores, maps = cam(model, tf.random.normal((2, 8, 8, 3)), [[0], [2]])
        >>> maps.shape
        TensorShape([2, 8, 8, 1])

    References:
        Zhou, Khosla, Lapedriza, Oliva and Torralba, Learning Deep Features for
        Discriminative Localization, CVPR 2016. arXiv:1512.04150.
    """
    inputs = float_inputs(inputs)
    full, activations = exposed_outputs(model, inputs, "cam")
    activations, _, _ = cam_activations(activations, spatial_axis)
    kernel = _classifier_kernel(
        model, logits_layer, activations.shape[-1], full.shape[-1]
    )
    selected = tf.cast(gather_units(full, indices), tf.float32)
    if indices is None:
        return selected, tf.einsum("b...c,ck->b...k", activations, kernel)
    weights = tf.gather(tf.transpose(kernel), tf.cast(indices, tf.int32))
    return selected, _combine(activations, weights)


@method_record(
    family="cam", exposed=True, postprocessing=filters.positive_normalize, signed=True
)
def gradcam(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: int | Sequence[int] = SPATIAL_AXIS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Gradient-weighted class activation maps.

    `w[b, l, c] = mean_hw dS[b, l] / dA[b, h, w, c]` and
    `maps[b, h, w, l] = sum_c A[b, h, w, c] * w[b, l, c]`, no ReLU (post-
    processing filters the maps). For a `GlobalAveragePooling -> Dense` head it
    equals `cam / (H' * W')`.

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`).
        inputs: float images `(B, H, W, C_in)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the inputs' height and width axes, `(-3, -2)` or
            `(-2, -1)` (channels first); the activations are averaged over
            them into channel weights.

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, H', W', L)`, unnormalised.

    Raises:
        ValueError: `model` is not exposed, or a bad `spatial_axis`.

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense())
        >>> scores, maps = gradcam(model, tf.random.normal((2, 8, 8, 3)))
        >>> maps.shape
        TensorShape([2, 8, 8, 3])

    References:
        Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra, Grad-CAM: Visual
        Explanations from Deep Networks via Gradient-based Localization, ICCV
        2017. arXiv:1610.02391.
    """
    selected, activations, grads, axes = _gradients(
        model, inputs, indices, spatial_axis, "gradcam"
    )
    return selected, _combine(activations, tf.reduce_mean(grads, axis=axes))


@method_record(
    family="cam", exposed=True, postprocessing=filters.positive_normalize, signed=True
)
def gradcampp(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: int | Sequence[int] = SPATIAL_AXIS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grad-CAM++: channel weights from pixel-wise weighted positive gradients.

    With `g = dS / dA` and the explained score passed through an exponential,
    `Y = exp(S)` (the paper's assumption, which makes the second and third
    derivatives of `Y` equal `exp(S) g^2` and `exp(S) g^3`, so only first
    derivatives are needed):

        alpha = g^2 / (2 g^2 + sum_hw(A) * g^3)     (0 where the denominator is)
        w[b, l, c] = sum_hw alpha * relu(exp(S) * g)
        maps = sum_c A_c * w_c

    as the official implementation and keras-explainable, with one
    difference: `relu(exp(S) g) = exp(S) relu(g)`, so `exp(S[b, l])` only
    scales each map by a positive constant, and it is left out (the maps here
    are the paper's divided by `exp(S)`). Normalised maps are unchanged, and
    they stay finite for any score (`exp(S)` overflows float32 above ~88.7 and
    made the paper's maps infinite or NaN). `alpha` is computed as
    `1 / (2 + sum_hw(A) g)` where `g != 0`, equal to the fraction above without
    its powers of `g`. No ReLU on the maps (post-processing filters them).

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`).
        inputs: float images `(B, H, W, C_in)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the inputs' height and width axes, `(-3, -2)` or
            `(-2, -1)` (channels first); the activations are summed over
            them into channel weights.

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, H', W', L)`, unnormalised.

    Raises:
        ValueError: `model` is not exposed, or a bad `spatial_axis`.

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense())
        >>> scores, maps = gradcampp(model, tf.random.normal((2, 8, 8, 3)), [[1], [1]])
        >>> maps.shape
        TensorShape([2, 8, 8, 1])

    References:
        Chattopadhay, Sarkar, Howlader and Balasubramanian, Grad-CAM++:
        Generalized Gradient-based Visual Explanations for Deep Convolutional
        Networks, WACV 2018. arXiv:1710.11063. Official code:
        github.com/adityac94/Grad_CAM_plus_plus.
    """
    selected, activations, grads, axes = _gradients(
        model, inputs, indices, spatial_axis, "gradcampp"
    )
    total = tf.reduce_sum(activations, axis=axes, keepdims=True)[:, None]
    # g^2 / (2 g^2 + sum(A) g^3) = 1 / (2 + sum(A) g) where g != 0: no powers
    # of g to overflow. exp(S) > 0 is left out of relu(exp(S) g) (see above).
    alpha = tf.where(grads != 0, tf.math.divide_no_nan(1.0, 2.0 + total * grads), 0.0)
    weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=axes)
    return selected, _combine(activations, weights)


@method_record(family="cam", exposed=True, postprocessing=filters.positive_normalize)
def layercam(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: int | Sequence[int] = SPATIAL_AXIS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """LayerCAM: activations weighted pixel-wise by their positive gradients.

    `maps[b, h, w, l] = sum_c relu(dS[b, l] / dA[b, h, w, c]) * A[b, h, w, c]`.
    Unlike Grad-CAM the weights are not pooled over space, so the maps stay
    reliable on shallow layers. The paper's final ReLU is left to
    post-processing, like the other CAMs.

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`).
        inputs: float images `(B, H, W, C_in)`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the inputs' height and width axes, `(-3, -2)` or
            `(-2, -1)` (channels first); the activations are read alike.

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, H', W', L)`, unnormalised.

    Raises:
        ValueError: `model` is not exposed, or a bad `spatial_axis`.

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense(), arguments="conv")
        >>> scores, maps = layercam(model, tf.random.normal((2, 8, 8, 3)), [[0], [1]])
        >>> maps.shape
        TensorShape([2, 8, 8, 1])

    References:
        Jiang, Zhang, Hou, Cheng and Wei, LayerCAM: Exploring Hierarchical
        Class Activation Maps for Localization, IEEE Transactions on Image
        Processing 30, 2021. doi:10.1109/TIP.2021.3089943.
    """
    selected, activations, grads, _ = _gradients(
        model, inputs, indices, spatial_axis, "layercam"
    )
    return selected, tf.einsum("bl...c,b...c->b...l", tf.nn.relu(grads), activations)


def __getattr__(name: str) -> Any:
    # keras-explainable's path `methods.cams.scorecam` (the function lives in
    # methods/scorecam.py, which imports this module).
    if name == "scorecam":
        from keras_interp.methods.scorecam import scorecam

        return scorecam
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
