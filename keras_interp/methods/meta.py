"""Meta methods: wrappers that take ANY method and return a method.

A wrapper keeps the one contract, so wrappers stack:
`tta(smooth(gradcam))(model, x, indices)` returns `(logits, maps)` like
`gradcam` does. Each wrapper is named `"<method>_<wrapper>"` and sets
`__wrapped__` to the method it wraps. Inputs may be a nest (tuple, list or
dict) for a model with several inputs: the wrappers then return what the
method returns, one map per input (gradient methods) or one map (CAMs).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import (
    check_callable,
    check_non_negative_float,
    check_one_of,
    check_positive_int,
    received,
)
from keras_interp.methods._base import channels_last
from keras_interp.methods._noise import (  # noqa: F401 - fingerprint, sample_noise
    as_input,
    fingerprint,
    noisy_passes,
    sample_noise,
)
from keras_interp.methods.record import (
    WRAPPER_RECORDS,
    OptionSpec,
    WrapperRecord,
    memoized,
    wrapper_record,
)

RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "gaussian")

# wrapped method -> (its wrapper's record, the wrapper's checked settings).
_WRAPPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def wrapper_of(method: Any) -> tuple[WrapperRecord, dict[str, Any]] | None:
    """`(record of the wrapper, its settings)` if `method` was made by a meta
    wrapper (`smooth(...)`, `tta(...)`), else `None`.

    Example:
        >>> record, settings = wrapper_of(smooth(gradients, repetitions=4))
        >>> record.name, settings["repetitions"]
        ('smooth', 4)
    """
    try:
        return _WRAPPED.get(method)
    except TypeError:
        return None


def _wrap(
    method: Callable,
    wrapper: Callable,
    suffix: str,
    doc: str,
    settings: dict[str, Any],
) -> Callable:
    functools.update_wrapper(wrapper, method)
    wrapper.__name__ = f"{getattr(method, '__name__', 'method')}_{suffix}"
    wrapper.__qualname__ = wrapper.__name__
    wrapper.__doc__ = doc
    _WRAPPED[wrapper] = (WRAPPER_RECORDS[suffix], settings)
    return wrapper


def _memo_key(suffix: str, method: Callable, settings: dict[str, Any]) -> Any:
    """The identity of a wrapper: the wrapped method (by identity, so inline
    wrappers of the same method share it) and its checked settings."""
    return ("wrapper", suffix, method, tuple(sorted(settings.items())))


def _check_seed(seed: Any) -> int | None:
    if seed is not None:
        check_positive_int(seed, "seed", allow_zero=True)
    return seed


def _noise_wrapper(method, repetitions, noise, seed, batch_size, reduce, suffix, doc):
    check_callable(method, "method")
    repetitions = check_positive_int(repetitions, "repetitions")
    noise = check_non_negative_float(noise, "noise")
    seed = _check_seed(seed)
    batch_size = check_positive_int(batch_size, "batch_size")
    settings = (repetitions, noise, seed, batch_size)
    named = dict(zip(("repetitions", "noise", "seed", "batch_size"), settings))

    def build() -> Callable:
        def wrapper(model, inputs, indices=None, **options):
            if reduce is _mean and repetitions == 1:  # one clean pass: the method
                return method(model, inputs, indices, **options)
            logits, maps = noisy_passes(
                method, model, inputs, indices, options, settings
            )
            return tf.reduce_mean(logits, axis=0), tf.nest.map_structure(reduce, maps)

        return _wrap(method, wrapper, suffix, doc, named)

    return memoized(_memo_key(suffix, method, named), build)


def _mean(maps: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(maps, axis=0)


def _variance(maps: tf.Tensor) -> tf.Tensor:
    return tf.math.reduce_variance(maps, axis=0)


def _mean_square(maps: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(maps), axis=0)


_NOISE_ARGS = """
    Args:
        method: any method `fn(model, inputs, indices=None, **options)`.
        repetitions: passes in all: one on the clean inputs and
            `repetitions - 1` on noisy copies (keras-explainable's convention).
        noise: the standard deviation of the Gaussian noise, in input units.
        seed: an int for reproducible noise: stateless random ops seeded by
            `seed` and each image's content, so eager, `tf.function` and XLA
            agree and an image gets the same noise in any batch; `None` draws
            fresh noise each call.
        batch_size: at most this many images per call of `method`: the noisy
            copies are evaluated several batches at a time.

    With several inputs (a tuple, list or dict), every float input gets its
    own noise (seeded by its own content and its place in the nest); other
    inputs (integer ids, say) are copied unchanged. Each map (one per input,
    or the one map of a CAM) is reduced over the passes.

    Returns:
        A method with the same contract, named `"<method>_{suffix}"`.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
"""


_NOISE_OPTIONS = {
    "repetitions": OptionSpec.integer(low=1),
    "noise": OptionSpec.number(low=0),
    "seed": OptionSpec.integer(low=0, optional=True),
    "batch_size": OptionSpec.integer(low=1),
}


@wrapper_record(options=_NOISE_OPTIONS)
def smooth(
    method: Callable,
    repetitions: int = 20,
    noise: float = 0.1,
    seed: int | None = None,
    *,
    batch_size: int = 32,
) -> Callable:
    """SmoothGrad for any method: the mean of its maps over noisy inputs.

    `maps = mean_r method(x + eps_r)`, `eps_0 = 0`, `eps_r ~ N(0, noise^2)`.
    Logits are averaged the same way. `smooth(m, noise=0)` runs the passes on
    copies with zero noise and so equals `m` up to round-off. Works for
    every method, CAMs and perturbation methods included, not only gradients.

    Example:
        >>> model = keras_interp.testing.models.linear()
        >>> smoothed = smooth(gradients, repetitions=8, noise=0.1, seed=0)
        >>> logits, maps = smoothed(model, tf.ones((2, 6, 6, 3)), [[0], [1]])
        >>> maps.shape
        TensorShape([2, 6, 6, 1])

    References:
        Smilkov et al., SmoothGrad: removing noise by adding noise, ICML
        workshop 2017. arXiv:1706.03825.
    """
    doc = smooth.__doc__.split("Example:")[0] + _NOISE_ARGS.format(suffix="smooth")
    return _noise_wrapper(
        method, repetitions, noise, seed, batch_size, _mean, "smooth", doc
    )


@wrapper_record(options=_NOISE_OPTIONS)
def vargrad(
    method: Callable,
    repetitions: int = 20,
    noise: float = 0.1,
    seed: int | None = None,
    *,
    batch_size: int = 32,
) -> Callable:
    """VarGrad: the variance of a method's maps over noisy inputs.

    `maps = var_r method(x + eps_r)`; logits are the mean over the passes.

    References:
        Adebayo et al., Local explanation methods for deep neural networks lack
        sensitivity to parameter values, ICLR workshop 2018. arXiv:1810.03307.
    """
    doc = vargrad.__doc__ + _NOISE_ARGS.format(suffix="vargrad")
    return _noise_wrapper(
        method, repetitions, noise, seed, batch_size, _variance, "vargrad", doc
    )


@wrapper_record(options=_NOISE_OPTIONS)
def squaregrad(
    method: Callable,
    repetitions: int = 20,
    noise: float = 0.1,
    seed: int | None = None,
    *,
    batch_size: int = 32,
) -> Callable:
    """SmoothGrad-Squared: the mean of a method's squared maps over noisy inputs.

    `maps = mean_r method(x + eps_r)^2`; logits are the mean over the passes.

    References:
        Hooker et al., A Benchmark for Interpretability Methods in Deep Neural
        Networks, NeurIPS 2019. arXiv:1806.10758.
    """
    doc = squaregrad.__doc__ + _NOISE_ARGS.format(suffix="squaregrad")
    return _noise_wrapper(
        method, repetitions, noise, seed, batch_size, _mean_square, "squaregrad", doc
    )


def _scaled_size(x: tf.Tensor, scale: float) -> Any:
    height, width = x.shape[1], x.shape[2]
    if height is not None and width is not None:
        return [max(1, round(height * scale)), max(1, round(width * scale))]
    size = tf.cast(tf.round(tf.cast(tf.shape(x)[1:3], tf.float32) * scale), tf.int32)
    return tf.maximum(size, 1)


@wrapper_record(
    options={
        "scales": OptionSpec.numbers(low=0, include_low=False),
        "hflip": OptionSpec.boolean(),
        "resize_method": OptionSpec.choice(*RESIZE_METHODS),
    }
)
def tta(
    method: Callable,
    scales: Sequence[float] = (0.5, 1.5, 2.0),
    hflip: bool = True,
    resize_method: str = "bilinear",
) -> Callable:
    """Test-time augmentation for any method: the mean over rescaled and
    mirrored inputs.

    The method runs on the input, on each rescaled copy (`scales`), and, with
    `hflip`, on the mirror image of each of these. Maps are mirrored back and
    resized to the size of the maps of the unscaled pass, then averaged over
    ALL passes: `(1 + len(scales)) * (2 if hflip else 1)` of them.
    keras-explainable divided by `len(scales) * (2 if hflip else 1)`, leaving
    out the unscaled passes, so its result was too large by a constant factor;
    this is the true mean. `tta(m, scales=(1.0,), hflip=False)` equals `m`.

    The model must accept the rescaled inputs. Functional and Sequential
    models do (methods run them layer by layer); a model that fixes its input
    size in its arithmetic (a `Flatten` before a `Dense`) refuses other sizes.

    Images are the float inputs of rank 4, laid out as the method's
    `spatial_axis` says (channels-first too); maps are channels-last `(B, H',
    W', L)` and are mirrored back on their width axis. With several inputs (a
    tuple, list or dict), every image input is rescaled and mirrored in each
    pass, each by its own size; the other inputs (vectors, integer ids) are
    passed unchanged, since they have no height or width: their maps are
    averaged over the passes as they are, without resizing or mirroring.

    Args:
        method: any method `fn(model, inputs, indices=None, **options)`.
        scales: the input scale factors, each > 0.
        hflip: also explain the horizontally mirrored inputs.
        resize_method: how inputs and maps are resized (`tf.image.resize`).

    Returns:
        A method with the same contract, named `"<method>_tta"`; its maps have
        the shape of the method's maps on the unscaled input.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense())
        >>> augmented = tta(gradcam, scales=(0.5,), hflip=True)
        >>> logits, maps = augmented(model, tf.ones((1, 8, 8, 3)), [[0]])
        >>> maps.shape
        TensorShape([1, 8, 8, 1])

    References:
        David, keras-explainable (2022), `methods.meta.tta`.
    """
    check_callable(method, "method")
    if isinstance(scales, (int, float)) or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0
        for s in scales
    ):
        raise ValueError(
            "`scales` must be a sequence of positive numbers. "
            f"{received('scales', scales)}"
        )
    if not isinstance(hflip, bool):
        raise TypeError(f"`hflip` must be a bool. {received('hflip', hflip)}")
    check_one_of(resize_method, RESIZE_METHODS, "resize_method")
    scales = tuple(float(s) for s in scales)
    named = {"scales": scales, "hflip": hflip, "resize_method": resize_method}
    return memoized(
        _memo_key("tta", method, named),
        lambda: _wrap(
            method,
            _tta(method, scales, hflip, resize_method),
            "tta",
            _tta_doc(method, scales, hflip),
            named,
        ),
    )


def _tta_doc(method: Callable, scales: tuple, hflip: bool) -> str:
    return (
        f"Test-time augmentation of `{getattr(method, '__name__', 'method')}` "
        f"over scales {scales}{' and mirror images' if hflip else ''}."
    )


def _tta(method: Callable, scales: tuple, hflip: bool, resize_method: str):
    """The function `tta` returns (before naming)."""

    def wrapper(model, inputs, indices=None, **options):
        spatial_axis = options.get("spatial_axis", (-3, -2))
        x = tf.nest.map_structure(as_input, inputs)
        logits, maps = method(model, x, indices, **options)
        total_logits, total_maps, passes = logits, maps, 1
        runs = [(None, True)] if hflip else []
        for scale in scales:
            runs += [(scale, False)] + ([(scale, True)] if hflip else [])
        for scale, flip in runs:
            images = tf.nest.map_structure(
                lambda t, s=scale, f=flip: _augment(
                    t, s, f, spatial_axis, resize_method
                ),
                x,
            )
            pass_logits, pass_maps = method(model, images, indices, **options)
            pass_maps = tf.nest.map_structure(
                lambda m, ref, f=flip: _restore(m, ref, f, resize_method),
                pass_maps,
                maps,
            )
            total_logits += pass_logits
            total_maps = tf.nest.map_structure(
                lambda t, m: t + tf.cast(m, t.dtype), total_maps, pass_maps
            )
            passes += 1
        mean_maps = tf.nest.map_structure(lambda t: t / passes, total_maps)
        return total_logits / passes, mean_maps

    return wrapper


def _augment(
    x: tf.Tensor,
    scale: float | None,
    flip: bool,
    spatial_axis: Sequence[int],
    resize_method: str,
) -> tf.Tensor:
    """An image input (float, rank 4, laid out as `spatial_axis` says)
    rescaled by `scale` (`None`: not resized) and mirrored left-right if
    `flip`; any other input unchanged."""
    if x.shape.rank != 4 or not x.dtype.is_floating:
        return x
    image, undo = channels_last(x, spatial_axis)
    if scale is not None:
        size = _scaled_size(image, scale)
        image = tf.image.resize(image, size, method=resize_method)
    if flip:
        image = tf.reverse(image, axis=[2])
    return undo(image)


def _restore(
    maps: tf.Tensor, reference: tf.Tensor, flip: bool, resize_method: str
) -> tf.Tensor:
    """The maps `(B, H', W', L)` of an augmented pass mirrored back and resized
    to the unaugmented pass's maps `reference`; maps of a non-image input
    (rank other than 4) unchanged."""
    if maps.shape.rank != 4:
        return maps
    if flip:
        maps = tf.reverse(maps, axis=[2])  # Maps are channels-last in any layout.
    static = reference.shape[1:3]
    if maps.shape[1:3] != static or None in static:
        size = static if None not in static else tf.shape(reference)[1:3]
        maps = tf.image.resize(maps, size, method=resize_method)
    return maps


__all__ = ["smooth", "squaregrad", "tta", "vargrad", "wrapper_of"]
