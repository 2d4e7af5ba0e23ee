"""Image regularisers: penalties on the param's images, already negated.

Each is an `Objective` to ADD to a model objective (`channel(...) + 0.1 *
total_variation()`); its value is per image `(B,)` and never positive. They
read `context.images`, the param's output before transforms, in [0, 1]. The
colour penalties (`l1`, `l2`, `total_variation`, `high_frequency`) skip the
alpha channel, the last one when `context.alpha` is set, whatever the number
of colour channels; `alpha_minimality` reads only that channel.
"""

from __future__ import annotations

import tensorflow as tf

from keras_interp._validation import check_non_negative_float, check_one_of
from keras_interp.synthesis.context import Context
from keras_interp.synthesis.objectives import Objective, _config, _per_image


def _colour(ctx: Context) -> tf.Tensor:
    """The colour channels of `ctx.images` (the alpha channel dropped)."""
    return ctx.images[..., :-1] if ctx.alpha else ctx.images


def alpha_minimality(weight: float = 1.0) -> Objective:
    """`-weight * mean(alpha)` per image: prefer transparent images.

    Raises:
        ValueError: (when evaluated) the images have no alpha channel.
    """
    weight = check_non_negative_float(weight, "weight")

    def fn(ctx: Context) -> tf.Tensor:
        if not ctx.alpha:
            raise ValueError(
                "alpha_minimality() needs an alpha channel: use a param with "
                f"alpha=True. Received: images.shape={tuple(ctx.images.shape)}"
            )
        return -weight * _per_image(ctx.images[..., -1])

    return Objective(
        fn,
        f"alpha_minimality({weight:g})",
        config=_config("alpha_minimality", weight=weight),
    )


def l1(weight: float = 1.0, *, constant: float = 0.0) -> Objective:
    """`-weight * sum |x - constant|` over each image's colour channels
    (dnnbrain's L1 with `constant=0`)."""
    weight = check_non_negative_float(weight, "weight")

    def fn(ctx: Context) -> tf.Tensor:
        deviation = tf.abs(_colour(ctx) - constant)
        return -weight * _per_image(deviation, tf.reduce_sum)

    return Objective(
        fn,
        f"l1({weight:g})",
        config=_config("l1", weight=weight, constant=float(constant)),
    )


def l2(weight: float = 1.0, *, constant: float = 0.0) -> Objective:
    """`-weight * sqrt(sum (x - constant)^2)` per image: dnnbrain's L2 (the
    norm, not its square)."""
    weight = check_non_negative_float(weight, "weight")

    def fn(ctx: Context) -> tf.Tensor:
        sq = _per_image(tf.square(_colour(ctx) - constant), tf.reduce_sum)
        return -weight * tf.sqrt(sq + 1e-12)

    config = _config("l2", weight=weight, constant=float(constant))
    return Objective(fn, f"l2({weight:g})", config=config)


def _differences(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Vertical and horizontal neighbour differences of `(B, H, W, C)` images."""
    return x[:, 1:, :, :] - x[:, :-1, :, :], x[:, :, 1:, :] - x[:, :, :-1, :]


#: How `variation` normalises: "sum" (dnnbrain, `tf.image.total_variation`) or
#: "mean" (each direction's mean, independent of the image size; Leap's masks).
TV_REDUCTIONS = ("sum", "mean")


def variation(images: tf.Tensor, reduction: str = "sum") -> tf.Tensor:
    """The anisotropic total variation of each image, `(B,)`: the library's one
    total-variation function.

    `"sum"`: `sum |x[i+1, j] - x[i, j]| + sum |x[i, j+1] - x[i, j]|` over rows,
    columns and channels (`tf.image.total_variation`, dnnbrain's TV).
    `"mean"`: the mean of each of the two sums' terms, added, so the value does
    not grow with the image size (Leap's smoothness term on isolation masks).

    Args:
        images: `(B, H, W, C)`.
        reduction: `"sum"` or `"mean"`.

    Returns:
        float32 `(B,)`, non-negative.

    Raises:
        ValueError: an unknown `reduction`.
    """
    check_one_of(reduction, TV_REDUCTIONS, "reduction")
    reduce = tf.reduce_sum if reduction == "sum" else tf.reduce_mean
    dy, dx = _differences(tf.convert_to_tensor(images))
    return reduce(tf.abs(dy), [1, 2, 3]) + reduce(tf.abs(dx), [1, 2, 3])


def total_variation(weight: float = 1.0, *, reduction: str = "sum") -> Objective:
    """`-weight * variation(colour channels, reduction)` per image.

    With the default `reduction="sum"`: `-weight * (sum |x[i+1, j] - x[i, j]| +
    sum |x[i, j+1] - x[i, j]|)` over colour channels (anisotropic, as dnnbrain
    and `tf.image.total_variation`); `"mean"` makes the weight independent of
    the image size. See `variation`.
    """
    weight = check_non_negative_float(weight, "weight")
    check_one_of(reduction, TV_REDUCTIONS, "reduction")

    def fn(ctx: Context) -> tf.Tensor:
        return -weight * variation(_colour(ctx), reduction)

    name = f"total_variation({weight:g})"
    if reduction != "sum":
        name = f"total_variation({weight:g}, {reduction})"
    config = _config("total_variation", weight=weight)
    if reduction != "sum":
        config["args"]["reduction"] = reduction
    return Objective(fn, name, config=config)


def high_frequency(weight: float = 1.0) -> Objective:
    """`-weight * (mean dy^2 + mean dx^2)` per image: the energy of
    neighbouring-pixel differences, a high-pass filter's output power.

    Means, not sums, so the weight does not depend on the image size (Leap's
    `hf_weight`).
    """
    weight = check_non_negative_float(weight, "weight")

    def fn(ctx: Context) -> tf.Tensor:
        dy, dx = _differences(_colour(ctx))
        return -weight * (_per_image(tf.square(dy)) + _per_image(tf.square(dx)))

    return Objective(
        fn,
        f"high_frequency({weight:g})",
        config=_config("high_frequency", weight=weight),
    )


REGULARIZERS = (alpha_minimality, l1, l2, total_variation, high_frequency)
