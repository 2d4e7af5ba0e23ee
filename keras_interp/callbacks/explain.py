"""`ExplainCallback`: explanation grids and their stability, logged during `fit`."""

from __future__ import annotations

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
from keras_interp.callbacks import _arguments, _budget, _render
from keras_interp.callbacks._base import (
    AlreadyReported,
    TrainingCallback,
    class_labels,
    watched_images,
)
from keras_interp.callbacks._budget import Budget
from keras_interp.engine.tracing import traced_function

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
        max_seconds: the time budget of one logging call. The first call
            measures every part (the forward pass and each method run twice,
            the first run tracing; the grid drawn at two sizes) and from the
            second call on a call starts only what fits: a method whose last
            measured cost would overrun is skipped (its tiles say so, the
            `skipped` scalar counts them, the first skip warns; the order
            rotates so the methods that fit are shown in turn); the grid is
            drawn with smaller tiles (`tile_size` halved, down to 16 px; the
            `tile_size` scalar says which) when the full one does not fit;
            and when not even the forward pass, the smallest grid and the
            scalars fit, the epoch is not logged (scalar `skipped_epoch`,
            one warning stating the measured costs). A call then exceeds
            `max_seconds` only by how much slower its parts run than at their
            last measurement (machine load), plus flushing the event file.
            `None` for no limit.
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

    Attributes:
        history: method title -> `[(epoch, maps (N, H, W))]` logged.
        skipped: `[(epoch, [method titles])]` skipped for `max_seconds`.
        skipped_epochs: the epochs not logged because not even the fixed
            part of a call fitted `max_seconds`.
        budget: the `max_seconds` bookkeeping (costs as last measured), or
            `None`.

    Raises:
        ValueError: bad images, targets, labels, masks, or a bad option value.
        TypeError: an option of the wrong type.

    Example:
        >>> import tempfile
        >>> model = gap_dense()  # 8x8 images, 3 classes
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
        >>> x = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
        >>> y = np.arange(8) % 3
        >>> logs = tempfile.mkdtemp()
        >>> callback = ExplainCallback(x[:2], methods=["gradcam", "gradients"],
        ...                            log_dir=logs, tile_size=32)
        >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[
        ...     keras.callbacks.TensorBoard(logs), callback])
        >>> [(epoch, maps.shape) for epoch, maps in callback.history["gradcam"]]
        [(0, (2, 8, 8)), (1, (2, 8, 8))]
        >>> [epoch for epoch, _ in callback.scalars["gradients/rank_correlation"]]
        [1]

        Then `tensorboard --logdir <logs>`: the images tab shows the run
        "explanations" beside Keras' "train".

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
        self.images, data_labels = watched_images(images)
        n = len(self.images)
        self.labels = (
            data_labels if labels is None else class_labels(labels, n, "labels")
        )
        self.targets = _arguments.check_targets(targets, self.labels, n)
        self.methods = _arguments.check_methods(methods)
        if postprocessing is not None:
            check_callable(postprocessing, "postprocessing")
        self.postprocessing = postprocessing
        self.layer = layer
        self.max_seconds = (
            None
            if max_seconds is None
            else check_positive_float(max_seconds, "max_seconds")
        )
        self.masks = (
            None if masks is None else _arguments.check_masks(masks, self.images.shape)
        )
        self.class_names = (
            None if class_names is None else [str(c) for c in class_names]
        )
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.tile_size = check_positive_int(tile_size, "tile_size")
        self.skipped: list[tuple[int, list[str]]] = []
        self.history: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._previous: dict[str, np.ndarray] = {}
        self.skipped_epochs: list[int] = []
        self.budget = None if self.max_seconds is None else Budget(self.max_seconds)
        self._measured: set[str] = set()
        self._dropped: set[str] = set()
        self._rotation = 0
        self._models: dict[Any, Any] = {}
        self._forward: Callable | None = None
        self._model_ref: Any = None

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
        """The model's class probabilities on the images `(N, K)`."""
        if self._forward is None:
            model = self.model
            self._forward = traced_function(lambda x: model(x, training=False))
        outputs = self._forward(tf.constant(self.images))
        return _arguments.probabilities(outputs, len(self.images))

    # -- one logging call -----------------------------------------------------------
    def _log(self, epoch: int) -> None:
        start = self.clock()
        budget = self.budget
        warm = budget is not None and not budget.ready  # measure every part
        titles = [t for t in self.methods if t not in self._dropped]
        if not titles:
            raise AlreadyReported("every method failed repeatedly and was dropped")
        sizes = _budget.tile_sizes(self.tile_size)

        def pixels(tile: int) -> int:
            height, width = _render.grid_size(len(self.images), 1 + len(titles), tile)
            return height * width

        smallest = pixels(sizes[-1])
        if budget is not None and budget.ready and not budget.epoch_fits(smallest):
            self._skip_epoch(epoch, titles, budget.describe(smallest))
            return
        probabilities = self._timed("forward", self._probabilities, warm)
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
        shift = self._rotation % len(titles)
        self._rotation += 1
        order = titles[shift:] + titles[:shift]
        maps, notes, skipped = self._explain(order, targets, epoch, start, smallest)
        if all(values is None for values in maps.values()) and not skipped:
            raise AlreadyReported(f"no method could explain the images: {notes}")
        maps = {title: maps[title] for title in titles}  # columns keep their order
        rows = [self._row_label(i, targets, chosen) for i in range(len(targets))]
        tile = self.tile_size
        if budget is not None and budget.ready:
            tile = budget.tile(self.clock() - start, sizes, pixels)
        began = self.clock()
        grid = _render.render_grid(self.images, maps, rows, tile_size=tile, notes=notes)
        self.sink.image("grid", grid, epoch)
        drawn = self.clock() - began
        if warm and len(sizes) > 1:  # a second size, for the grid's cost line
            began = self.clock()
            small = _render.render_grid(
                self.images, maps, rows, tile_size=sizes[-1], notes=notes
            )
            tf.io.encode_png(small)
            budget.fit_grid((pixels(tile), drawn), (smallest, self.clock() - began))
        elif budget is not None:
            budget.record_grid(pixels(tile), drawn)
        began = self.clock()
        self.sink.scalar("probability", float(chosen.mean()), epoch)
        for title, values in maps.items():
            if values is not None:
                self._scalars(title, values, epoch)
        self._report_skipped(epoch, skipped)
        if budget is not None:
            self.sink.scalar("tile_size", float(tile), epoch)
            self.sink.scalar("skipped_epoch", 0.0, epoch)
            budget.record("scalars", self.clock() - began)
            budget.ready = True

    def _timed(self, part: str, run: Callable, twice: bool) -> Any:
        """`run()`, timed as `part` of the budget; run twice when `twice` (the
        first run traces), timing the second."""
        if twice:
            run()
        began = self.clock()
        result = run()
        if self.budget is not None:
            self.budget.record(part, self.clock() - began)
        return result

    def _explain(
        self, order: list[str], targets: np.ndarray, epoch: int, start: float,
        smallest: int,
    ) -> tuple[dict[str, np.ndarray | None], dict[str, str], list[str]]:  # fmt: skip
        """Run the methods in `order` that fit the budget: `(maps, notes,
        skipped)`, maps `(N, H, W)` per title (`None` where not run)."""
        from keras_interp.engine import explain

        indices = targets.astype(np.int32)[:, None]
        maps: dict[str, np.ndarray | None] = dict.fromkeys(order)
        notes: dict[str, str] = {}
        skipped = []
        budget = self.budget
        for title in order:
            elapsed = self.clock() - start
            if budget is not None and budget.ready:
                if not budget.method_fits(title, elapsed, smallest):
                    skipped.append(title)
                    notes[title] = "skipped: time"
                    continue
            method = self.methods[title]

            def run(method: Callable = method, title: str = title) -> np.ndarray:
                return explain(
                    method, self._explained_model(title, method), self.images,
                    indices, batch_size=self.batch_size,
                    postprocessing=_arguments.postprocessing_for(
                        method, self.postprocessing
                    ),
                    strategy=self._strategy(), verbose=0,
                )[1]  # fmt: skip

            try:
                # The first run traces: with a budget, a second run measures.
                twice = budget is not None and title not in self._measured
                values = self._timed(title, run, twice)
            except Exception as error:  # noqa: BLE001 - never stop training
                notes[title] = "failed"
                if self._guard(title, error, epoch):
                    self._dropped.add(title)
                continue
            self._succeeded(title)
            self._measured.add(title)
            maps[title] = values[..., 0]
        return maps, notes, skipped

    def _skip_epoch(self, epoch: int, titles: list[str], costs: str) -> None:
        """Log nothing but the skip: the fixed part of a call does not fit."""
        self.skipped.append((epoch, list(titles)))
        self.skipped_epochs.append(epoch)
        self.sink.scalar("skipped", float(len(titles)), epoch)
        self.sink.scalar("skipped_epoch", 1.0, epoch)
        if len(self.skipped_epochs) == 1:
            warnings.warn(
                f"ExplainCallback {self.name!r}: max_seconds={self.max_seconds} is "
                f"below the fixed cost of a logging call ({costs}, as last "
                f"measured): epoch {epoch} is not logged, nor any epoch while that "
                "holds. Raise max_seconds, or log less often with every_n_epochs; "
                "see `callback.skipped_epochs`.",
                RuntimeWarning,
                stacklevel=3,
            )

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
