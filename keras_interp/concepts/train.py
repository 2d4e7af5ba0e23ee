"""Training CAVs as CAVlib does: a linear SVM between two sets of activations.

`train_cav` fits `sklearn.linear_model.SGDClassifier(alpha=0.01, max_iter=1000,
tol=1e-3)` (hinge loss, L2 penalty) on the raw flattened activations of the
positive (label 0) and negative (label 1) images, and returns the unit-norm
`-coef_[0]`, which points from the negatives towards the positives.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_interp._validation import (
    check_non_negative_float,
    check_positive_int,
    received,
)
from keras_interp.concepts._batching import layer_activations
from keras_interp.concepts.activations import (
    CAVableImage,
    ModelLayer,
    compute_activations,
    resolve,
)
from keras_interp.concepts.cav import CAV


def _key(model_layer: Any) -> Any:
    """The cache key of a `model_layer`: the string, or the pair as a tuple."""
    if isinstance(model_layer, (tuple, list)) and len(model_layer) == 2:
        model, layer = model_layer
        return model, tuple(layer) if isinstance(layer, list) else layer
    if isinstance(model_layer, str):
        return model_layer
    raise TypeError(
        "`model_layer` must be one of CAVlib's strings or a (model, layer_ref) "
        f"pair. {received('model_layer', model_layer)}"
    )


def _check_activation(value: Any, model_layer: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or array.dtype.kind not in "fiu" or array.size == 0:
        raise ValueError(
            f"The activation for {model_layer!r} must be a non-empty 1-D array "
            f"(flattened NHWC). {received('activations', value)}"
        )
    return array


class TrainingImage:
    """An image used to train a CAV, with a weight and cached activations.

    Args:
        image: the image (any `CAVableImage`); may be `None` when
            `activations` holds the activation for the layer trained on.
        activations: precomputed flattened activations keyed by `model_layer`
            (a CAVlib string, or a `(model, layer_ref)` pair exactly as passed
            to `train_cav`), e.g. `{"googlenet_4d": act}`.
        weight: the image's sample weight in training (default 1).

    Attributes:
        activations: the cache, a dict filled by `activations_for_model_layer`
            and `train_cav`.

    Raises:
        ValueError: both `image` and `activations` are `None`, a negative
            weight, or an activation that is not 1-D.

    Example:
        >>> from keras_interp.models import KerasModel
        >>> pair = (KerasModel(gap_dense()), "conv")  # 8x8 images
        >>> heavy = TrainingImage(np.full((8, 8, 3), 0.9), weight=4.0)
        >>> cav = train_cav(positive_images=[heavy, np.full((8, 8, 3), 0.7)],
        ...                 negative_images=[np.zeros((8, 8, 3))] * 2,
        ...                 model_layer=pair, seed=0)
        >>> heavy.activations[pair].shape  # computed once, reused later
        (256,)

    References:
        Google Research, CAVlib (mood-board-search), `train.py`, 2022.
    """

    def __init__(
        self,
        image: CAVableImage | None = None,
        activations: Mapping[Any, np.ndarray] | None = None,
        weight: float = 1.0,
    ) -> None:
        if image is None and activations is None:
            raise ValueError(
                "A TrainingImage needs an `image` or precomputed `activations`. "
                f"{received('image', image)}, activations=None"
            )
        if activations is not None and not isinstance(activations, Mapping):
            raise TypeError(
                "`activations` must be a dict keyed by model_layer. "
                f"{received('activations', activations)}"
            )
        self.image = image
        self.weight = check_non_negative_float(weight, "weight")
        self.activations: dict[Any, np.ndarray] = {
            _key(k): _check_activation(v, k) for k, v in (activations or {}).items()
        }

    def activations_for_model_layer(self, model_layer: ModelLayer) -> np.ndarray:
        """The cached activation for `model_layer`, computed on first use.

        Raises:
            ValueError: no cached activation and no image to compute it from.
        """
        key = _key(model_layer)
        if key not in self.activations:
            if self.image is None:
                raise ValueError(
                    f"This TrainingImage has no image and no activation for "
                    f"{model_layer!r} (it has {list(self.activations)}). "
                    f"{received('model_layer', model_layer)}"
                )
            self.activations[key] = compute_activations(self.image, model_layer)
        return self.activations[key]

    def __repr__(self) -> str:
        image = "None" if self.image is None else type(self.image).__name__
        return (
            f"TrainingImage(image=<{image}>, weight={self.weight}, "
            f"cached={len(self.activations)})"
        )


def _training_images(images: Any, arg: str) -> list[TrainingImage]:
    if isinstance(images, (str, bytes, os.PathLike, Mapping)) or not hasattr(
        images, "__iter__"
    ):
        raise TypeError(
            f"`{arg}` must be a sequence of images or TrainingImages. "
            f"{received(arg, images)}"
        )
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise ValueError(
            f"`{arg}` as an array must be a batch (N, H, W, 3). {received(arg, images)}"
        )
    items = [
        im if isinstance(im, TrainingImage) else TrainingImage(im) for im in images
    ]
    if not items:
        raise ValueError(
            f"`{arg}` must not be empty: a CAV separates examples of the concept "
            f"from counterexamples, and needs both. {received(arg, images)}"
        )
    return items


def _fill_cache(
    items: Sequence[TrainingImage], model_layer: Any, batch_size: int, verbose: Any
) -> Any:
    """Compute the missing activations in batches; return the resolved pair."""
    key = _key(model_layer)
    missing = list({id(t): t for t in items if key not in t.activations}.values())
    if not missing:
        return None
    for item in missing:
        if item.image is None:
            item.activations_for_model_layer(model_layer)  # raises the error
    model, layer = resolve(model_layer)
    rows = layer_activations(
        model,
        [t.image for t in missing],
        model.check_layer(layer),
        batch_size=check_positive_int(batch_size, "batch_size"),
        verbose=verbose,
    )
    for item, row in zip(missing, rows):
        item.activations[key] = row
    return model, layer


def train_cav(
    *,
    positive_images: Sequence[CAVableImage | TrainingImage],
    negative_images: Sequence[CAVableImage | TrainingImage],
    model_layer: ModelLayer = "googlenet_4d",
    random_state: np.random.RandomState | int | None = None,
    batch_size: int = 32,
    verbose: str | int = "auto",
    seed: int | None = None,
) -> CAV:
    """Train a CAV that points from the negative images towards the positives.

    The flattened activations (not normalised, as CAVlib) of the positives
    (label 0) and negatives (label 1) are fitted with
    `SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3,
    random_state=random_state)`, each sample weighted by its `weight`; the CAV
    is `-coef_[0] / |coef_[0]|`. Missing activations are computed in batches
    (with a progress bar for long lists) and cached in the `TrainingImage`s.

    Args:
        positive_images: images of the concept (any `CAVableImage`, or
            `TrainingImage` for weights and precomputed activations).
        negative_images: images without it (random images, or better, its
            opposite).
        model_layer: a CAVlib string (`"googlenet_4d"`, `"googlenet_5b"`,
            `"mobilenet_12d"`) or a `(model, layer_ref)` pair for any model.
        random_state: a fresh seeded `numpy.random.RandomState` (or an int) for
            bit-identical results with the same images in the same order
            (CAVlib's name, kept as the reference API).
        batch_size: images per forward pass (run by the engine, compiled once
            per model and layer; the model's `layer_outputs` must be
            traceable by TensorFlow).
        verbose: `"auto"` shows a progress bar from 5 batches on; 0, 1 or 2.
        seed: an integer seed, the library's name for `random_state` (give one
            or the other, not both).

    Returns:
        A `CAV` with a new UUID4 id, a unit-norm vector and empty metadata; for
        a pair, `model_layer` is `(Model instance, layer path)`.

    Raises:
        ValueError: an empty image list, activations of different lengths or
            with NaN/infinite values, an unknown `model_layer`, positives that
            cannot be told apart from the negatives (every positive activation
            equals a negative one and vice versa, within 1e-6 of their scale:
            the SVM would return a seed-dependent vector), both `seed` and
            `random_state`, or a degenerate (zero) solution.
        TypeError: image lists of the wrong type.

    Example:
        >>> from keras_interp.models import KerasModel
        >>> model = KerasModel(gap_dense())  # 8x8 images in [0, 1]
        >>> rng = np.random.default_rng(0)
        >>> bright = list(0.5 + 0.5 * rng.uniform(size=(6, 8, 8, 3)))
        >>> dark = list(0.5 * rng.uniform(size=(6, 8, 8, 3)))
        >>> cav = train_cav(positive_images=bright, negative_images=dark,
        ...                 model_layer=(model, "conv"), seed=0)
        >>> cav.vector.shape
        (256,)
        >>> cav.sort([dark[0], bright[0]], reverse=True)[0] is bright[0]
        True

    References:
        Kim et al., Interpretability Beyond Feature Attribution: Quantitative
        Testing with Concept Activation Vectors (TCAV), ICML 2018.
        arXiv:1711.11279. Google Research, CAVlib (mood-board-search), 2022.
    """
    from sklearn.linear_model import SGDClassifier

    random_state = seed_or_random_state(seed, random_state)
    positives = _training_images(positive_images, "positive_images")
    negatives = _training_images(negative_images, "negative_images")
    key = _key(model_layer)
    resolved = _fill_cache(positives + negatives, model_layer, batch_size, verbose)
    rows = [t.activations_for_model_layer(key) for t in positives + negatives]
    sizes = sorted({row.size for row in rows})
    if len(sizes) > 1:
        raise ValueError(
            f"All training activations must have the same length; got lengths "
            f"{sizes} for {model_layer!r}. {received('model_layer', model_layer)}"
        )
    x = np.stack(rows).astype(np.float64)  # as sklearn < 1.3 did for CAVlib
    _check_finite(x, len(positives))
    _check_separable(x[: len(positives)], x[len(positives) :], model_layer)
    y = np.array([0] * len(positives) + [1] * len(negatives))
    weights = np.array([t.weight for t in positives + negatives], np.float64)
    classifier = SGDClassifier(
        alpha=0.01, max_iter=1000, tol=1e-3, random_state=random_state
    )
    classifier.fit(x, y, sample_weight=weights)
    vector = -classifier.coef_[0]
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(
            "Training gave a zero vector: the positive and negative activations "
            "cannot be told apart (identical images, or all-zero weights). "
            f"{received('model_layer', model_layer)}"
        )
    if isinstance(model_layer, str) or resolved is None:
        resolved = model_layer  # CAVlib's strings stay strings
    return CAV(id=uuid.uuid4(), vector=vector / norm, model_layer=resolved)


def seed_or_random_state(seed: Any, random_state: Any) -> Any:
    """`random_state`, or `seed` (the library's name for it); not both."""
    if seed is None:
        return random_state
    if random_state is not None:
        raise ValueError(
            "Give `seed` or `random_state` (CAVlib's name), not both. "
            f"{received('seed', seed)}, random_state={random_state!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer. {received('seed', seed)}")
    if seed < 0:
        raise ValueError(
            f"`seed` must be a non-negative integer. {received('seed', seed)}"
        )
    return int(seed)


def _check_finite(x: np.ndarray, num_positives: int) -> None:
    """Raise naming the first image whose activation holds NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        first = int(bad[0])
        arg, index = (
            ("positive_images", first)
            if first < num_positives
            else ("negative_images", first - num_positives)
        )
        raise ValueError(
            f"The activations of {bad.size} training image(s) hold NaN or "
            f"infinite values, first `{arg}[{index}]`: a CAV cannot be trained "
            f"on them. {received(f'{arg}[{index}]', x[first])}"
        )


def _check_separable(
    positives: np.ndarray, negatives: np.ndarray, model_layer: Any
) -> None:
    """Raise if every positive row equals a negative row and vice versa.

    Two rows are equal when their distance is at most 1e-6 times the largest
    row norm: the SVM then has nothing to separate, and its vector would be
    set by the seed alone.
    """
    scale = max(float(np.linalg.norm(positives, axis=1).max()), 1e-30)
    scale = max(scale, float(np.linalg.norm(negatives, axis=1).max()))
    sq_p = np.einsum("ij,ij->i", positives, positives)
    sq_n = np.einsum("ij,ij->i", negatives, negatives)
    distances = sq_p[:, None] + sq_n[None, :] - 2.0 * positives @ negatives.T
    close = np.maximum(distances, 0.0) <= (1e-6 * scale) ** 2
    if close.any(axis=1).all() and close.any(axis=0).all():
        raise ValueError(
            "The positive and negative images cannot be told apart: each "
            "positive activation equals a negative one and each negative one a "
            f"positive one (at {model_layer!r}), so the CAV would depend only on "
            "the seed. Use different images for the concept and its "
            "counterexamples. "
            f"Received: positive_images={positives.shape[0]} images, "
            f"negative_images={negatives.shape[0]} images"
        )
