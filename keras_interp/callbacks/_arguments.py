"""`ExplainCallback`'s argument checks and the numbers it derives from the
model: pure functions of their arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from keras_interp._validation import received
from keras_interp.callbacks._base import class_labels


def check_targets(targets: Any, labels: np.ndarray | None, n: int) -> Any:
    """`"predicted"`, or the class index per image `(n,)`.

    Args:
        targets: class indices, `None`, `"predicted"` or `"true"`.
        labels: the images' true classes `(n,)`, or `None`.
        n: the number of images.

    Raises:
        ValueError: an unknown mode, `"true"` without labels, or indices
            that are not one per image.
    """
    if targets is None or (isinstance(targets, str) and targets == "predicted"):
        return "predicted"
    if isinstance(targets, str):
        if targets != "true":
            raise ValueError(
                "`targets` must be class indices, None, 'predicted' or 'true'. "
                f"{received('targets', targets)}"
            )
        if labels is None:
            raise ValueError(
                "`targets='true'` needs `labels` (or a data set of (images, "
                f"labels) pairs). {received('labels', None)}"
            )
        return labels
    return class_labels(targets, n, "targets")


def check_methods(methods: Any) -> dict[str, Callable]:
    """Grid column title -> method function, in the order given.

    Raises:
        ValueError: no method, an unknown method, or one title twice.
    """
    from keras_interp import methods as registry

    if isinstance(methods, str) or callable(methods):
        methods = [methods]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise ValueError(
            "`methods` must be a method (name, spec or function) or a non-empty "
            f"sequence of them. {received('methods', methods)}"
        )
    resolved: dict[str, Callable] = {}
    for spec in methods:
        function = registry.get(spec)
        title = (
            spec if isinstance(spec, str) else getattr(function, "__name__", "method")
        )
        if title in resolved:
            raise ValueError(
                f"`methods` names {title!r} twice. {received('methods', methods)}"
            )
        resolved[title] = function
    return resolved


def check_masks(masks: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Bool masks `(N, H, W)` for images of `shape` `(N, H, W, C)` (a trailing
    channel of 1 is dropped).

    Raises:
        ValueError: masks of another shape.
    """
    array = np.asarray(masks)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != tuple(shape[:3]):
        raise ValueError(
            f"`masks` must be `(N, H, W)` like the images {tuple(shape[:3])}. "
            f"{received('masks', masks)}"
        )
    return array.astype(bool)


def probabilities(outputs: Any, n: int) -> np.ndarray:
    """Class probabilities `(n, K)` float64 from a model's outputs on `n`
    images: kept when they already are probabilities (in [0, 1] for one
    unit, rows summing to one for several), else a sigmoid (one unit) or a
    softmax of the logits."""
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    scores = np.asarray(outputs, np.float64).reshape(n, -1)
    if scores.shape[1] == 1:
        inside = ((scores >= 0) & (scores <= 1)).all()
        return scores if inside else 1 / (1 + np.exp(-scores))
    sums = scores.sum(axis=1)
    if (scores >= 0).all() and np.allclose(sums, 1, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def postprocessing_for(method: Callable, postprocessing: Callable | None) -> Callable:
    """`postprocessing` if given, else the method's natural post-processing
    (its record's), else `filters.normalize`."""
    from keras_interp import filters
    from keras_interp import methods as registry

    if postprocessing is not None:
        return postprocessing
    try:
        natural = registry.record(method).postprocessing
    except (ValueError, TypeError, AttributeError):
        natural = None
    return natural or filters.normalize
