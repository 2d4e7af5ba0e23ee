"""Score several methods with several metrics: `evaluate`, `plot_curves`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_interp._validation import check_one_of, check_positive_int, received
from keras_interp.metrics._common import MetricResult, check_inputs, explain_maps

#: Metrics that read the masks.
LOCALISATION = frozenset(
    {"pointing_game", "relevance_mass", "relevance_rank", "energy_pointing_game"}
)
#: Metrics that re-explain (they need the method, not only its maps).
NEEDS_METHOD = frozenset(
    {"model_randomization", "random_logit", "max_sensitivity", "average_stability"}
)


def _name(method: Any) -> str:
    if isinstance(method, str):
        return method
    return getattr(method, "__name__", repr(method))


def _metrics(metrics: Any) -> list[tuple[str, Callable, dict]]:
    from keras_interp.metrics import METRICS

    if isinstance(metrics, (str, Mapping)) or callable(metrics):
        metrics = [metrics]
    found = []
    for item in metrics:
        if isinstance(item, Mapping):
            for name, options in item.items():
                found.extend(
                    (n, f, {**o, **dict(options)}) for n, f, o in _metrics([name])
                )
            continue
        if callable(item):
            found.append((item.__name__, item, {}))
            continue
        if not isinstance(item, str) or item not in METRICS:
            raise ValueError(
                f"Unknown metric. Known: {', '.join(sorted(METRICS))}. "
                f"{received('metrics', item)}"
            )
        found.append((item, METRICS[item], {}))
    if not found:
        raise ValueError(f"`metrics` must not be empty. {received('metrics', metrics)}")
    return found


def evaluate(
    methods: Any,
    model: Any,
    x: Any,
    y: Any = None,
    *,
    metrics: Any,
    masks: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    verbose: str | int = "auto",
) -> Any:
    """A table of metric means: one row per method, one column per metric.

    Each method's maps are computed once and shared by the metrics that only
    read maps; sanity and robustness metrics re-explain with the method.

    Args:
        methods: a method (name, spec or function) or a list of them.
        model: the classifier.
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        metrics: metric names from `METRICS`, metric functions, or a dict
            `{name: options}` (e.g. `{"deletion": {"steps": 20}}`), or a list
            mixing these.
        masks: evidence masks `(B, H, W)` or boxes `(B, 4)` for localisation.
        batch_size: images (or perturbed copies) per forward pass.
        seed: seed given to every metric.
        verbose: `0` silent, `1` a progress bar, `"auto"` a bar from 2 steps.

    Returns:
        A `pandas.DataFrame` indexed by method name (`"method"`), with one
        float column per metric; the full `MetricResult`s are in
        `frame.attrs["results"][method][metric]`.

    Raises:
        ValueError: unknown metrics, localisation metrics without masks, or
            bad inputs (as each metric).

    Example:
        >>> from keras_interp.testing.models import gap_dense
        >>> model = gap_dense()  # a tiny CNN on 8x8 images, 3 classes
        >>> x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3))
        >>> masks = np.zeros((2, 8, 8), bool)
        >>> masks[:, 2:6, 2:6] = True  # where the evidence is
        >>> table = evaluate(["gradcam", "gradients"], model, x,
        ...                  metrics=["deletion", "pointing_game"], masks=masks,
        ...                  verbose=0)
        >>> table.index.tolist(), table.columns.tolist()
        (['gradcam', 'gradients'], ['deletion', 'pointing_game'])
        >>> table.attrs["results"]["gradcam"]["deletion"].curves.shape
        (2, 11)
    """
    import pandas as pd

    batch_size = check_positive_int(batch_size, "batch_size")
    check_one_of(verbose, ("auto", 0, 1, 2), "verbose")
    if isinstance(methods, str) or callable(methods):
        methods = [methods]
    methods = list(methods)
    if not methods:
        raise ValueError(f"`methods` must not be empty. {received('methods', methods)}")
    chosen = _metrics(metrics)
    if masks is None and any(name in LOCALISATION for name, _, _ in chosen):
        raise ValueError(
            "Localisation metrics need `masks` (B, H, W) or boxes (B, 4). "
            f"{received('masks', masks)}"
        )
    x, y = check_inputs(model, x, y)
    total = len(methods) * (len(chosen) + 1)
    if verbose == "auto":
        verbose = 1 if total >= 2 else 0
    bar = keras.utils.Progbar(total, verbose=verbose, unit_name="step")
    rows, results, done = {}, {}, 0
    for method in methods:
        name = _name(method)
        maps = explain_maps(method, model, x, y, batch_size)
        done += 1
        bar.update(done)
        row, kept = {}, {}
        for metric, function, options in chosen:
            kwargs = dict(method=method, maps=maps, batch_size=batch_size, seed=seed)
            if metric in LOCALISATION:
                kwargs["masks"] = masks
            result = function(model, x, y, **kwargs, **options)
            row[metric], kept[metric] = result.mean, result
            done += 1
            bar.update(done)
        rows[name], results[name] = row, kept
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "method"
    frame.attrs["results"] = results
    return frame


def plot_curves(
    results: Mapping[str, MetricResult] | Sequence[MetricResult],
    *,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Plot mean deletion/insertion (or ROAD) curves, one line per result.

    Args:
        results: `{label: MetricResult}` or a list of results with curves.
        ax: a matplotlib axis, or `None` for a new figure.
        title: the axis title (default: the first result's metric name).

    Returns:
        The matplotlib axis.

    Raises:
        ValueError: a result without curves.
    """
    import matplotlib.pyplot as plt

    if not isinstance(results, Mapping):
        results = {f"{r.name} {i}": r for i, r in enumerate(results)}
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for label, result in results.items():
        if result.curves is None:
            raise ValueError(
                f"Result {label!r} has no curves. {received('results', result)}"
            )
        axis = (
            result.axis
            if result.axis is not None
            else np.arange(result.curves.shape[1])
        )
        ax.plot(axis, result.curves.mean(0), label=f"{label} ({result.mean:.3f})")
    first = next(iter(results.values()))
    ax.set_title(title or first.name)
    ax.set_xlabel("fraction of pixels perturbed")
    ax.set_ylabel(first.info.get("score", "score"))
    ax.legend(fontsize="small")
    return ax
