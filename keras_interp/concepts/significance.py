"""TCAV's significance test: a concept's CAVs against random CAVs.

The test follows `tensorflow/tcav`: one CAV per random set (concept vs random
`i`), a null of random-vs-random CAVs, and a two-sided t-test between the two
lists of TCAV scores (`keras_interp.concepts.directional`). Relative TCAV
trains concept A against concept B on bootstrap resamples instead.

The target images' logit gradients are computed once, and each image set's
activations are computed once and handed to `train_cav` as precomputed
`TrainingImage`s.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_interp._validation import check_positive_int, received
from keras_interp.concepts._batching import (
    ARRAY_TYPES,
    check_nonempty,
    layer_activations,
    logit_gradients,
)
from keras_interp.concepts.directional import as_model, cav_scores
from keras_interp.concepts.results import TCAVResult
from keras_interp.concepts.train import seed_or_random_state

__all__ = ["relative_tcav", "tcav"]


# -- arguments -------------------------------------------------------------------
def _check_alpha(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`alpha` must be a number. {received('alpha', value)}")
    if not 0 < value < 1:
        raise ValueError(
            f"`alpha` must be in the open interval (0, 1). {received('alpha', value)}"
        )
    return float(value)


def _random_state(value: Any) -> np.random.RandomState:
    if value is None or isinstance(value, np.random.RandomState):
        return value if value is not None else np.random.RandomState()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value >= 0:
            return np.random.RandomState(int(value))
    raise ValueError(
        "`random_state` must be None, a non-negative integer seed or a "
        f"numpy RandomState. {received('random_state', value)}"
    )


def _activations(model, images, layer, dim, batch_size, verbose, arg) -> np.ndarray:
    """Flattened activations `(N, dim)` of one set: precomputed `(N, D)`, a
    prepared batch, or images."""
    check_nonempty(images, arg)
    if isinstance(images, ARRAY_TYPES) and np.ndim(images) == 2:
        acts = np.asarray(images, np.float32)
        if acts.size == 0 or not np.isfinite(acts).all():
            raise ValueError(
                f"`{arg}` as activations must be non-empty and finite. "
                f"{received(arg, images)}"
            )
    else:  # a prepared float batch, or images prepared one by one
        acts = layer_activations(
            model, images, layer, batch_size=batch_size, verbose=verbose, arg=arg
        )
    if acts.shape[1] != dim:
        raise ValueError(
            f"`{arg}` must have {dim} activations per image (layer {layer!r}), "
            f"got {acts.shape[1]}. {received(arg, images)}"
        )
    return acts


def _train(model: Any, layer: str, positive, negative, seed: int) -> Any:
    from keras_interp.concepts.train import TrainingImage, train_cav

    pair = (model, layer)
    return train_cav(
        positive_images=[TrainingImage(activations={pair: a}) for a in positive],
        negative_images=[TrainingImage(activations={pair: a}) for a in negative],
        model_layer=pair,
        random_state=np.random.RandomState(seed),
    )


# -- the statistical test ------------------------------------------------------
def _t_test(concept: np.ndarray, random: np.ndarray) -> tuple[float, float]:
    """Two-sided `ttest_ind(concept, random)` with equal variances, as tcav."""
    from scipy import stats

    with warnings.catch_warnings():  # constant samples: NaN, reported as such
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(concept, random)
    return float(result.pvalue), float(result.statistic)


def _random_sets(random_image_sets: Any, counterpart: Any) -> list:
    sets = list(check_nonempty(random_image_sets, "random_image_sets"))
    for i, images in enumerate(sets):
        check_nonempty(images, f"random_image_sets[{i}]")
    if counterpart is not None:
        check_positive_int(counterpart, "random_counterpart", allow_zero=True)
        if counterpart >= len(sets):
            raise ValueError(
                f"`random_counterpart` must index `random_image_sets` "
                f"({len(sets)} sets). {received('random_counterpart', counterpart)}"
            )
    if len(sets) < (2 if counterpart is None else 3):
        raise ValueError(
            "`random_image_sets` must hold at least 2 sets (3 with a "
            "`random_counterpart`) for the t-test. "
            f"{received('random_image_sets', random_image_sets)}"
        )
    return sets


def _run(
    model,
    layer_name,
    class_index,
    concepts,
    random_image_sets,
    target_images,
    *,
    num_runs,
    random_counterpart,
    alpha,
    random_state,
    batch_size,
    verbose,
) -> TCAVResult:
    """`concepts`: `[(arg, images)]`, one set (trained against each random set:
    `tcav`) or two (A vs B on `num_runs` bootstrap resamples: `relative_tcav`)."""
    model = as_model(model)
    layer = model.check_layer(layer_name)
    class_index = check_positive_int(class_index, "class_index", allow_zero=True)
    alpha = _check_alpha(alpha)
    batch_size = check_positive_int(batch_size, "batch_size")
    for arg, images in concepts:
        check_nonempty(images, arg)
    sets = _random_sets(random_image_sets, random_counterpart)
    rng = _random_state(random_state)
    target_images = check_nonempty(target_images, "target_images")
    grads = logit_gradients(
        model, target_images, layer, class_index, batch_size, "target_images"
    )

    def activations(images: Any, arg: str) -> np.ndarray:
        dim = grads.shape[1]
        return _activations(model, images, layer, dim, batch_size, verbose, arg)

    positives = [activations(images, arg) for arg, images in concepts]
    randoms = [activations(s, f"random_image_sets[{i}]") for i, s in enumerate(sets)]
    n, counterpart = len(randoms), random_counterpart
    others = [i for i in range(n) if i != counterpart]
    # tcav's null: each random set against every other one, or the counterpart
    # alone against the others. Its seeds are drawn first: one seed gives the
    # same null to every concept tested on the same random sets.
    if counterpart is None:
        pairs = [(j, i) for j in range(n) for i in range(n) if i != j]
    else:
        pairs = [(counterpart, i) for i in others]
    null = [
        _train(model, layer, randoms[j], randoms[i], seed)
        for (j, i), seed in zip(pairs, rng.randint(2**31 - 1, size=len(pairs)))
    ]
    if len(positives) == 1:
        cavs = [
            _train(model, layer, positives[0], randoms[i], seed)
            for i, seed in zip(others, rng.randint(2**31 - 1, size=len(others)))
        ]
    else:
        (a, b), cavs = positives, []
        for seed in rng.randint(2**31 - 1, size=num_runs):
            draw = np.random.RandomState(seed)  # bootstrap resamples
            pick_a = draw.randint(len(a), size=len(a))
            pick_b = draw.randint(len(b), size=len(b))
            cavs.append(_train(model, layer, a[pick_a], b[pick_b], seed))
    random_scores, _ = cav_scores(grads, null)
    concept_scores, derivatives = cav_scores(grads, cavs)
    p_value, t_statistic = _t_test(concept_scores, random_scores)
    return TCAVResult(
        concept_scores=concept_scores,
        random_scores=random_scores,
        p_value=p_value,
        t_statistic=t_statistic,
        alpha=alpha,
        concept_derivatives=derivatives,
        cavs=tuple(cavs),
    )


def tcav(
    model: Any,
    layer_name: str,
    class_index: int,
    concept_images: Any,
    random_image_sets: Sequence[Any],
    target_images: Any,
    *,
    random_counterpart: int | None = None,
    alpha: float = 0.05,
    random_state: Any = None,
    batch_size: int = 32,
    verbose: str | int = "auto",
    seed: int | None = None,
) -> TCAVResult:
    """TCAV with tcav's statistical test against random concepts.

    For each random set `i`, a CAV `concept vs random_i` is trained (CAVlib's
    `train_cav`) and its TCAV score on `target_images` computed. The null is
    the scores of the CAVs `random_j vs random_i` for every ordered pair
    `j != i` (tcav's default), or `counterpart vs random_i` with a
    `random_counterpart` (the concept is then not trained against the
    counterpart, as in tcav). A two-sided `scipy.stats.ttest_ind` compares the
    two lists: the class is sensitive to the concept when `p < alpha`.

    Args:
        model: a `keras_interp.models.Model` (`KerasModel`, a frozen-graph
            model, ...); a raw Keras model is wrapped in `KerasModel` with
            input range `(0, 1)`.
        layer_name: the layer of the CAVs.
        class_index: the class (logit) tested.
        concept_images: examples of the concept: a sequence of images of any
            kind, a prepared float batch `(N, H, W, 3)` (in the model's input
            range), or precomputed activations `(N, D)`.
        random_image_sets: at least 2 sets of random images (3 with a
            counterpart), each in any form of `concept_images`; tcav uses 10
            to 500 sets of about 50 images.
        target_images: images of the class: a sequence of images or a prepared
            float batch.
        random_counterpart: index of the random set used as the only positive
            set of the null CAVs (`N - 1` null CAVs instead of `N (N - 1)`).
            Defaults to None (all ordered pairs).
        alpha: the significance level.
        random_state: None, an integer seed or a `numpy.random.RandomState`;
            a seed gives identical results, and the same null for every
            concept tested on the same random sets.
        batch_size: images per forward (and backward) pass.
        verbose: progress bars of the activations, as `explain`'s: `"auto"`
            (from 5 batches on), 0, 1 or 2.
        seed: an integer seed, the library's name for `random_state` (give one
            or the other).

    Returns:
        A `TCAVResult`: `concept_scores`, `random_scores`, `mean`, `std`,
        `random_mean`, `random_std`, `p_value`, `significant`.

    Raises:
        ValueError: an empty image set, too few random sets, an unknown
            `layer_name`, `class_index` out of range, activations of another
            size, or an invalid `alpha`, `random_state` or counterpart.
        TypeError: arguments of the wrong kind.

    Example:
        >>> model = linear()  # 6x6x3 images -> "flatten" -> Dense: logits
        >>> w = model.get_layer("logits").get_weights()[0][:, 1].reshape(6, 6, 3)
        >>> rng = np.random.default_rng(0)
        >>> def noise(n):
        ...     return rng.uniform(size=(n, 6, 6, 3)).astype("float32")
        >>> concept = noise(10) + np.sign(w)  # moved along logit 1's weights
        >>> randoms = [noise(10) for _ in range(6)]
        >>> result = tcav(model, "flatten", 1, concept, randoms, noise(8), seed=0)
        >>> print(result)
        TCAV score = 1.00 (+- 0.00), random was ...
        >>> result.significant
        True

    References:
        Kim et al., Interpretability Beyond Feature Attribution: Quantitative
        Testing with Concept Activation Vectors (TCAV), ICML 2018.
        arXiv:1711.11279. `tensorflow/tcav` (`tcav.py`, `utils.py`).
    """
    return _run(
        model,
        layer_name,
        class_index,
        [("concept_images", concept_images)],
        random_image_sets,
        target_images,
        num_runs=None,
        random_counterpart=random_counterpart,
        alpha=alpha,
        random_state=seed_or_random_state(seed, random_state),
        batch_size=batch_size,
        verbose=verbose,
    )


def relative_tcav(
    model: Any,
    layer_name: str,
    class_index: int,
    concept_a_images: Any,
    concept_b_images: Any,
    random_image_sets: Sequence[Any],
    target_images: Any,
    *,
    num_runs: int = 10,
    random_counterpart: int | None = None,
    alpha: float = 0.05,
    random_state: Any = None,
    batch_size: int = 32,
    verbose: str | int = "auto",
    seed: int | None = None,
) -> TCAVResult:
    """Relative TCAV: concept A against concept B, tested against random.

    The CAVs are trained with A's examples as positives and B's as negatives:
    a score near 1 says the class is more sensitive to A than to B. To test
    it, `num_runs` CAVs are trained on bootstrap resamples of A and B (with
    replacement, same sizes) and their scores compared with `tcav`'s
    random-vs-random null by the same t-test. (tcav's relative mode reports
    scores without a p-value; the bootstrap is ours.)

    Args:
        model: as in `tcav`.
        layer_name: the layer of the CAVs.
        class_index: the class (logit) tested.
        concept_a_images: examples of concept A, in any form `tcav` accepts.
        concept_b_images: examples of concept B, likewise.
        random_image_sets: the random sets of the null, as in `tcav`.
        target_images: images of the class, as in `tcav`.
        num_runs: bootstrap CAVs, at least 2.
        random_counterpart: as in `tcav`.
        alpha: the significance level.
        random_state: None, an integer seed or a `numpy.random.RandomState`.
        batch_size: images per forward (and backward) pass.
        verbose: progress bars of the activations.
        seed: an integer seed, the library's name for `random_state`.

    Returns:
        A `TCAVResult` whose `concept_scores` are the A-vs-B scores.

    Raises:
        ValueError: as `tcav`, or `num_runs` < 2.
        TypeError: arguments of the wrong kind.

    Example:
        >>> model = linear()  # 6x6x3 images -> "flatten" -> Dense: logits
        >>> w = model.get_layer("logits").get_weights()[0][:, 1].reshape(6, 6, 3)
        >>> rng = np.random.default_rng(0)
        >>> def noise(n):
        ...     return rng.uniform(size=(n, 6, 6, 3)).astype("float32")
        >>> up, down = noise(10) + np.sign(w), noise(10) - np.sign(w)
        >>> randoms = [noise(10) for _ in range(6)]
        >>> result = relative_tcav(model, "flatten", 1, up, down, randoms, noise(8),
        ...                        seed=0)
        >>> result.mean, result.significant
        (1.0, True)

    References:
        Kim et al., Interpretability Beyond Feature Attribution: Quantitative
        Testing with Concept Activation Vectors (TCAV), ICML 2018.
        arXiv:1711.11279 (relative CAVs).
    """
    if check_positive_int(num_runs, "num_runs") < 2:
        raise ValueError(
            f"`num_runs` must be at least 2 for the t-test. "
            f"{received('num_runs', num_runs)}"
        )
    concepts = [("concept_a_images", concept_a_images)]
    concepts.append(("concept_b_images", concept_b_images))
    return _run(
        model,
        layer_name,
        class_index,
        concepts,
        random_image_sets,
        target_images,
        num_runs=num_runs,
        random_counterpart=random_counterpart,
        alpha=alpha,
        random_state=seed_or_random_state(seed, random_state),
        batch_size=batch_size,
        verbose=verbose,
    )
