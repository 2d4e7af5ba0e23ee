"""Seeded image transforms that make feature visualisations robust.

A transform is a function `t(images, seed) -> images` on float `(B, H, W, C)`
tensors. `seed` is a pair of int32 (a `(2,)` tensor, or an int); every random
draw is an integer hash of the seed and the element's index, so a transform
draws the same numbers eagerly, under `tf.function` and under XLA (results
agree to float rounding, ~1e-6, and repeat bit for bit within one mode), and
`render` makes each step's seed from `(seed, step)`. Transforms never mutate
anything; `compose` chains them, giving each its own derived seed.

Padding and fill modes use numpy's names: `"constant"`, `"reflect"`,
`"symmetric"` and `"edge"` (see `geometry`, which does the resampling).

Geometric transforms (`random_scale`, `random_rotate`, `random_affine`) keep
the image size: they resample about the centre with bilinear interpolation
(`geometry.warp`), so every optimisation step has the same shapes (one
compiled step, XLA). lucid's `random_scale` resized the image instead; for
models with global pooling the two agree up to the border.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_non_negative_float,
    check_one_of,
    check_positive_int,
    received,
)
from keras_interp.methods._base import _mix
from keras_interp.synthesis.geometry import (
    MODES,
    affine_inverse,
    pad_axis,
    warp,
)

Transform = Callable[[tf.Tensor, Any], tf.Tensor]


# -- seeds and random numbers -------------------------------------------------
def as_seed(seed: Any) -> tf.Tensor:
    """`seed` (an int, a pair, or a `(2,)` tensor) as an int32 `(2,)` tensor."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return tf.cast(seed, tf.int32)


def _base(seed: Any) -> tf.Tensor:
    bits = tf.bitcast(as_seed(seed), tf.uint32)
    return _mix(tf.bitwise.bitwise_xor(_mix(bits[0]), _mix(bits[1] + 0x9E3779B9)))


def fold_seed(seed: Any, key: int | tf.Tensor) -> tf.Tensor:
    """A new seed, a pure function of `(seed, key)` (e.g. key = step)."""
    base = _base(seed)
    key = tf.bitcast(tf.cast(key, tf.int32), tf.uint32)
    first = _mix(tf.bitwise.bitwise_xor(base, _mix(key)))
    second = _mix(first + 0x85EBCA6B)
    return tf.bitcast(tf.stack([first, second]), tf.int32)


def uniform(seed: Any, shape: Sequence[Any]) -> tf.Tensor:
    """Uniform float32 numbers in [0, 1), a pure function of `(seed, index)`."""
    size = tf.reduce_prod(tf.cast(shape, tf.int32))
    index = tf.cast(tf.range(size), tf.uint32)
    bits = _mix(tf.bitwise.bitwise_xor(_mix(index), _base(seed)))
    values = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * 2.0**-24
    return tf.reshape(values, shape)


def _choice(seed: Any, values: Sequence[float], batch: Any) -> tf.Tensor:
    """One of `values` per image, uniformly, float32 `(B,)`."""
    table = tf.constant(np.asarray(values, np.float32))
    index = tf.cast(uniform(seed, [batch]) * len(values), tf.int32)
    return tf.gather(table, tf.minimum(index, len(values) - 1))


# -- transforms ------------------------------------------------------------------
def compose(*transforms: Any) -> Transform:
    """Chain transforms left to right; transform i gets `fold_seed(seed, i)`.

    Args:
        *transforms: transforms, (nested) lists of transforms, or None (skipped).

    Returns:
        A transform. `compose()` is the identity.
    """
    flat: list[Transform] = []

    def add(item: Any) -> None:
        if item is None:
            return
        if isinstance(item, (list, tuple)):
            for sub in item:
                add(sub)
        elif callable(item):
            flat.append(item)
        else:
            raise TypeError(
                "compose() takes transforms `t(images, seed)`. "
                f"{received('transform', item)}"
            )

    add(list(transforms))
    chain = tuple(flat)

    def composed(images: tf.Tensor, seed: Any) -> tf.Tensor:
        for i, transform in enumerate(chain):
            images = transform(images, fold_seed(seed, i))
        return images

    composed.transforms = chain
    return composed


def pad(width: int, mode: str = "constant", value: float = 0.5) -> Transform:
    """Pad every side by `width` pixels (lucid: `pad(12, constant 0.5)`).

    Args:
        width: pixels added on each side.
        mode: `"constant"` (with `value`), `"reflect"`, `"symmetric"`, `"edge"`.
        value: the fill value of `"constant"`.

    Returns:
        A transform `(B, H, W, C) -> (B, H + 2 width, W + 2 width, C)`.
    """
    width = check_positive_int(width, "width", allow_zero=True)
    check_one_of(mode, MODES, "mode")
    value = float(value)

    def padded(images: tf.Tensor, seed: Any = None) -> tf.Tensor:
        images = pad_axis(images, 1, width, width, mode, value)
        return pad_axis(images, 2, width, width, mode, value)

    return padded


def jitter(d: int) -> Transform:
    """Crop a random `(H - d, W - d)` window, a different one per image.

    Args:
        d: the largest shift in pixels; offsets are uniform in `0..d`.

    Returns:
        A transform `(B, H, W, C) -> (B, H - d, W - d, C)`.
    """
    d = check_positive_int(d, "d", allow_zero=True)

    def jittered(images: tf.Tensor, seed: Any) -> tf.Tensor:
        shape = tf.shape(images)
        offsets = tf.cast(uniform(seed, [shape[0], 2]) * (d + 1), tf.int32)
        offsets = tf.minimum(offsets, d)
        rows = offsets[:, :1] + tf.range(shape[1] - d)[None]
        cols = offsets[:, 1:] + tf.range(shape[2] - d)[None]
        images = tf.gather(images, rows, axis=1, batch_dims=1)
        return tf.gather(images, cols, axis=2, batch_dims=1)

    return jittered


def _no_shift(images: tf.Tensor) -> tf.Tensor:
    return tf.zeros([tf.shape(images)[0], 2])


def random_scale(scales: Sequence[float], *, mode: str = "reflect") -> Transform:
    """Zoom each image about its centre by a factor drawn from `scales`.

    Args:
        scales: the factors to choose from uniformly (lucid: `1 + (i - 5) / 50`
            for i in 0..10); > 1 zooms in. The size is kept (see module doc).
        mode: how the border is filled when zooming out.

    Returns:
        A transform keeping the shape.
    """
    scales = _check_values(scales, "scales", positive=True)
    check_one_of(mode, MODES, "mode")

    def scaled(images: tf.Tensor, seed: Any) -> tf.Tensor:
        scale = _choice(seed, scales, tf.shape(images)[0])
        inverse = affine_inverse(tf.zeros_like(scale), scale, _no_shift(images))
        return warp(images, inverse, mode=mode)

    return scaled


def random_rotate(
    angles_degrees: Sequence[float], *, mode: str = "reflect"
) -> Transform:
    """Rotate each image about its centre by an angle drawn from a list.

    Args:
        angles_degrees: angles to choose from uniformly, in degrees,
            counter-clockwise (lucid: `range(-10, 11)` plus five zeros).
        mode: how the corners are filled.

    Returns:
        A transform keeping the shape.
    """
    angles = _check_values(angles_degrees, "angles_degrees")
    check_one_of(mode, MODES, "mode")

    def rotated(images: tf.Tensor, seed: Any) -> tf.Tensor:
        angle = _choice(seed, angles, tf.shape(images)[0]) * (math.pi / 180)
        inverse = affine_inverse(angle, tf.ones_like(angle), _no_shift(images))
        return warp(images, inverse, mode=mode)

    return rotated


def random_affine(
    rotate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    translate: float = 0.0,
    *,
    mode: str = "reflect",
) -> Transform:
    """A random rotation, zoom and shift per image, in one resampling.

    Args:
        rotate: the angle is uniform in `[-rotate, rotate]` degrees.
        scale: the zoom is uniform in `[low, high]`.
        translate: the shift is uniform in `[-translate, translate]` times the
            height (rows) and width (columns).
        mode: how the border is filled.

    Returns:
        A transform keeping the shape.
    """
    rotate = check_non_negative_float(rotate, "rotate")
    low, high = _check_values(scale, "scale", positive=True)
    translate = check_non_negative_float(translate, "translate")
    check_one_of(mode, MODES, "mode")

    def transformed(images: tf.Tensor, seed: Any) -> tf.Tensor:
        shape = tf.shape(images)
        u = uniform(seed, [shape[0], 4])
        angle = (2 * u[:, 0] - 1) * (rotate * math.pi / 180)
        zoom = low + (high - low) * u[:, 1]
        size = tf.cast(tf.stack([shape[1], shape[2]]), tf.float32)
        shift = (2 * u[:, 2:] - 1) * translate * size
        return warp(images, affine_inverse(angle, zoom, shift), mode=mode)

    return transformed


def gaussian_kernel(sigma: Any, radius: int) -> tf.Tensor:
    """The normalised 1-D Gaussian `(2 radius + 1,)`; sigma 0 gives a delta."""
    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    sigma = tf.maximum(tf.cast(sigma, tf.float32), 1e-6)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    return kernel / tf.reduce_sum(kernel)


def gaussian_blur(
    images: tf.Tensor, sigma: Any, *, radius: int, mode: str = "reflect"
) -> tf.Tensor:
    """Blur each channel separately with a separable Gaussian.

    Args:
        images: float `(B, H, W, C)`.
        sigma: the standard deviation in pixels (a number or a tensor, e.g. a
            `tf.Variable` changed between steps).
        radius: kernel half-width in pixels (static).
        mode: boundary mode (`"edge"` is scipy/skimage's `"nearest"`).

    Returns:
        float `(B, H, W, C)`.
    """
    if radius == 0:
        return images
    kernel = gaussian_kernel(sigma, radius)
    shape = tf.shape(images)
    x = tf.transpose(images, [0, 3, 1, 2])
    x = tf.reshape(x, [-1, shape[1], shape[2], 1])
    x = pad_axis(x, 1, radius, radius, mode, 0.0)
    x = pad_axis(x, 2, radius, radius, mode, 0.0)
    x = tf.nn.conv2d(x, tf.reshape(kernel, [-1, 1, 1, 1]), 1, "VALID")
    x = tf.nn.conv2d(x, tf.reshape(kernel, [1, -1, 1, 1]), 1, "VALID")
    x = tf.reshape(x, [shape[0], shape[3], shape[1], shape[2]])
    return tf.transpose(x, [0, 2, 3, 1])


def blur(
    sigma: Any, *, truncate: float = 4.0, radius: int | None = None, mode="reflect"
) -> Transform:
    """Gaussian blur of each channel (a separable convolution).

    Args:
        sigma: standard deviation in pixels; a number, or a `tf.Variable` read
            at every step (a blur schedule: assign it between steps).
        truncate: the kernel radius is `int(truncate * sigma + 0.5)` (scipy's
            rule), computed from sigma's value when the transform is made.
        radius: an explicit kernel radius (e.g. for a schedule whose sigma
            will grow).
        mode (str): boundary mode.

    Returns:
        A transform keeping the shape.
    """
    start = float(np.asarray(sigma))
    check_non_negative_float(start, "sigma")
    check_one_of(mode, MODES, "mode")
    if radius is None:
        radius = int(check_non_negative_float(truncate, "truncate") * start + 0.5)
    radius = check_positive_int(radius, "radius", allow_zero=True)

    def blurred(images: tf.Tensor, seed: Any = None) -> tf.Tensor:
        return gaussian_blur(images, sigma, radius=radius, mode=mode)

    return blurred


def _check_values(values: Any, arg: str, positive: bool = False) -> tuple:
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{arg}` must be a sequence of numbers. {received(arg, values)}"
        ) from None
    valid = all(math.isfinite(v) and (v > 0 or not positive) for v in values)
    if not values or not valid:
        kind = "positive " if positive else ""
        raise ValueError(
            f"`{arg}` must be a non-empty sequence of finite {kind}numbers. "
            f"{received(arg, values)}"
        )
    return values


#: lucid's `transform.standard_transforms`: pad(12, constant 0.5), jitter(8),
#: random_scale(0.9 ... 1.1), random_rotate(-10 ... 10 degrees), jitter(4).
standard_transforms = compose(
    pad(12, mode="constant", value=0.5),
    jitter(8),
    random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
    random_rotate(list(range(-10, 11)) + 5 * [0]),
    jitter(4),
)

#: Leap's transform strengths, our choice (leap-ie is closed source): random
#: affine maps of growing rotation (degrees), zoom range and shift (fraction
#: of the size), each image drawing its own.
PRESETS = {
    "s": {"rotate": 5.0, "scale": (0.95, 1.05), "translate": 0.02},
    "m": {"rotate": 10.0, "scale": (0.9, 1.1), "translate": 0.05},
    "l": {"rotate": 20.0, "scale": (0.8, 1.2), "translate": 0.1},
    "xl": {"rotate": 30.0, "scale": (0.7, 1.3), "translate": 0.15},
}


def preset(name: str | None) -> Transform:
    """Leap's `transform` presets: `'s'` (weakest) to `'xl'` (strongest).

    | preset | rotation | zoom | shift |
    |---|---|---|---|
    | s | ±5° | 0.95–1.05 | ±2 % |
    | m | ±10° | 0.9–1.1 | ±5 % |
    | l | ±20° | 0.8–1.2 | ±10 % |
    | xl | ±30° | 0.7–1.3 | ±15 % |

    Each is one `random_affine` (reflected border); `None` is the identity.

    Args:
        name: `"s"`, `"m"`, `"l"`, `"xl"` or None.

    Returns:
        A transform keeping the shape.
    """
    if name is None:
        return compose()
    check_one_of(name, tuple(PRESETS), "transform")
    return random_affine(**PRESETS[name])
