"""Incremental occlusion's per-layer rules: which layers can recompute a patch,
their sliding-window geometry, the layer as a VALID op on a crop of its padded
input, and the multiply-adds a layer costs.

Rules (`_rule`): "elementwise" (activations, inference-mode batch
normalisation, dropout... over the channel axis), "merge" (Add, Concatenate and
the other merges over channels), "window" (Conv2D, DepthwiseConv2D,
SeparableConv2D with groups 1, max and average pooling, ZeroPadding2D); any
other layer, and channels-first layers, have none and run in full.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

ELEMENTWISE = frozenset(
    "Activation ReLU LeakyReLU ELU ThresholdedReLU BatchNormalization Dropout "
    "SpatialDropout2D GaussianNoise GaussianDropout AlphaDropout "
    "ActivityRegularization Identity".split()
)
MERGES = frozenset("Add Subtract Multiply Average Maximum Minimum Concatenate".split())
CONVS = frozenset(("Conv2D", "DepthwiseConv2D", "SeparableConv2D"))
POOLS = frozenset(("MaxPooling2D", "AveragePooling2D"))


def pair(value: Any) -> tuple[int, int]:
    """`(a, b)` from an int or a pair."""
    return (value, value) if isinstance(value, int) else tuple(int(v) for v in value)


def rule(layer: Any) -> str | None:
    """How a layer's patch is computed: "elementwise", "merge", "window", or
    None (unsupported: run it in full)."""
    name = type(layer).__name__
    keras_layer = "layers" in type(layer).__module__
    if not keras_layer or getattr(layer, "data_format", None) == "channels_first":
        return None
    if name in ELEMENTWISE:
        return (
            "elementwise" if getattr(layer, "axis", -1) in (-1, 3, [-1], [3]) else None
        )
    if name in MERGES:
        return "merge" if getattr(layer, "axis", -1) in (-1, 3) else None
    if name in CONVS:
        return "window" if getattr(layer, "groups", 1) == 1 else None
    return "window" if name in POOLS or name == "ZeroPadding2D" else None


def windowing(layer: Any, in_hw: tuple, out_hw: tuple) -> list[tuple[int, ...]]:
    """Per axis `(kernel, stride, pad_before, pad_after)` of a window layer
    mapping a map of size `in_hw` to one of size `out_hw` (the kernel dilated)."""
    name = type(layer).__name__
    if name == "ZeroPadding2D":
        return [(1, 1, *pair(p)) for p in layer.padding]
    if name in POOLS:
        kernel, strides, dilation = layer.pool_size, layer.strides, (1, 1)
    else:
        kernel, strides, dilation = (
            layer.kernel_size,
            layer.strides,
            layer.dilation_rate,
        )
    axes = []
    for k, s, d, n, out in zip(
        pair(kernel), pair(strides), pair(dilation), in_hw, out_hw
    ):
        k = (k - 1) * d + 1
        total = max((out - 1) * s + k - n, 0) if layer.padding == "same" else 0
        axes.append((k, s, total // 2, total - total // 2))
    return axes


def pool_counts(geometry: list, in_hw: tuple, out_hw: tuple) -> tuple[tf.Tensor, ...]:
    """Per axis, int `(out,)`: how many unpadded inputs each output's window
    covers (average pooling with padding "same" divides by their product)."""
    return tuple(
        tf.constant(
            np.minimum(np.arange(o) * st - pb + k, n)
            - np.maximum(np.arange(o) * st - pb, 0),
            tf.int32,
        )
        for (k, st, pb, _), n, o in zip(geometry, in_hw, out_hw)
    )


def window_op(layer: Any, geometry: list, counts: tuple | None) -> Any:
    """`op(crop, rows, cols) -> patch`: the layer as a VALID op on a crop
    `(k, m_r, m_c, C)` of its padded input; `rows`/`cols` `(k, n)` are output
    indices (used by average pooling with padding "same", `counts` from
    `pool_counts`, which divides by the unpadded count)."""
    name = type(layer).__name__
    strides = [1, geometry[0][1], geometry[1][1], 1]
    if name == "ZeroPadding2D":
        return lambda crop, rows, cols: crop
    if name in POOLS:
        ksize = [1, geometry[0][0], geometry[1][0], 1]
        if name == "MaxPooling2D":
            return lambda crop, rows, cols: tf.nn.max_pool2d(
                crop, ksize, strides, "VALID"
            )

        def average(crop, rows, cols):
            out = tf.nn.avg_pool2d(crop, ksize, strides, "VALID")
            if counts is None:
                return out
            area = tf.cast(ksize[1] * ksize[2], out.dtype)
            count = (
                tf.gather(counts[0], rows)[:, :, None]
                * tf.gather(counts[1], cols)[:, None, :]
            )
            return out * area / tf.cast(count, out.dtype)[..., None]

        return average
    dilations = list(pair(layer.dilation_rate))

    def conv(crop, rows, cols):
        cast = lambda w: tf.cast(w, crop.dtype)  # noqa: E731
        if name == "Conv2D":
            out = tf.nn.convolution(
                crop, cast(layer.kernel), strides[1:3], "VALID", dilations=dilations
            )
        elif name == "DepthwiseConv2D":
            kernel = getattr(layer, "depthwise_kernel", None) or layer.kernel
            out = tf.nn.depthwise_conv2d(
                crop, cast(kernel), strides, "VALID", dilations=dilations
            )
        else:
            out = tf.nn.separable_conv2d(
                crop,
                cast(layer.depthwise_kernel),
                cast(layer.pointwise_kernel),
                strides,
                "VALID",
                dilations=dilations,
            )
        if layer.use_bias:
            out = out + cast(layer.bias)
        return layer.activation(out) if layer.activation is not None else out

    return conv


def macs(layer: Any, inputs: list, out: Any) -> dict:
    """Multiply-adds of a layer per image: `{"macs": total}` (convolutions and
    Dense by their kernels, pooling by its window, other layers one per
    output value)."""
    name = type(layer).__name__
    channels = int(out.shape[-1])
    positions = int(np.prod(out.shape[1:-1])) if out.shape.rank > 2 else 1
    c_in = int(inputs[0].shape[-1]) if hasattr(inputs[0], "shape") else channels
    if name in CONVS:
        kernel = int(np.prod(pair(layer.kernel_size)))
        per = {
            "Conv2D": kernel * c_in * channels,
            "DepthwiseConv2D": kernel * channels,
        }.get(
            name,
            kernel * c_in * getattr(layer, "depth_multiplier", 1) + c_in * channels,
        )
    elif name in ("Dense",):
        per = c_in * channels
    elif name in POOLS:
        per = int(np.prod(pair(layer.pool_size))) * channels
    else:
        per = channels
    return {"macs": per * positions}
