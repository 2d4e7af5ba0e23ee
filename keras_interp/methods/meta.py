"""Meta methods: wrappers that take ANY method and return a method.

A wrapper keeps the one contract, so wrappers stack:
`tta(smooth(gradcam))(model, x, indices)` returns `(logits, maps)` like
`gradcam` does. Each wrapper is named `"<method>_<wrapper>"` and sets
`__wrapped__` to the method it wraps.
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
from keras_interp.methods._base import hashed_normal
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


def _copies_per_call(batch: int | None, repetitions: int, batch_size: int) -> int:
    """The largest divisor of `repetitions` whose copies fit in `batch_size`."""
    fit = max(1, batch_size // batch) if batch else 1
    return max(
        d for d in range(1, repetitions + 1) if repetitions % d == 0 and d <= fit
    )


def fingerprint(images: tf.Tensor) -> tf.Tensor:
    """An int32 per image from a few fixed pixels, quantised to 1/1024 so that
    the last-bit differences between eager and XLA arithmetic (e.g. in a
    resize upstream) do not change it."""
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    count = tf.shape(flat)[1]
    picks = tf.stack([0, count // 7, count // 3, count // 2, 2 * count // 3, count - 1])
    values = tf.clip_by_value(tf.gather(flat, picks, axis=1), -1e6, 1e6)
    bits = tf.cast(tf.round(values * 1024.0), tf.int32)  # (B, 6)
    mixed = bits[:, 0]
    for j in range(1, 6):
        mixed = tf.bitwise.bitwise_xor(mixed * 1000003, bits[:, j])
    return mixed


def sample_noise(x: tf.Tensor, copies: int, stddev: float, seed: int) -> tf.Tensor:
    """Gaussian noise `(copies, B, H, W, C)` drawn per image from `(seed, image
    content)`: an image gets the same noise whatever batch it comes in, so
    results do not depend on `batch_size` or on the order of the data."""

    def one(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        image, key = args
        shape = tf.concat([[copies], tf.shape(image)], axis=0)
        return hashed_normal(shape, seed, key, stddev)

    noise = tf.map_fn(one, (x, fingerprint(x)), fn_output_signature=tf.float32)
    return tf.transpose(noise, [1, 0, *range(2, x.shape.rank + 1)])


def _noisy_passes(method, model, inputs, indices, options, settings):
    """Run `method` on `repetitions` copies of `inputs` (the first one clean,
    the others with Gaussian noise) and return the stacked outputs
    `(R, B, L)` and `(R, B, H', W', L)`."""
    repetitions, noise, seed, batch_size = settings
    x = tf.convert_to_tensor(inputs, tf.float32)
    shape = tf.shape(x)
    if seed is None:
        noise_shape = tf.concat([[repetitions - 1], shape], axis=0)
        eps = tf.random.normal(noise_shape, stddev=noise)
    else:
        eps = sample_noise(x, repetitions - 1, noise, seed)
    noisy = tf.concat([x[None], x[None] + eps], axis=0)  # (R, B, H, W, C)
    per_call = _copies_per_call(x.shape[0], repetitions, batch_size)
    chunks = repetitions // per_call
    chunked = tf.reshape(
        noisy, tf.concat([[chunks, per_call * shape[0]], shape[1:]], 0)
    )
    if indices is not None:
        indices = tf.tile(tf.convert_to_tensor(indices), [per_call, 1])

    def one_chunk(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, maps = method(model, images, indices, **options)
        return tf.cast(logits, tf.float32), tf.cast(maps, tf.float32)

    if chunks == 1:
        logits, maps = one_chunk(chunked[0])
        logits, maps = logits[None], maps[None]
    else:
        logits, maps = tf.map_fn(
            one_chunk,
            chunked,
            fn_output_signature=(tf.float32, tf.float32),
            parallel_iterations=1,
        )

    def unstack(
        t: tf.Tensor,
    ) -> tf.Tensor:  # (chunks, per_call * B, ...) -> (R, B, ...)
        rest = tf.shape(t)[2:]
        return tf.reshape(t, tf.concat([[repetitions, shape[0]], rest], axis=0))

    return unstack(logits), unstack(maps)


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
            logits, maps = _noisy_passes(
                method, model, inputs, indices, options, settings
            )
            return tf.reduce_mean(logits, axis=0), reduce(maps)

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

    The model must accept the rescaled inputs. Exposed models do (they run
    layer by layer); a functional model with a fixed input shape refuses
    other sizes, so expose it first, even with no activations:
    `tta(gradients)(expose(model, arguments=[]), x, y)`.

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
        x = tf.convert_to_tensor(inputs, tf.float32)
        width_axis = options.get("spatial_axis", (-3, -2))[-1]
        logits, maps = method(model, x, indices, **options)
        size = maps.shape[1:3] if None not in maps.shape[1:3] else tf.shape(maps)[1:3]
        total_logits, total_maps, passes = logits, maps, 1

        def one_pass(images: tf.Tensor, flip: bool) -> tuple[tf.Tensor, tf.Tensor]:
            if flip:
                images = tf.reverse(images, axis=[2])
            pass_logits, pass_maps = method(model, images, indices, **options)
            if flip:
                pass_maps = tf.reverse(pass_maps, axis=[width_axis])
            if pass_maps.shape[1:3] != maps.shape[1:3] or None in maps.shape[1:3]:
                pass_maps = tf.image.resize(pass_maps, size, method=resize_method)
            return pass_logits, pass_maps

        runs = [(x, True)] if hflip else []
        for scale in scales:
            scaled = tf.image.resize(x, _scaled_size(x, scale), method=resize_method)
            runs += [(scaled, False)] + ([(scaled, True)] if hflip else [])
        for images, flip in runs:
            pass_logits, pass_maps = one_pass(images, flip)
            total_logits += pass_logits
            total_maps += tf.cast(pass_maps, total_maps.dtype)
            passes += 1
        return total_logits / passes, total_maps / passes

    return wrapper


__all__ = ["smooth", "squaregrad", "tta", "vargrad", "wrapper_of"]
