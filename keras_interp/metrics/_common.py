"""What every metric shares: inputs, maps, scores of perturbed copies, results."""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_images,
    check_one_of,
    check_positive_int,
    received,
)
from keras_interp.engine.cache import cached_variant
from keras_interp.engine.tracing import traced_function

#: What a perturbation metric reads from the model.
SCORES = ("probability", "logit", "output")


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """A metric's per-image values, their mean and, for curve metrics, curves.

    Attributes:
        name: the metric's name.
        values: float64 `(B,)`, one value per image.
        curves: `(B, S)` per-image curves (scores along the perturbation path,
            or similarities per randomised stage), or `None`.
        axis: `(S,)` the curves' x values (fraction perturbed, stage), or `None`.
        info: other details (layer names, options used).
    """

    name: str
    values: np.ndarray
    curves: np.ndarray | None = None
    axis: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def mean(self) -> float:
        """The mean of `values` over images (NaN values are skipped)."""
        finite = self.values[~np.isnan(self.values)]
        return float(finite.mean()) if finite.size else float("nan")

    def __repr__(self) -> str:
        return f"MetricResult({self.name}: mean={self.mean:.4f}, n={len(self.values)})"


def logits_model(model: Any) -> Any:
    """The model's logits (pre-softmax scores) as a callable, cached per model."""
    from keras_interp.inspection.expose import expose, is_exposed
    from keras_interp.inspection.graph import has_graph

    if is_exposed(model) or not has_graph(model):
        return model
    try:
        proxy = weakref.proxy(model)
    except TypeError:  # not weakly referenceable: nothing to cache against
        return expose(model, arguments=[])
    return cached_variant(model, "logits", lambda: expose(proxy, arguments=[]))


def scorer(model: Any, score: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """`fn(images (N, H, W, C), indices (N,)) -> scores (N,)`, traceable."""
    from keras_interp.methods._base import forward

    check_one_of(score, SCORES, "score")
    if score != "output":
        source = logits_model(model)
    else:
        try:
            source = weakref.proxy(model)
        except TypeError:
            source = model

    def fn(images: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
        outputs = tf.convert_to_tensor(forward(source, images)[0])
        if score == "probability":
            outputs = tf.nn.softmax(outputs, axis=-1)
        return tf.gather(outputs, indices, axis=1, batch_dims=1)

    return fn


def check_inputs(model: Any, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate images `(B, H, W, C)` and labels `(B,)` (or `(B, 1)`, or `None`
    for the predicted class); return them as float32 and int32 numpy."""
    from keras_interp.methods._base import forward

    x = check_images(x, "x")
    logits = np.asarray(forward(logits_model(model), x[:1])[0])
    units = logits.shape[-1]
    if y is None:
        outputs = [
            np.asarray(forward(logits_model(model), x[i : i + 256])[0])
            for i in range(0, len(x), 256)
        ]
        return x, np.concatenate(outputs).argmax(-1).astype(np.int32)
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise ValueError(
            f"`y` must be integer class indices of shape (batch,). {received('y', y)}"
        )
    if len(labels) != len(x):
        raise ValueError(
            f"`y` must have one index per image ({len(x)}), got {len(labels)}. "
            f"{received('y', y)}"
        )
    if labels.min() < 0 or labels.max() >= units:
        raise ValueError(
            f"`y` must hold indices in [0, {units}) (the model's units). "
            f"{received('y', y)}"
        )
    return x, labels.astype(np.int32)


def check_maps(maps: Any, x: np.ndarray, arg: str = "maps") -> np.ndarray:
    """Validate maps `(B, H, W)` or `(B, H, W, 1)` matching `x`; float32 numpy."""
    array = np.asarray(maps)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype.kind not in "fiub" or array.shape != x.shape[:3]:
        raise ValueError(
            f"`{arg}` must be real numbers of shape {x.shape[:3]} (or with a last "
            f"axis of 1) to match `x`. {received(arg, maps)}"
        )
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"`{arg}` must be finite. {received(arg, maps)}")
    return array


def explain_maps(
    method: Any, model: Any, x: np.ndarray, y: np.ndarray, batch_size: int
) -> np.ndarray:
    """One map `(B, H, W)` per image for its label, through the engine."""
    from keras_interp.engine import explain
    from keras_interp.methods import get
    from keras_interp.shortcuts import prepare

    function = get(method)
    _, maps = explain(
        function,
        prepare(model, method),
        x,
        y[:, None],
        batch_size=batch_size,
        resizing=x.shape[1:3],
        verbose=0,
    )
    return maps[..., 0].astype(np.float32)


def resolve_maps(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    method: Any,
    maps: Any,
    batch_size: int,
) -> np.ndarray:
    """`maps` validated, or computed with `method` when `maps` is None."""
    if maps is not None:
        return check_maps(maps, x)
    if method is None:
        raise ValueError(
            "Give an attribution `method` (name, spec or function) or precomputed "
            f"`maps`. {received('method', method)}"
        )
    return explain_maps(method, model, x, y, batch_size)


def require_method(method: Any, metric: str) -> Any:
    """Raise unless `method` is given (metrics that explain perturbed inputs)."""
    if method is None:
        raise ValueError(
            f"`{metric}` explains perturbed inputs or models, so it needs a "
            f"`method` (name, spec or function), not only `maps`. "
            f"{received('method', method)}"
        )
    from keras_interp.methods import get

    get(method)  # unknown names fail here, with suggestions
    return method


def _cached_step(model: Any, score: str, build: Callable, key: Any) -> Callable:
    """One `tf.function` per (model, score, metric kind and options)."""

    def make() -> Callable:
        score_fn = scorer(model, score)

        def step(data: tuple, *chunk: tf.Tensor) -> tf.Tensor:
            return score_fn(*build(data, *chunk))

        return traced_function(step, reduce_retracing=True)

    return cached_variant(model, ("metric step", score, key), make)


def perturbed_scores(
    model: Any,
    score: str,
    build: Callable,
    key: Any,
    data: tuple[np.ndarray, ...],
    items: tuple[np.ndarray, ...],
    batch_size: int,
) -> np.ndarray:
    """Scores of perturbed copies, built and scored in chunks of `batch_size`.

    `build(data, *chunk) -> (images, indices)` makes one chunk of copies with
    TensorFlow ops from the whole-batch tensors `data` (images, baselines,
    ranks, labels...) and one chunk of `items` (arrays of equal length, e.g.
    image index and step). It must depend on nothing but its arguments and
    the options named by the hashable `key`: the compiled step is cached per
    (model, score, key), so repeated calls (a metric callback, `evaluate`)
    trace it once. The last chunk is padded to `batch_size` rows.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    step = _cached_step(model, score, build, key)
    data = tuple(tf.constant(a) for a in data)
    count = len(items[0])
    size = min(batch_size, count)
    out = []
    for start in range(0, count, size):
        chunk = [a[start : start + size] for a in items]
        real = len(chunk[0])
        if real < size:
            pad = size - real
            chunk = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) for a in chunk]
        out.append(step(data, *[tf.constant(a) for a in chunk]).numpy()[:real])
    return np.concatenate(out).astype(np.float64)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Each image blurred by a Gaussian of `sigma` pixels (per channel)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest").astype(
        np.float32
    )


def baseline_images(x: np.ndarray, baseline: Any, arg: str = "baseline") -> np.ndarray:
    """The images perturbations move towards: a value, `"blur"` or `"mean"`."""
    if isinstance(baseline, str):
        check_one_of(baseline, ("blur", "mean"), arg)
        if baseline == "blur":
            return blur(x, sigma=max(1.0, x.shape[1] / 16))
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, np.number)):
        raise TypeError(
            f"`{arg}` must be a number, 'blur' or 'mean'. {received(arg, baseline)}"
        )
    return np.full_like(x, float(baseline))


def rank_pixels(maps: np.ndarray, seed: int) -> np.ndarray:
    """Each pixel's rank `(B, H, W)` by decreasing map value (0 = most relevant);
    ties are broken by a seeded random order."""
    b = len(maps)
    flat = maps.reshape(b, -1)
    tie = np.random.default_rng(seed).permutation(flat.shape[1])
    order = np.argsort(-flat[:, tie], axis=1, kind="stable")
    order = tie[order]
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None], axis=1)
    return ranks.reshape(maps.shape).astype(np.int32)


def ratio(numerator: Any, denominator: Any, default: Any) -> np.ndarray:
    """`numerator / denominator` where the denominator is positive, else
    `default` (broadcast), without division warnings."""
    denominator = np.asarray(denominator)
    positive = denominator > 0
    return np.where(positive, numerator / np.where(positive, denominator, 1), default)


def min_max(flat: np.ndarray, constant: float) -> np.ndarray:
    """Rows of `flat` `(B, N)` scaled to [0, 1]; a constant row becomes
    `constant` everywhere."""
    low = flat.min(axis=1, keepdims=True)
    return ratio(flat - low, flat.max(axis=1, keepdims=True) - low, constant)


def correlation(a: np.ndarray, b: np.ndarray, kind: str = "pearson") -> np.ndarray:
    """Row-wise Pearson or Spearman correlation of `(B, N)` arrays; constant
    rows give 0 (no evidence of agreement)."""
    if kind == "spearman":
        from scipy.stats import rankdata

        a, b = rankdata(a, axis=1), rankdata(b, axis=1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(1) / denominator
    return np.where(denominator > 0, r, 0.0)
