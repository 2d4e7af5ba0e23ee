"""`MetricCallback`: explanation-quality metrics of a model as it trains."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_interp._validation import check_positive_int, received
from keras_interp.callbacks._base import TrainingCallback, class_labels, watched_images

__all__ = ["MetricCallback"]


class MetricCallback(TrainingCallback):
    """Log faithfulness and localisation metrics of explanations during `fit`.

    Every `every_n_epochs` epochs, `keras_interp.metrics.evaluate` scores the
    maps of `method` on the watched images with the current weights, and the
    callback writes each metric's mean over the images as the scalar
    `<method>/<metric>` to `<log_dir>/<name>` (step = the epoch): e.g. whether
    deletion falls and insertion rises as the model learns to rely on what
    its explanations show, or whether the pointing game reaches the known
    evidence (`masks`). Failures never stop training (see `ExplainCallback`).

    Args:
        images: the watched images, as `ExplainCallback`'s.
        targets: the classes explained `(N,)`, or `None` for the model's
            current top class.
        method: a method (name, spec or function), or a list of them.
        metrics: metric names of `keras_interp.metrics.METRICS` (e.g.
            `"deletion"`, `"insertion"`, `"pointing_game"`), functions, or a
            dict `{name: options}`, as `evaluate` takes them.
        log_dir: the folder of `keras.callbacks.TensorBoard(log_dir)`.
        every_n_epochs: log after epochs `0, n, 2n, ...`.
        masks: evidence masks `(N, H, W)` (or boxes `(N, 4)`) for the
            localisation metrics.
        name: the run's folder under `log_dir`.
        logger: `None`, `"wandb"`, `"mlflow"` or a tracker object.
        batch_size: images (or perturbed copies) per forward pass.
        seed: the seed of every metric (the same each epoch).
        max_failures: consecutive failures before the callback disables
            itself.

    Raises:
        ValueError: bad images, targets or masks, unknown metrics, or
            localisation metrics without masks.
        TypeError: an option of the wrong type.

    Example:
        >>> import tempfile
        >>> model = gap_dense()  # 8x8 images, 3 classes
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
        >>> x = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
        >>> y = np.arange(8) % 3
        >>> masks = np.zeros((4, 8, 8), bool)
        >>> masks[:, :4, :4] = True
        >>> callback = MetricCallback(
        ...     x[:4], y[:4], method="gradients", masks=masks,
        ...     metrics={"deletion": {"steps": 4}, "pointing_game": {}},
        ...     log_dir=tempfile.mkdtemp())
        >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
        >>> sorted(callback.scalars)
        ['gradients/deletion', 'gradients/pointing_game']
        >>> [epoch for epoch, _ in callback.scalars["gradients/deletion"]]
        [0, 1]

    References:
        Petsiuk et al., RISE: Randomized Input Sampling for Explanation of
        Black-box Models (deletion, insertion), BMVC 2018. arXiv:1806.07421.
        Zhang et al., Top-down Neural Attention by Excitation Backprop
        (pointing game), ECCV 2016. arXiv:1608.00507.
    """

    def __init__(
        self,
        images: Any,
        targets: Any = None,
        *,
        method: Any,
        metrics: Any,
        log_dir: str = "logs",
        every_n_epochs: int = 1,
        masks: Any = None,
        name: str = "metrics",
        logger: Any = None,
        batch_size: int = 32,
        seed: int = 0,
        max_failures: int = 3,
    ) -> None:
        from keras_interp import methods as registry
        from keras_interp import metrics as library

        super().__init__(
            log_dir=log_dir,
            every_n_epochs=every_n_epochs,
            name=name,
            logger=logger,
            max_failures=max_failures,
        )
        self._config = dict(
            images=images, targets=targets, method=method, metrics=metrics,
            log_dir=log_dir, every_n_epochs=every_n_epochs, masks=masks, name=name,
            logger=logger, batch_size=batch_size, seed=seed,
            max_failures=max_failures,
        )  # fmt: skip
        self.images, _ = watched_images(images)
        n = len(self.images)
        is_mode = isinstance(targets, str) and targets == "predicted"
        self.targets = (
            None if targets is None or is_mode else class_labels(targets, n, "targets")
        )
        methods = [method] if isinstance(method, str) or callable(method) else method
        if not isinstance(methods, (list, tuple)) or not methods:
            raise ValueError(
                "`method` must be a method or a list of them. "
                f"{received('method', method)}"
            )
        for spec in methods:
            registry.get(spec)  # fails early on an unknown name
        self.method = list(methods)
        names = [metrics] if isinstance(metrics, str) else metrics
        if isinstance(names, (list, tuple, dict)):
            unknown = [
                m for m in names if isinstance(m, str) and m not in library.METRICS
            ]
            if unknown or not names:
                raise ValueError(
                    f"`metrics` must name metrics of {sorted(library.METRICS)}. "
                    f"{received('metrics', metrics)}"
                )
        self.metrics = metrics
        if masks is not None:
            masks = np.asarray(masks)
            if len(masks) != n:
                raise ValueError(
                    f"`masks` must have one mask (or box) per image ({n}). "
                    f"{received('masks', masks)}"
                )
        self.masks = masks
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_positive_int(seed, "seed", allow_zero=True)
        self.history: list[tuple[int, Any]] = []

    def _log(self, epoch: int) -> None:
        from keras_interp.metrics import evaluate

        frame = evaluate(
            self.method, self.model, self.images, self.targets,
            metrics=self.metrics, masks=self.masks, batch_size=self.batch_size,
            seed=self.seed, verbose=0,
        )  # fmt: skip
        self.history.append((epoch, frame))
        for method, row in frame.iterrows():
            for metric, value in row.items():
                if np.isfinite(value):
                    self.sink.scalar(f"{method}/{metric}", float(value), epoch)
