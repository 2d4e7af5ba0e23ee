"""Class prototypes: inputs optimised, without data, to be classified as a class.

The algorithm behind Leap's prototypes (leap-ie is closed source: only its
documented interface is kept, the algorithm is ours), built on `render`: a
Fourier-parameterised image (optionally with an alpha channel) is optimised
with Adam to maximise the log-probability of its class, seen through a
Gaussian blur whose width falls linearly from `blur_max` to `blur_min` and
through random affine transforms, with optional high-frequency, alpha-area
and diversity penalties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_non_negative_float,
    check_one_of,
    check_positive_float,
    check_positive_int,
    received,
)
from keras_interp.engine.tracing import traced_function
from keras_interp.inspection.graph import has_graph, iter_layers, output_shape
from keras_interp.synthesis.context import Context
from keras_interp.synthesis.isolation import (
    channels_first_model,
    check_baseline,
    initial_image,
    logits_function,
)
from keras_interp.synthesis.objectives import Objective, gram_similarity
from keras_interp.synthesis.param import Param, fourier_image, pixel_image
from keras_interp.synthesis.regularizers import high_frequency
from keras_interp.synthesis.rendering import render
from keras_interp.synthesis.transforms import blur, compose, gaussian_blur, preset


def equalise(images: Any, amount: float) -> np.ndarray:
    """Blend images with their per-channel histogram equalisation.

    `(1 - amount) * x + amount * eq(x)`, `eq` mapping each channel of each image
    through its empirical CDF (mean ranks scaled to [0, 1], so a flat channel
    becomes 0.5). Leap's `equalise` post-processing.

    Args:
        images: float images `(B, H, W, C)` in [0, 1] (no alpha channel).
        amount: the blend in [0, 1].

    Returns:
        float32 images of the same shape.
    """
    images = np.asarray(images, np.float32)
    if amount <= 0:
        return images
    b, h, w, c = images.shape
    flat = np.moveaxis(images, -1, 1).reshape(b * c, h * w)
    eq = np.empty_like(flat)
    for row, values in enumerate(flat):
        unique, inverse, counts = np.unique(
            values, return_inverse=True, return_counts=True
        )
        mean_rank = np.cumsum(counts) - (counts + 1) / 2.0  # ranks from 0
        eq[row] = mean_rank[inverse] / max(h * w - 1, 1)
    eq = np.moveaxis(eq.reshape(b, c, h, w), 1, -1)
    return ((1 - amount) * images + amount * eq).astype(np.float32)


def centre_window(height: int, width: int, sigma: float = 0.3) -> np.ndarray:
    """A centred Gaussian window `(1, H, W, 1)`, 1 at the centre; `sigma` is a
    fraction of the image size (Leap's `alpha_mask`)."""
    y = (np.arange(height) + 0.5) / height - 0.5
    x = (np.arange(width) + 0.5) / width - 0.5
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    return np.exp(-0.5 * r2 / sigma**2).astype(np.float32)[None, :, :, None]


def feature_layer(model: Any) -> str | None:
    """The path of the model's last layer with a spatial `(B, H, W, C)` output
    (where diversity is measured), or None."""
    if not has_graph(model):
        return None
    found = None
    for path, layer in iter_layers(model):
        shape = output_shape(layer)
        if shape is not None and len(shape) == 4:
            found = path
    return found


def _objective(targets, groups, weights: dict, layer, alpha: bool) -> Objective:
    """`w_obj * log p(target) - hf - alpha area - diversity`, per image."""
    targets_t = tf.constant(targets, tf.int32)
    same = (groups[:, None] == groups[None, :]) & ~np.eye(len(groups), dtype=bool)
    same_t = tf.constant(same, tf.float32)
    pairs = tf.constant(np.maximum(same.sum(1), 1), tf.float32)

    def fn(ctx: Context) -> tf.Tensor:
        logp = tf.nn.log_softmax(ctx.logits, -1)
        chosen = tf.gather(logp, targets_t[:, None], axis=1, batch_dims=1)[:, 0]
        value = weights["objective"] * chosen
        if alpha and weights["alpha"]:
            value -= weights["alpha"] * tf.reduce_mean(ctx.images[..., -1], [1, 2])
        if weights["diversity"] and same.any():
            features = ctx.layer(layer) if layer else ctx.inputs
            sims = tf.reduce_sum(gram_similarity(features) * same_t, 1)
            value -= weights["diversity"] * sims / pairs
        return value

    objective = Objective(fn, "leap_prototype", (layer,) if layer else (), True)
    if weights["hf"]:
        objective = objective + high_frequency(weights["hf"])
    return objective


@dataclass(frozen=True)
class Prototypes:
    """What `class_prototypes` returns (N = classes x per_class, grouped by class).

    Attributes:
        images: the kept images `(N, H, W, C [+ 1])` in [0, 1], alpha last if
            any, blurred as the model saw them and equalised.
        composites: what the model scored: alpha composited over a fixed
            uniform-noise background `(N, H, W, C)`.
        targets: each image's class `(N,)`.
        logits: the model's logits on `composites` `(N, K)`.
        probabilities: the softmax of `logits` `(N, K)`.
        kept_steps: the step each kept image comes from `(N,)`.
        steps: the logged steps `(S,)`.
        history: the probabilities at the logged steps `(S, N, K)`.
        objective: `render`'s objective history (batch mean per step).
    """

    images: np.ndarray
    composites: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray
    kept_steps: np.ndarray
    steps: np.ndarray
    history: np.ndarray
    objective: list


def _param(shape, options, baseline, seed) -> Param:
    """Fourier (or pixel) image, alpha channel and centred mask, per Leap's
    `use_alpha`, `alpha_only` and `alpha_mask`."""
    n, h, w, c = shape
    make = fourier_image if options["parameterisation"] == "fourier" else pixel_image
    extra = {"decorrelate": c == 3} if make is fourier_image else {}
    start = initial_image(baseline, shape, seed)
    if options["alpha_only"]:
        extra = {"decorrelate": False} if extra else {}
        inner = make((n, h, w, 1), init=0.5, seed=seed, **extra)
        colour = tf.constant(start)

        def parts() -> tuple[tf.Tensor, tf.Tensor]:
            return colour, inner()

    elif options["use_alpha"] or options["alpha_mask"]:
        inner = make(shape, init=start, alpha=True, seed=seed, **extra)

        def parts() -> tuple[tf.Tensor, tf.Tensor]:
            images = inner()
            return images[..., :c], images[..., c:]

    else:
        return make(shape, init=start, seed=seed, **extra)
    window = tf.constant(centre_window(h, w) if options["alpha_mask"] else 1.0)

    def images() -> tf.Tensor:
        colour, alpha = parts()
        return tf.concat([colour, alpha * window], -1)

    return Param(inner.variables, images, alpha=True, name="leap_prototype")


def class_prototypes(
    model: Any,
    classes: Any,
    *,
    shape: tuple[int, int, int] = (224, 224, 3),
    per_class: int = 1,
    steps: int = 1000,
    lr: float = 0.01,
    objective_weight: float = 1.0,
    blur_max: float = 1.0,
    blur_min: float = 0.01,
    hf_weight: float = 0.0,
    diversity_weight: float = 0.0,
    use_alpha: bool = False,
    alpha_only: bool = False,
    alpha_mask: bool = False,
    alpha_weight: float = 0.0,
    baseline: Any = 0.0,
    transform: Any = "xl",
    preprocessing: Callable | None = None,
    channels_axis: int = -1,
    parameterisation: str = "fourier",
    always_update: bool = False,
    equalise_amount: float = 0.0,
    seed: int = 0,
    log_freq: int = 100,
    callback: Callable | None = None,
    verbose: str | int = 0,
) -> Prototypes:
    """Optimise `per_class` inputs per class to be classified as that class.

    Maximises, with `render` (Adam, one compiled step), per image

        objective_weight * log softmax(f(T(blur_t(x))))[c]
            - hf_weight * HF(x) - alpha_weight * mean(alpha)
            - diversity_weight * mean_{same class j} cos(G(x), G(x_j))

    where `x` is a Fourier image with colour decorrelation started from
    `baseline`; `blur_t` a Gaussian whose sigma falls linearly from `blur_max`
    (first step) to `blur_min` (last step); `T` a random affine transform
    (`preset(transform)`); `HF` the mean squared difference of neighbouring
    pixels; `G` the Gram matrix of the last spatial layer's activations
    (lucid's diversity; the transformed images when the model has no layer
    graph). With an alpha channel (`use_alpha`), the image is composited over
    uniform noise redrawn each step, so transparent pixels cannot matter;
    `alpha_only` fixes the colours to the baseline image and optimises the
    alpha alone (shapes, no colour); `alpha_mask` multiplies the alpha by a
    fixed centred Gaussian window (sigma 0.3 of the size), so prototypes are
    centred and concentrated. `objective_weight=-1` minimises the class.

    Every `log_freq` steps (and at the last) the image as the model sees it at
    that step (blurred, no transform, alpha over a fixed noise background) is
    scored; unless `always_update`, each image keeps its best-scoring version
    (the score is `objective_weight * log p(c)`), so a late divergence (too
    high a learning rate) does not spoil it. `equalise_amount` then blends the
    kept colours with their histogram equalisation, and they are scored again.

    Args:
        model: a Keras model (or callable) returning logits.
        classes: the target class indices `(T,)`.
        shape: the image shape `(H, W, C)`, channels last.
        per_class: images per class (for diversity).
        steps: optimisation steps (Leap's `max_steps`).
        lr: Adam's learning rate (Leap's `lr`).
        objective_weight: weight of the class log-probability; -1 minimises
            the class (Leap's `objective_weight`).
        blur_max: blur sigma at the first step (Leap's `blur_max`).
        blur_min: blur sigma at the last step (Leap's `blur_min`).
        hf_weight: weight of the high-frequency penalty `HF` (Leap's
            `hf_weight`).
        diversity_weight: weight of the Gram-matrix diversity term between
            the images of one class (Leap's `diversity_weight`).
        use_alpha: optimise an alpha channel too, composited over noise
            (Leap's `use_alpha`).
        alpha_only: fix the colours to the baseline and optimise the alpha
            alone (Leap's `alpha_only`).
        alpha_mask: multiply the alpha by a centred Gaussian window (Leap's
            `alpha_mask`).
        alpha_weight: weight of the alpha penalty (Leap's `alpha_weight`).
        always_update: keep each image's last version rather than its
            best-scoring one (Leap's `always_update`).
        seed: the random seed (Leap's `seed`).
        log_freq: steps between scorings and logs (Leap's `log_freq`).
        baseline: the start image: a number, per-channel values, an image
            `(H, W, C)` or `'r'` (uniform noise) (Leap's `baseline_init`).
        transform: `'s'`, `'m'`, `'l'`, `'xl'`, None, or a transform.
        preprocessing: a TF-differentiable map from [0, 1] images to inputs.
        channels_axis: the model's channel axis (1 for channels first).
        parameterisation: `'fourier'` or `'pixel'`.
        equalise_amount: Leap's `equalise`, in [0, 1].
        callback: `callback(step, composites, probabilities)` at logged steps.
        verbose: 0, 1 (a progress bar), 2 or `"auto"` (as `render`).

    Returns:
        `Prototypes`, images grouped by class: image `i` is of class
        `classes[i // per_class]`.

    Example:
        >>> model = keras.Sequential([keras.Input((16, 16, 3)),
        ...     keras.layers.Conv2D(4, 3), keras.layers.GlobalMaxPooling2D(),
        ...     keras.layers.Dense(3)])
        >>> result = class_prototypes(model, [0, 2], shape=(16, 16, 3), steps=8)
        >>> result.probabilities.shape
        (2, 3)

    References:
        Tagade & Rumbelow, Prototype Generation: Robust Feature Visualisation
        for Data Independent Interpretability, 2023. arXiv:2309.17144.
        Olah, Mordvintsev, Schubert, Feature Visualization, Distill 2017.
    """
    classes = np.asarray(classes).reshape(-1)
    if classes.size == 0 or classes.dtype.kind not in "iu" or classes.min() < 0:
        raise ValueError(
            "`classes` must be one or more non-negative class indices. "
            f"{received('classes', classes)}"
        )
    per_class = check_positive_int(per_class, "per_class")
    steps = check_positive_int(steps, "steps")
    log_freq = check_positive_int(log_freq, "log_freq")
    check_positive_float(lr, "lr")
    for value, arg in ((hf_weight, "hf_weight"), (alpha_weight, "alpha_weight"),
                       (diversity_weight, "diversity_weight"),
                       (blur_min, "blur_min"), (blur_max, "blur_max")):  # fmt: skip
        check_non_negative_float(value, arg)
    if blur_min > blur_max:
        raise ValueError(
            f"`blur_min` must not exceed `blur_max`. {received('blur_min', blur_min)}"
        )
    check_one_of(parameterisation, ("fourier", "pixel"), "parameterisation")
    baseline = check_baseline(baseline, tuple(shape), "baseline")
    targets = np.repeat(classes.astype(np.int32), per_class)
    groups = np.repeat(np.arange(len(classes)), per_class)
    n, (h, w, c) = len(targets), shape
    options = {
        "parameterisation": parameterisation,
        "use_alpha": use_alpha,
        "alpha_only": alpha_only,
        "alpha_mask": alpha_mask,
    }
    param = _param((n, h, w, c), options, baseline, seed)
    net = channels_first_model(model, channels_axis)
    layer = feature_layer(net) if diversity_weight else None
    weights = {
        "objective": float(objective_weight),
        "hf": hf_weight,
        "alpha": alpha_weight,
        "diversity": diversity_weight,
    }
    objective = _objective(targets, groups, weights, layer, param.alpha)

    radius = int(4 * blur_max + 0.5)
    sigma = tf.Variable(float(blur_max), trainable=False, name="blur_sigma")
    schedule = np.linspace(blur_max, blur_min, steps) if steps > 1 else [blur_min]
    affine = (
        preset(transform)
        if transform is None or isinstance(transform, str)
        else transform
    )
    transforms = compose(blur(sigma, radius=radius), affine)
    background = np.random.default_rng(seed + 1).uniform(size=(n, h, w, c))
    background = tf.constant(background.astype(np.float32))
    logits_of = logits_function(model, preprocessing, channels_axis)

    def seen(images: tf.Tensor) -> tf.Tensor:
        if not param.alpha:
            return images
        return images[..., :c] * images[..., c:] + background * (1 - images[..., c:])

    @traced_function
    def evaluate():
        images = gaussian_blur(param(), sigma, radius=radius)
        return images, logits_of(seen(images))

    sign = 1.0 if objective_weight >= 0 else -1.0
    kept = {"images": None, "score": np.full(n, -np.inf), "step": np.zeros(n, int)}
    logged, history = [], []

    def on_step(step: int, value: float, _param: Param) -> None:
        done = step + 1
        if done % log_freq == 0 or done == steps:
            images, logits = (t.numpy() for t in evaluate())
            probs = _softmax(logits)
            logged.append(done)
            history.append(probs)
            score = sign * np.log(probs[np.arange(n), targets] + 1e-30)
            better = np.ones(n, bool) if always_update else score > kept["score"]
            if kept["images"] is None:
                kept["images"] = images.copy()
            kept["images"][better] = images[better]
            kept["score"][better] = score[better]
            kept["step"][better] = done
            if callback is not None:
                callback(done, np.asarray(seen(tf.constant(images))), probs)
        sigma.assign(schedule[min(step + 1, len(schedule) - 1)])

    result = render(
        net,
        objective,
        param,
        transforms=transforms,
        steps=steps,
        lr=lr,
        seed=seed,
        input_range=(0.0, 1.0),
        preprocessing=preprocessing,
        verbose=verbose,
        callback=on_step,
    )
    images = kept["images"]
    if equalise_amount > 0:
        images = images.copy()
        images[..., :c] = equalise(images[..., :c], equalise_amount)
    composites = seen(tf.constant(images)).numpy()
    logits = logits_of(tf.constant(composites)).numpy()
    return Prototypes(
        images=images,
        composites=composites,
        targets=targets,
        logits=logits,
        probabilities=_softmax(logits),
        kept_steps=kept["step"],
        steps=np.asarray(logged),
        history=np.stack(history),
        objective=result.history,
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return (z / z.sum(-1, keepdims=True)).astype(np.float32)
