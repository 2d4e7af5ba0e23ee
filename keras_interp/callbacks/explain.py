"""`ExplainCallback`: explanation grids and their stability, logged during `fit`."""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_callable,
    check_positive_float,
    check_positive_int,
    received,
)
from keras_interp.callbacks import _render
from keras_interp.callbacks._base import (
    AlreadyReported,
    TrainingCallback,
    class_labels,
    watched_images,
)

__all__ = ["ExplainCallback"]


class ExplainCallback(TrainingCallback):
    """Log explanation grids of fixed images while a Keras model trains.

    Every `every_n_epochs` epochs (step = the epoch, as
    `keras.callbacks.TensorBoard`'s epoch curves) each method explains each
    watched image through `keras_interp.explain`, and the callback writes to
    `<log_dir>/<name>` (a run beside TensorBoard's `train` and `validation`):

    - image `grid`: a row per image (labelled with the explained class, its
      probability and the true class when known), the input then a column per
      method; every tile is coloured on one scale, stated in a colour bar;
    - scalars `<method>/rank_correlation`: the mean Spearman correlation of
      each map with the image's map at the previous logged epoch: it rises
      to 1 when the model's evidence settles;
    - with `masks`, scalars `<method>/pointing_game` (fraction of maps whose
      maximum lies in the mask) and `<method>/relevance_mass` (fraction of the
      positive map inside the mask), e.g. on the known-evidence task;
    - scalar `probability`: the mean probability of the explained classes.

    Without the `tensorboard` package the same grids go to PNG files
    (`<log_dir>/<name>/grid/step_XXXXXX.png`) and the scalars to
    `scalars.csv`, with one warning. Each method is compiled once by the engine
    and reused as the weights change (no retracing). Only epoch hooks run, so
    Keras keeps dispatching batch callbacks asynchronously. An exception never
    stops training: it becomes one warning naming the cause, a method failing
    `max_failures` times in a row is dropped, and the callback disables itself
    when every call fails that often. Under a `tf.distribute` strategy (the
    model's `distribute_strategy`), the images are spread over its replicas.

    Args:
        images: the images to watch, float `(N, H, W, C)` (numpy or tensor) as
            the model takes them, or a small `tf.data.Dataset` of images or
            `(images, labels)` pairs; at most 64.
        targets: the class explained per image: int `(N,)`; `None` or
            `"predicted"` for the model's current top class; `"true"` for
            `labels` (or the data set's labels).
        methods: a method name, spec (`"smooth(gradients, seed=0)"`) or
            function, or a sequence of them: one grid column each.
        log_dir: the folder of `keras.callbacks.TensorBoard(log_dir)`.
        every_n_epochs: log after epochs `0, n, 2n, ...`.
        layer: the layer explained by methods that take an exposed model
            (the CAM family); `None` for the input of the global pooling layer.
        postprocessing: `fn(maps, axis=...)` for every method; `None` uses each
            method's natural post-processing (e.g. `positive_normalize` for
            Grad-CAM), or `filters.normalize` when it has none.
        max_seconds: the time budget of one logging call; methods whose last
            measured cost would overrun it are skipped (their tiles say so, a
            `skipped` scalar counts them, the first skip warns), and the order
            rotates so the methods that fit are shown in turn. A method's
            first run traces it and its second run measures it, so the budget
            holds from the third logging call on. The fixed part of a call
            (one forward pass, drawing and writing the grid) is counted too,
            but never skipped. `None` for no limit.
        name: the run's folder under `log_dir`.
        logger: `None`, `"wandb"`, `"mlflow"`, or an object with
            `log_image(tag, image, step)` and `log_scalar(tag, value, step)`
            receiving the same grids and scalars.
        labels: the images' true classes `(N,)` (or one-hot), for
            `targets="true"` and the row labels.
        masks: bool `(N, H, W)`, the region each image's evidence should be in.
        class_names: names shown instead of class indices.
        batch_size: images per explaining step.
        tile_size: the side of each grid tile in pixels.
        max_failures: consecutive failures before a method (or the callback)
            is given up.

    Raises:
        ValueError: bad images, targets, labels, masks, or a bad option value.
        TypeError: an option of the wrong type.

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[
        ...     keras.callbacks.TensorBoard("logs"),
        ...     ExplainCallback(x[:8], methods=["gradcam", "gradients"],
        ...                     log_dir="logs"),
        ... ])
        >>> # tensorboard --logdir logs   (images tab: run "explanations")

    References:
        Meudec, tf-explain (`tf_explain/callbacks`), 2019: the callbacks this
        improves on. Selvaraju et al., Grad-CAM, ICCV 2017. arXiv:1610.02391.
    """

    def __init__(
        self,
        images: Any,
        targets: Any = None,
        *,
        methods: Any = ("gradcam",),
        log_dir: str = "logs",
        every_n_epochs: int = 1,
        layer: Any = None,
        postprocessing: Callable | None = None,
        max_seconds: float | None = None,
        name: str = "explanations",
        logger: Any = None,
        labels: Any = None,
        masks: Any = None,
        class_names: Sequence[str] | None = None,
        batch_size: int = 32,
        tile_size: int = 96,
        max_failures: int = 3,
    ) -> None:
        super().__init__(
            log_dir=log_dir,
            every_n_epochs=every_n_epochs,
            name=name,
            logger=logger,
            max_failures=max_failures,
        )
        self._config = dict(
            images=images, targets=targets, methods=methods, log_dir=log_dir,
            every_n_epochs=every_n_epochs, layer=layer,
            postprocessing=postprocessing, max_seconds=max_seconds, name=name,
            logger=logger, labels=labels, masks=masks, class_names=class_names,
            batch_size=batch_size, tile_size=tile_size, max_failures=max_failures,
        )  # fmt: skip
        from keras_interp import methods as registry

        self.images, data_labels = watched_images(images)
        n = len(self.images)
        self.labels = (
            data_labels if labels is None else class_labels(labels, n, "labels")
        )
        self.targets = self._check_targets(targets)
        self.methods = self._check_methods(methods, registry)
        if postprocessing is not None:
            check_callable(postprocessing, "postprocessing")
        self.postprocessing = postprocessing
        self.layer = layer
        self.max_seconds = (
            None
            if max_seconds is None
            else check_positive_float(max_seconds, "max_seconds")
        )
        self.masks = None if masks is None else self._check_masks(masks)
        self.class_names = (
            None if class_names is None else [str(c) for c in class_names]
        )
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.tile_size = check_positive_int(tile_size, "tile_size")
        self.skipped: list[tuple[int, list[str]]] = []
        self.history: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._previous: dict[str, np.ndarray] = {}
        self._estimates: dict[str, float] = {}
        self._traced: set[str] = set()
        self._overhead = 0.0
        self._dropped: set[str] = set()
        self._rotation = 0
        self._models: dict[Any, Any] = {}
        self._forward: Callable | None = None
        self._model_ref: Any = None

    # -- arguments ------------------------------------------------------------------
    def _check_targets(self, targets: Any) -> Any:
        if targets is None or (isinstance(targets, str) and targets == "predicted"):
            return "predicted"
        if isinstance(targets, str):
            if targets != "true":
                raise ValueError(
                    "`targets` must be class indices, None, 'predicted' or 'true'. "
                    f"{received('targets', targets)}"
                )
            if self.labels is None:
                raise ValueError(
                    "`targets='true'` needs `labels` (or a data set of (images, "
                    f"labels) pairs). {received('labels', None)}"
                )
            return self.labels
        return class_labels(targets, len(self.images), "targets")

    @staticmethod
    def _check_methods(methods: Any, registry: Any) -> dict[str, Callable]:
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
                spec
                if isinstance(spec, str)
                else getattr(function, "__name__", "method")
            )
            if title in resolved:
                raise ValueError(
                    f"`methods` names {title!r} twice. {received('methods', methods)}"
                )
            resolved[title] = function
        return resolved

    def _check_masks(self, masks: Any) -> np.ndarray:
        array = np.asarray(masks)
        if array.ndim == 4 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.shape != self.images.shape[:3]:
            raise ValueError(
                f"`masks` must be `(N, H, W)` like the images "
                f"{self.images.shape[:3]}. {received('masks', masks)}"
            )
        return array.astype(bool)

    # -- the model --------------------------------------------------------------------
    def _strategy(self) -> tf.distribute.Strategy | None:
        strategy = getattr(self.model, "distribute_strategy", None)
        if strategy is None or strategy.num_replicas_in_sync < 2:
            return None
        return strategy

    def _explained_model(self, title: str, method: Callable) -> Any:
        """The model `method` takes, built once per model (then cached)."""
        from keras_interp import methods as registry
        from keras_interp import shortcuts
        from keras_interp.inspection import expose

        if self._model_ref is None or self._model_ref() is not self.model:
            self._models.clear()
            self._forward = None
            self._model_ref = weakref.ref(self.model)
        if title not in self._models:
            if self.layer is not None and registry.needs_exposed(method):
                self._models[title] = expose(self.model, arguments=self.layer)
            else:
                self._models[title] = shortcuts.prepare(self.model, method)
        return self._models[title]

    def _probabilities(self) -> np.ndarray:
        """The model's class probabilities on the images `(N, K)` (softmax of
        logits; outputs already summing to one are kept)."""
        if self._forward is None:
            model = self.model
            self._forward = tf.function(lambda x: model(x, training=False))
        outputs = self._forward(tf.constant(self.images))
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[0]
        scores = np.asarray(outputs, np.float64).reshape(len(self.images), -1)
        if scores.shape[1] == 1:
            inside = ((scores >= 0) & (scores <= 1)).all()
            return scores if inside else 1 / (1 + np.exp(-scores))
        sums = scores.sum(axis=1)
        if (scores >= 0).all() and np.allclose(sums, 1, atol=1e-3):
            return scores
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def _postprocessing(self, method: Callable) -> Callable:
        from keras_interp import filters
        from keras_interp import methods as registry

        if self.postprocessing is not None:
            return self.postprocessing
        try:
            natural = registry.record(method).postprocessing
        except (ValueError, TypeError, AttributeError):
            natural = None
        return natural or filters.normalize

    # -- one logging call -----------------------------------------------------------
    def _log(self, epoch: int) -> None:
        from keras_interp.engine import explain

        start = time.perf_counter()
        probabilities = self._probabilities()
        if isinstance(self.targets, str):
            targets = probabilities.argmax(axis=1)
        else:
            targets = self.targets
        if targets.max() >= probabilities.shape[1]:
            raise ValueError(
                f"`targets` has class {int(targets.max())} but the model has "
                f"{probabilities.shape[1]} outputs. {received('targets', targets)}"
            )
        chosen = probabilities[np.arange(len(targets)), targets]
        indices = targets.astype(np.int32)[:, None]
        titles = [t for t in self.methods if t not in self._dropped]
        if not titles:
            raise AlreadyReported("every method failed repeatedly and was dropped")
        shift = self._rotation % len(titles)
        order = titles[shift:] + titles[:shift]
        self._rotation += 1
        maps: dict[str, np.ndarray | None] = dict.fromkeys(titles)
        notes: dict[str, str] = {}
        skipped = []
        for title in order:
            if self._over_budget(title, start):
                skipped.append(title)
                notes[title] = "skipped: time"
                continue
            method = self.methods[title]
            began = time.perf_counter()
            try:
                _, values = explain(
                    method,
                    self._explained_model(title, method),
                    self.images,
                    indices,
                    batch_size=self.batch_size,
                    postprocessing=self._postprocessing(method),
                    strategy=self._strategy(),
                    verbose=0,
                )
            except Exception as error:  # noqa: BLE001 - never stop training
                notes[title] = "failed"
                if self._guard(title, error, epoch):
                    self._dropped.add(title)
                continue
            self._succeeded(title)
            # The first run also traces: its cost says nothing of later runs.
            seconds = time.perf_counter() - began if title in self._traced else 0.0
            self._estimates[title] = seconds
            self._traced.add(title)
            maps[title] = values[..., 0]
        if all(values is None for values in maps.values()) and not skipped:
            raise AlreadyReported(f"no method could explain the images: {notes}")
        drawing = time.perf_counter()
        rows = [self._row_label(i, targets, chosen) for i in range(len(targets))]
        grid = _render.render_grid(
            self.images, maps, rows, tile_size=self.tile_size, notes=notes
        )
        self.sink.image("grid", grid, epoch)
        self.sink.scalar("probability", float(chosen.mean()), epoch)
        for title, values in maps.items():
            if values is not None:
                self._scalars(title, values, epoch)
        self._report_skipped(epoch, skipped)
        self._overhead = time.perf_counter() - drawing

    def _over_budget(self, title: str, start: float) -> bool:
        if self.max_seconds is None or title not in self._estimates:
            return False
        elapsed = time.perf_counter() - start
        needed = self._estimates[title] + self._overhead  # then draw and write
        return elapsed + needed > self.max_seconds

    def _scalars(self, title: str, values: np.ndarray, epoch: int) -> None:
        self.history.setdefault(title, []).append((epoch, values))
        previous = self._previous.get(title)
        if previous is not None:
            correlation = _render.rank_correlation(previous, values)
            if np.isfinite(correlation).any():
                mean = float(np.nanmean(correlation))
                self.sink.scalar(f"{title}/rank_correlation", mean, epoch)
        self._previous[title] = values
        if self.masks is not None:
            points = _render.pointing_game(values, self.masks)
            self.sink.scalar(f"{title}/pointing_game", float(points.mean()), epoch)
            mass = _render.relevance_mass(values, self.masks)
            if np.isfinite(mass).any():
                self.sink.scalar(
                    f"{title}/relevance_mass", float(np.nanmean(mass)), epoch
                )

    def _report_skipped(self, epoch: int, skipped: list[str]) -> None:
        self.sink.scalar("skipped", float(len(skipped)), epoch)
        if not skipped:
            return
        self.skipped.append((epoch, skipped))
        self.sink.text(
            "skipped_methods", f"max_seconds={self.max_seconds}: {skipped}", epoch
        )
        if len(self.skipped) == 1:
            warnings.warn(
                f"ExplainCallback {self.name!r}: max_seconds={self.max_seconds} "
                f"does not fit every method at epoch {epoch}; skipped {skipped}. "
                "The order rotates, so each method is shown in turn; see "
                "`callback.skipped` and the `skipped` scalar.",
                RuntimeWarning,
                stacklevel=3,
            )

    def _row_label(self, i: int, targets: np.ndarray, chosen: np.ndarray) -> str:
        def name(k: int) -> str:
            names = self.class_names
            return names[k] if names is not None and k < len(names) else str(k)

        lines = [f"#{i} class {name(int(targets[i]))}"[:16], f"p={chosen[i]:.2f}"]
        if self.labels is not None:
            lines.append(f"true {name(int(self.labels[i]))}"[:16])
        return "\n".join(lines)
