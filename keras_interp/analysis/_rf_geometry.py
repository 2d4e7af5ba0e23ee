"""Per-layer rules of the theoretical receptive field computation.

Each spatial axis of a layer's output is an `Axis`: `n` units, unit `u`
seeing the input interval `[low + u jump, high + u jump)` (pixel `i` spanning
`[i, i + 1)`). `apply_layer` maps the axes of a layer's inputs to its output's.
See `receptive_field.py` for the formulas and conventions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_interp._validation import received
from keras_interp.inspection.graph import is_container

CONVOLUTIONS = frozenset(
    "Conv1D Conv2D Conv3D DepthwiseConv1D DepthwiseConv2D SeparableConv1D "
    "SeparableConv2D LocallyConnected1D LocallyConnected2D".split()
)
POOLINGS = frozenset(
    "MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D "
    "AveragePooling3D".split()
)
#: Layers whose output has no spatial axes left: their field is the whole span.
GLOBALS = frozenset(
    "Flatten Reshape Permute GlobalAveragePooling1D GlobalAveragePooling2D "
    "GlobalAveragePooling3D GlobalMaxPooling1D GlobalMaxPooling2D "
    "GlobalMaxPooling3D".split()
)
UPSAMPLING = frozenset(
    "Conv1DTranspose Conv2DTranspose Conv3DTranspose UpSampling1D UpSampling2D "
    "UpSampling3D Resizing CenterCrop RandomCrop".split()
)
PADDINGS = frozenset("ZeroPadding1D ZeroPadding2D ZeroPadding3D".split())
CROPPINGS = frozenset("Cropping1D Cropping2D Cropping3D".split())
#: Position-wise layers (each output unit sees its own input unit), merges, and
#: augmentation layers that are the identity at inference.
POSITION_WISE = frozenset(
    "InputLayer Activation ReLU LeakyReLU PReLU ELU ThresholdedReLU Softmax "
    "BatchNormalization LayerNormalization UnitNormalization Dropout "
    "SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise "
    "GaussianDropout AlphaDropout ActivityRegularization Rescaling Normalization "
    "Identity Masking Dense Add Subtract Multiply Average Maximum Minimum "
    "Concatenate RandomFlip RandomRotation RandomTranslation RandomZoom "
    "RandomContrast RandomBrightness".split()
)


@dataclasses.dataclass(frozen=True)
class Axis:
    """One spatial axis: `n` units, unit `u` seeing `[low + u jump, high + u jump)`."""

    n: int
    jump: int
    low: int
    high: int


@dataclasses.dataclass(frozen=True)
class State:
    axes: tuple[Axis, ...]
    origin: str
    whole: bool = False  # no spatial axes left: one unit seeing everything


def _kinds(layer: Any) -> set[str]:
    return {cls.__name__ for cls in type(layer).__mro__}


def apply_layer(layer: Any, path: str, inputs: list[State], extra: set[str]) -> State:
    """The state after `layer` (None for a nested model's input layer)."""
    state = _merge(inputs, path) if len(inputs) > 1 else inputs[0]
    if layer is None or is_container(layer) or state.whole:
        return state
    kinds = _kinds(layer)
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        raise ValueError(
            f"Layer {path!r} uses data_format='channels_first'; receptive fields "
            f"need channels_last layers. {received('layer', path)}"
        )
    if kinds & UPSAMPLING:
        raise ValueError(
            f"Layer {path!r} ({type(layer).__name__}) upsamples: its units' "
            "fields are not an affine function of their index, so transposed "
            "convolutions, UpSampling and Resizing are not supported. "
            f"{received('layer', path)}"
        )
    if kinds & CONVOLUTIONS or kinds & POOLINGS:
        return _window(layer, path, state, kinds & POOLINGS)
    if kinds & PADDINGS or kinds & CROPPINGS:
        return _pad(layer, state, sign=1 if kinds & PADDINGS else -1)
    if kinds & GLOBALS:
        axes = tuple(
            Axis(1, a.jump * a.n, a.low, a.high + (a.n - 1) * a.jump)
            for a in state.axes
        )
        return State(axes, state.origin, whole=True)
    if _across_positions(layer, path, kinds, len(state.axes)):
        axes = tuple(
            Axis(a.n, a.jump, a.low - (a.n - 1) * a.jump, a.high + (a.n - 1) * a.jump)
            for a in state.axes
        )
        return State(axes, state.origin)
    if kinds & POSITION_WISE or {path, layer.name} & extra or kinds & extra:
        return state
    raise ValueError(
        f"Layer {path!r} of type {type(layer).__name__} is not known to keras_interp"
        "'s receptive field computation. If it acts on each position separately, "
        f"pass pass_through=[{path!r}]. {received('layer', path)}"
    )


def _across_positions(layer: Any, path: str, kinds: set[str], ndim: int) -> bool:
    """Whether a normalisation or softmax mixes every position of the map (each
    unit then sees all units' fields); a spatial Concatenate raises."""
    if "GroupNormalization" in kinds:
        return True
    if not kinds & {"LayerNormalization", "UnitNormalization", "Softmax"} | {
        "Concatenate"
    }:
        return False
    axis = getattr(layer, "axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    spatial = any(1 <= int(a) % (ndim + 2) <= ndim for a in axes)
    if spatial and "Concatenate" in kinds:
        raise ValueError(
            f"Layer {path!r} concatenates along a spatial axis (axis={axis}); only "
            f"channel concatenation is supported. {received('layer', path)}"
        )
    return spatial


def _tuple(value: Any, ndim: int) -> tuple[int, ...]:
    value = tuple(value) if isinstance(value, (list, tuple)) else (value,) * ndim
    return value if len(value) == ndim else value * ndim


def _window(layer: Any, path: str, state: State, pooling: set) -> State:
    """A sliding window: convolution or pooling."""
    ndim = len(state.axes)
    kernel = _tuple(layer.pool_size if pooling else layer.kernel_size, ndim)
    strides = _tuple(layer.strides or kernel, ndim)
    dilation = _tuple(1 if pooling else getattr(layer, "dilation_rate", 1), ndim)
    padding = str(layer.padding).lower()
    axes = []
    for a, k, s, d in zip(state.axes, kernel, strides, dilation):
        k_eff = d * (k - 1) + 1
        if padding == "valid":
            n_out, p_left = (a.n - k_eff) // s + 1, 0
        elif padding in ("same", "causal"):
            n_out = -(-a.n // s)
            p_total = max((n_out - 1) * s + k_eff - a.n, 0)
            p_left = k_eff - 1 if padding == "causal" else p_total // 2
        else:
            raise ValueError(
                f"Layer {path!r} has an unknown padding {padding!r}. "
                f"{received('layer', path)}"
            )
        if n_out < 1:
            raise ValueError(
                f"Layer {path!r} gets a map of size {a.n}, smaller than its "
                f"effective kernel {k_eff}: the input is too small. "
                f"{received('layer', path)}"
            )
        low = a.low - p_left * a.jump
        high = low + (a.high - a.low) + (k_eff - 1) * a.jump
        axes.append(Axis(n_out, a.jump * s, low, high))
    return State(tuple(axes), state.origin)


def _pad(layer: Any, state: State, sign: int) -> State:
    """ZeroPadding (`sign=1`) or Cropping (`sign=-1`): shift the first unit."""
    ndim = len(state.axes)
    amounts = layer.padding if sign > 0 else layer.cropping
    if ndim == 1 and not isinstance(amounts, int):
        amounts = (tuple(amounts),)  # 1-D layers hold one (before, after) pair
    amounts = _tuple(amounts, ndim)
    axes = []
    for a, amount in zip(state.axes, amounts):
        before, after = _tuple(amount, 2)
        shift = -sign * before * a.jump
        n = a.n + sign * (before + after)
        axes.append(Axis(n, a.jump, a.low + shift, a.high + shift))
    return State(tuple(axes), state.origin)


def _merge(inputs: list[State], path: str) -> State:
    """The union of the fields of merged branches."""
    origins = {s.origin for s in inputs}
    if len(origins) > 1:
        raise ValueError(
            f"Layer {path!r} merges branches from different model inputs "
            f"{sorted(origins)}: their receptive fields cannot be combined. "
            f"{received('layer', path)}"
        )
    if all(s.whole for s in inputs):
        return State(_union([s.axes for s in inputs], []), inputs[0].origin, True)
    maps = [s.axes for s in inputs if not s.whole]
    n = [max(a.n for a in axes) for axes in zip(*maps)]
    sliding, spread = [], []
    for s in inputs:
        one = all(a.n == 1 for a, m in zip(s.axes, n) if m > 1) and max(n) > 1
        (spread if s.whole or one else sliding).append(s.axes)
    for axes in zip(*sliding):
        if len({a.jump for a in axes}) > 1:
            raise ValueError(
                f"Layer {path!r} merges branches with different strides "
                f"{sorted({a.jump for a in axes})}. {received('layer', path)}"
            )
    return State(_union(sliding, spread), inputs[0].origin)


def _union(sliding: list[tuple], spread: list[tuple]) -> tuple[Axis, ...]:
    """Smallest fields containing each sliding branch's, and for every unit the
    fixed interval of each broadcast (one-position) branch."""
    axes = []
    for i, group in enumerate(zip(*sliding)):
        n = max(a.n for a in group)
        jump = max(a.jump for a in group)
        low = min(a.low for a in group)
        high = max(a.high for a in group)
        for other in spread:
            low = min(low, other[i].low - (n - 1) * jump)
            high = max(high, other[i].high)
        axes.append(Axis(n, jump, low, high))
    return tuple(axes)
