"""Image parameterisations: how the optimised image is made from variables.

A `Param` owns `tf.Variable`s and maps them to a batch of images in [0, 1]:
`param() -> (B, H, W, C)` float32. `pixel_image` optimises one logit per pixel;
`fourier_image` optimises a scaled Fourier spectrum in a decorrelated colour
space, lucid's default, which makes gradient steps favour low frequencies and
natural colour statistics. Both can add an alpha channel (output
`(B, H, W, C + 1)`, colour first, alpha last) and start from an image or a
constant baseline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_non_negative_float,
    check_positive_int,
    received,
)
from keras_interp.images import load_image

#: lucid's square root of the ImageNet colour correlation matrix (its SVD
#: factor), `lucid.optvis.param.color`.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
_MAX_NORM = np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
#: The colour matrix applied to decorrelated colour vectors (rows are pixels).
COLOR_MATRIX = (COLOR_CORRELATION_SVD_SQRT / _MAX_NORM).T.astype(np.float32)

#: `init` is clipped to [INIT_EPS, 1 - INIT_EPS] before the inverse sigmoid, so
#: a black or white baseline does not start in the sigmoid's flat tails.
INIT_EPS = 0.01


class Param:
    """An image parameterisation: variables and the function making images.

    Any parameterisation can be written as a `Param`, e.g. a soft mask over a
    fixed image: `Param([mask], lambda: tf.concat([image, tf.sigmoid(mask)],
    -1))`.

    Args:
        variables: the `tf.Variable`s optimised.
        fn: a function of no arguments returning the images `(B, H, W, C)`,
            float32 in [0, 1], computed from `variables`.
        alpha: whether the last channel is an alpha (opacity) channel.
        name: a short description, for `repr`.

    Attributes:
        variables: tuple of the `tf.Variable`s.
        alpha: as given.
        shape: the static output shape `(B, H, W, C)`.
    """

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        fn: Callable[[], tf.Tensor],
        *,
        alpha: bool = False,
        name: str = "param",
    ) -> None:
        variables = tuple(variables)
        if not variables or not all(isinstance(v, tf.Variable) for v in variables):
            raise TypeError(
                "`variables` must be a non-empty sequence of tf.Variable. "
                f"{received('variables', variables)}"
            )
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. {received('fn', fn)}")
        self.variables = variables
        self.alpha = bool(alpha)
        self.name = name
        self._fn = fn
        self._initial = [tf.identity(v) for v in variables]
        self.shape = tuple(fn().shape)

    def __call__(self) -> tf.Tensor:
        """The images `(B, H, W, C)`, float32 in [0, 1]."""
        return self._fn()

    def numpy(self) -> np.ndarray:
        """The current images as a numpy array."""
        return np.asarray(self(), np.float32)

    def reset(self) -> None:
        """Give every variable back its initial value."""
        for variable, value in zip(self.variables, self._initial):
            variable.assign(value)

    def __repr__(self) -> str:
        return f"Param({self.name}, shape={self.shape}, alpha={self.alpha})"


def _check_shape(shape: Any) -> tuple[int, int, int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(
            "`shape` must be (batch, height, width, channels). "
            f"{received('shape', shape)}"
        )
    for size in shape:
        check_positive_int(size, "shape")
    return tuple(int(s) for s in shape)


def _init_array(init: Any, shape: tuple[int, ...], alpha: bool) -> np.ndarray:
    """`init` broadcast to `(B, H, W, C)` (or `C + 1` with alpha), clipped."""
    channels = shape[-1]
    full = tuple(shape[:3]) + (channels + int(alpha),)
    if isinstance(init, (str, os.PathLike)) or hasattr(init, "getpixel"):
        init = load_image(init, size=shape[1:3])  # a path or a PIL image
    array = np.asarray(init, np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(
            f"`init` must hold finite values in [0, 1]. {received('init', init)}"
        )
    with_alpha = alpha and array.ndim >= 1 and array.shape[-1] == channels + 1
    try:
        array = np.broadcast_to(array, full if with_alpha else shape)
    except ValueError:
        raise ValueError(
            f"`init` must broadcast to the image shape {shape} (a number, a "
            f"colour, an image (H, W, C) or a batch). {received('init', init)}"
        ) from None
    if alpha and not with_alpha:
        half = np.full(shape[:3] + (1,), 0.5, np.float32)
        array = np.concatenate([array, half], axis=-1)
    return np.clip(array, INIT_EPS, 1 - INIT_EPS).astype(np.float32)


def _logit(x: np.ndarray) -> np.ndarray:
    return np.log(x) - np.log1p(-x)


def pixel_image(
    shape: Sequence[int] = (1, 224, 224, 3),
    *,
    sd: float = 0.01,
    init: Any = None,
    alpha: bool = False,
    seed: int = 0,
) -> Param:
    """One variable per pixel and channel, squashed by a sigmoid.

    `image = sigmoid(v)` with `v ~ N(0, sd)` (grey 0.5 plus small noise), or
    `v = logit(init) + N(0, sd)` so the first image is `init`.

    Args:
        shape: `(B, H, W, C)`: a batch of B images with C colour channels.
        sd: standard deviation of the initial noise (in logit units).
        init: an image or baseline in [0, 1] broadcast to `(B, H, W, C)`: a
            number (grey level), a colour `(C,)`, an image `(H, W, C)` or a
            batch, or a path or PIL image (loaded and resized to `(H, W)`);
            with `alpha`, `C + 1` channels give the alpha too (else it starts
            at 0.5). Clipped to [0.01, 0.99] (see `INIT_EPS`).
        alpha: add an alpha channel: output `(B, H, W, C + 1)`.
        seed: seeds the initial noise (numpy, so runs are reproducible).

    Returns:
        A `Param` with one variable of shape `(B, H, W, C [+ 1])`.

    Raises:
        ValueError: bad `shape`, negative `sd`, `init` outside [0, 1] or of a
            shape that does not broadcast.

    Example:
        >>> param = pixel_image((2, 32, 32, 3), init=0.5)
        >>> param().shape
        TensorShape([2, 32, 32, 3])

    References:
        Olah, Mordvintsev, Schubert, Feature Visualization, Distill 2017.
    """
    shape = _check_shape(shape)
    sd = check_non_negative_float(sd, "sd")
    channels = shape[-1] + int(alpha)
    full = shape[:3] + (channels,)
    noise = np.random.default_rng(seed).normal(size=full).astype(np.float32) * sd
    start = 0.0 if init is None else _logit(_init_array(init, shape, alpha))
    variable = tf.Variable(start + noise, dtype=tf.float32, name="pixels")
    return Param(
        [variable], lambda: tf.sigmoid(variable), alpha=alpha, name="pixel_image"
    )


def _frequencies(height: int, width: int) -> np.ndarray:
    """Spatial frequency magnitudes of `rfft2d`'s output `(H, W // 2 + 1)`."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def fourier_image(
    shape: Sequence[int] = (1, 224, 224, 3),
    *,
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool = True,
    alpha: bool = False,
    init: Any = None,
    seed: int = 0,
) -> Param:
    """lucid's Fourier parameterisation with colour decorrelation.

    The variables are the real and imaginary parts of each channel's 2-D real
    FFT spectrum. The spectrum is scaled by `1 / max(f, 1 / max(H, W)) **
    decay_power` times `sqrt(H W)` (so steps are about as large as pixel
    steps), inverted (`irfft2d`), divided by 4, mapped from decorrelated to RGB
    colours by lucid's ImageNet colour correlation square root
    (`COLOR_CORRELATION_SVD_SQRT`, columns normalised) when `decorrelate`, and
    squashed by a sigmoid (lucid's `to_valid_rgb(..., sigmoid=True)`). An alpha
    channel has its own spectrum and a plain sigmoid. Images of odd width use
    `irfft2d(..., fft_length=[H, W])` (lucid cropped an extra column instead).

    `init` is matched exactly: the spectrum starts at the inverse of this map
    applied to `init` (inverse sigmoid, inverse colour matrix, times 4,
    `rfft2d`, divided by the scale), plus the `sd` noise.

    Args:
        shape: `(B, H, W, C)`; decorrelation needs C == 3.
        sd: standard deviation of the initial spectrum noise.
        decay_power: how fast the spectrum scale falls with frequency; 0 gives
            an unscaled (white) spectrum.
        decorrelate: apply the colour decorrelation (C == 3 only).
        alpha: add an alpha channel: output `(B, H, W, C + 1)`.
        init: an image or baseline in [0, 1], as for `pixel_image`.
        seed: seeds the initial noise.

    Returns:
        A `Param` with one variable `(2, B, C [+ 1], H, W // 2 + 1)`.

    Raises:
        ValueError: bad `shape`, `decorrelate` with C != 3, bad `init`.

    Example:
        >>> param = fourier_image((1, 64, 64, 3), alpha=True)
        >>> param().shape
        TensorShape([1, 64, 64, 4])

    References:
        Olah, Mordvintsev, Schubert, Feature Visualization, Distill 2017;
        lucid `optvis/param/spatial.py` (`fft_image`) and `color.py`.
    """
    shape = _check_shape(shape)
    sd = check_non_negative_float(sd, "sd")
    decay_power = check_non_negative_float(decay_power, "decay_power")
    batch, height, width, colours = shape
    if decorrelate and colours != 3:
        raise ValueError(
            "Colour decorrelation needs 3 colour channels; pass "
            f"decorrelate=False. {received('shape', shape)}"
        )
    channels = colours + int(alpha)
    freqs = _frequencies(height, width)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
    scale = (scale * np.sqrt(height * width)).astype(np.float32)
    matrix = COLOR_MATRIX if decorrelate else np.eye(colours, dtype=np.float32)
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(2, batch, channels) + freqs.shape).astype(np.float32)
    start *= sd
    if init is not None:
        logits = _logit(_init_array(init, shape, alpha))  # (B, H, W, channels)
        colour = logits[..., :colours] @ np.linalg.inv(matrix)
        spatial = 4.0 * np.concatenate([colour, logits[..., colours:]], -1)
        spectrum = np.fft.rfft2(np.transpose(spatial, (0, 3, 1, 2))) / scale
        start += np.stack([spectrum.real, spectrum.imag]).astype(np.float32)
    variable = tf.Variable(start, name="spectrum")
    scale_t = tf.constant(scale, tf.complex64)
    matrix_t = tf.constant(matrix)

    def images() -> tf.Tensor:
        spectrum = tf.complex(variable[0], variable[1]) * scale_t
        spatial = tf.signal.irfft2d(spectrum, fft_length=[height, width]) / 4.0
        spatial = tf.transpose(spatial, [0, 2, 3, 1])  # (B, H, W, channels)
        colour = tf.einsum("bhwc,cd->bhwd", spatial[..., :colours], matrix_t)
        return tf.sigmoid(tf.concat([colour, spatial[..., colours:]], -1))

    return Param([variable], images, alpha=alpha, name="fourier_image")
