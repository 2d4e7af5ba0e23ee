"""Feature isolation: the smallest smooth region of an input that keeps a class.

Leap's feature isolation (leap-ie is closed source, so the algorithm here is
ours; only its documented interface is kept): for an image `x` and a class
`c`, optimise a soft mask `m` so that the composite
`m * x + (1 - m) * baseline` is still classified as `c`, while the mask stays
small and smooth. The mask is the sigmoid of a low-resolution logit map,
bilinearly upsampled to the image size, so it cannot pick isolated pixels.

It also holds what prototypes and isolation share: the model call
(`logits_function`, channels-first models, preprocessing) and the baseline
(`check_baseline`, `make_baseline`, `initial_image`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    received,
)
from keras_interp.engine.tracing import traced_function
from keras_interp.synthesis.regularizers import variation
from keras_interp.synthesis.rendering import make_forward
from keras_interp.synthesis.transforms import fold_seed, uniform


def channels_first_model(model: Any, channels_axis: int) -> Any:
    """`model`, or a callable taking channels-last images, moving the channels
    to `channels_axis` and returning the model's logits (pre-softmax, through
    `make_forward`)."""
    if channels_axis in (-1, 3):
        return model
    forward = make_forward(model)

    def moved(x, training=False):
        return forward(tf.experimental.numpy.moveaxis(x, -1, channels_axis))[0]

    return moved


def logits_function(
    model: Any, preprocessing: Callable | None = None, channels_axis: int = -1
) -> Callable[[tf.Tensor], tf.Tensor]:
    """A traceable function from channels-last images to logits `(B, K)`.

    Applies `preprocessing`, resizes to the model's declared input size if it
    is fixed and differs (as `render` does; channels-last models), moves the
    channels for channels-first models and runs `rendering.make_forward` (so a
    model ending in a softmax gives its pre-softmax logits).
    """
    forward = make_forward(channels_first_model(model, channels_axis))
    size = _declared_size(model) if channels_axis in (-1, 3) else None

    def logits_of(images: tf.Tensor) -> tf.Tensor:
        x = images if preprocessing is None else preprocessing(images)
        if size is not None and tuple(x.shape[1:3]) != size:
            x = tf.image.resize(x, size)
        logits = tf.convert_to_tensor(forward(x)[0])
        return tf.reshape(tf.cast(logits, tf.float32), (tf.shape(x)[0], -1))

    return logits_of


def _declared_size(model: Any) -> tuple[int, int] | None:
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        return None
    if len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[2], int):
        return shape[1], shape[2]
    return None


def check_baseline(value: Any, shape: tuple[int, int, int], arg: str) -> Any:
    """`'r'`, a float, or a float32 array broadcast to `shape` `(H, W, C)`."""
    if isinstance(value, str) and value == "r":
        return value
    if isinstance(value, (str, bool)) or value is None:
        raise (ValueError if isinstance(value, str) else TypeError)(
            f"`{arg}` must be a number, an array or 'r' (random). "
            f"{received(arg, value)}"
        )
    try:
        array = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{arg}` must be a number, an array or 'r' (random). "
            f"{received(arg, value)}"
        ) from None
    if not np.isfinite(array).all():
        raise ValueError(f"`{arg}` must be finite. {received(arg, value)}")
    if array.ndim == 0:
        return float(array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    try:
        return np.broadcast_to(array, shape).astype(np.float32)
    except ValueError:
        raise ValueError(
            f"`{arg}` must broadcast to the image shape {shape}: a number, "
            f"per-channel values or an image. {received(arg, value)}"
        ) from None


def make_baseline(baseline: Any, shape: tuple, seed: int, step: Any) -> tf.Tensor:
    """The baseline as a tensor of `shape`; `'r'` draws uniform noise per step."""
    if isinstance(baseline, str):
        return uniform(fold_seed(seed, step), shape)
    return tf.broadcast_to(tf.constant(baseline, tf.float32), shape)


def initial_image(baseline: Any, shape: tuple, seed: int) -> np.ndarray:
    """A start image of `shape` in [0, 1] from a checked baseline."""
    if isinstance(baseline, str):
        return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
    array = np.broadcast_to(np.asarray(baseline, np.float32), shape)
    return np.clip(array, 0.0, 1.0)


@dataclass(frozen=True)
class Isolation:
    """The result of `isolate_features`.

    Attributes:
        masks: float32 masks in [0, 1], `(N, H, W)`.
        isolated: the composites `m * x + (1 - m) * baseline`, `(N, H, W, C)`
            (with a random baseline, the composite over its last draw).
        probabilities: the model's class probabilities on `isolated`, `(N, K)`.
        steps: the logged steps, `(S,)`.
        history: the probabilities at the logged steps, `(S, N, K)`.
    """

    masks: np.ndarray
    isolated: np.ndarray
    probabilities: np.ndarray
    steps: np.ndarray
    history: np.ndarray


def isolate_features(
    model: Any,
    images: Any,
    classes: Any,
    *,
    steps: int = 1000,
    lr: float = 0.05,
    area_weight: float = 1.0,
    smoothness_weight: float = 1.0,
    baseline: Any = 0.0,
    preprocessing: Callable | None = None,
    channels_axis: int = -1,
    mask_scale: int = 4,
    seed: int = 0,
    log_freq: int = 100,
    callback: Callable | None = None,
) -> Isolation:
    """Optimise a soft mask over each image that keeps the model on a class.

    For every pair `(images[n], classes[n])` it minimises

        -log softmax(f(m * x + (1 - m) * b))[c]
            + area_weight * mean(m) + smoothness_weight * TV(m)

    with Adam, where `m = sigmoid(upsample(z))`, `z` a logit map at
    `1 / mask_scale` of the image resolution initialised at 1 (`m` about
    0.73), `b` the baseline and `TV` the mean absolute difference between
    neighbouring mask values. The area term makes the mask drop whatever the
    class does not need; the TV term keeps it smooth and compact (Leap's
    `isolation_hf_weight`). Pairs are optimised together as one batch but
    independently (Adam is elementwise and the model runs in inference mode).

    Args:
        model: a Keras model (or callable) returning logits; a model ending in
            a softmax is handled (its pre-softmax logits are used).
        images: float images in the space `preprocessing` takes (by default
            the model's input), channels last, `(N, H, W, C)`.
        classes: one class index per image, int `(N,)`.
        steps: optimisation steps (Leap's `max_steps`).
        lr: Adam learning rate (Leap's `isolation_lr`).
        area_weight: weight of the mask-area term (Leap's
            `isolation_alpha_weight`): higher gives smaller masks.
        smoothness_weight: weight of the mask total variation (Leap's
            `isolation_hf_weight`).
        baseline: what replaces the masked-out input: a number, per-channel
            values `(C,)`, an image `(H, W, C)`, or `'r'` for fresh uniform
            noise in [0, 1] at every step.
        preprocessing: a TF-differentiable function from images to model
            inputs, or None.
        channels_axis: the channel axis of the model's input (`-1`, or `1`
            for channels-first models; images are transposed before the model).
        mask_scale: the mask logits have `ceil(H / mask_scale)` rows.
        seed: seed of the random baseline.
        log_freq: probabilities are recorded every `log_freq` steps and at the
            last step.
        callback: called as `callback(step, isolated, probabilities)` with
            numpy arrays at every logged step (for TensorBoard or W&B).

    Returns:
        An `Isolation` with the masks, composites, probabilities and history.

    Raises:
        ValueError: bad shapes, class indices out of range, or a bad option.
        TypeError: an option of the wrong type.

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 3)),
        ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        >>> result = isolate_features(model, np.ones((1, 8, 8, 3)), [1], steps=5)
        >>> result.masks.shape
        (1, 8, 8)

    References:
        Fong & Vedaldi, Interpretable Explanations of Black Boxes by
        Meaningful Perturbation, ICCV 2017. arXiv:1704.03296.
        Tagade & Rumbelow, Prototype Generation: Robust Feature Visualisation
        for Data Independent Interpretability, 2023. arXiv:2309.17144.
    """
    images = tf.convert_to_tensor(np.asarray(images, np.float32))
    if images.shape.rank != 4:
        raise ValueError(
            "`images` must have shape (N, H, W, C). "
            f"{received('images', images.numpy())}"
        )
    n, height, width, channels = images.shape
    classes = np.asarray(classes)
    if classes.shape != (n,) or classes.dtype.kind not in "iu":
        raise ValueError(
            f"`classes` must hold one integer class per image, shape ({n},). "
            f"{received('classes', classes)}"
        )
    steps = check_positive_int(steps, "steps")
    log_freq = check_positive_int(log_freq, "log_freq")
    mask_scale = check_positive_int(mask_scale, "mask_scale")
    lr = check_positive_float(lr, "lr")
    area_weight = check_non_negative_float(area_weight, "area_weight")
    smoothness_weight = check_non_negative_float(smoothness_weight, "smoothness_weight")
    baseline = check_baseline(baseline, (height, width, channels), "baseline")
    logits_of = logits_function(model, preprocessing, channels_axis)

    low = (-(-height // mask_scale), -(-width // mask_scale))
    z = tf.Variable(tf.ones((n, *low, 1)), name="mask_logits")
    optimizer = keras.optimizers.Adam(lr)
    target = tf.constant(classes, tf.int32)

    def composite(step):
        mask = tf.sigmoid(tf.image.resize(z, (height, width), "bilinear"))
        base = make_baseline(baseline, (n, height, width, channels), seed, step)
        return mask, mask * images + (1.0 - mask) * base

    @traced_function
    def train_step(step):
        with tf.GradientTape() as tape:
            mask, mixed = composite(step)
            logp = tf.nn.log_softmax(logits_of(mixed))
            chosen = tf.gather(logp, target, axis=1, batch_dims=1)
            loss = (
                -chosen
                + area_weight * tf.reduce_mean(mask, axis=[1, 2, 3])
                + smoothness_weight * variation(mask, reduction="mean")
            )
            total = tf.reduce_sum(loss)
        optimizer.apply_gradients([(tape.gradient(total, z), z)])

    @traced_function
    def evaluate(step):
        mask, mixed = composite(step)
        return mask, mixed, tf.nn.softmax(logits_of(mixed))

    logged, history = [], []
    mask, mixed, probs = evaluate(tf.constant(0))
    _check_classes(classes, probs.shape[-1])
    for step in range(1, steps + 1):
        train_step(tf.constant(step))
        if step % log_freq == 0 or step == steps:
            mask, mixed, probs = evaluate(tf.constant(step))
            logged.append(step)
            history.append(probs.numpy())
            if callback is not None:
                callback(step, mixed.numpy(), probs.numpy())
    return Isolation(
        masks=mask.numpy()[..., 0],
        isolated=mixed.numpy(),
        probabilities=probs.numpy(),
        steps=np.asarray(logged),
        history=np.stack(history),
    )


def _check_classes(classes: np.ndarray, num_classes: int) -> None:
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(
            f"Class indices must lie in [0, {num_classes}) for a model with "
            f"{num_classes} outputs. {received('classes', classes)}"
        )


def mask_iou(mask: Any, region: Any, threshold: float = 0.5) -> float:
    """Intersection over union of `mask > threshold` and a boolean `region`."""
    pred = np.asarray(mask) > threshold
    region = np.asarray(region, bool)
    union = np.logical_or(pred, region).sum()
    return float(np.logical_and(pred, region).sum() / union) if union else 1.0
