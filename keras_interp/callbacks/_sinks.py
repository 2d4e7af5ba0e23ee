"""Where the callbacks write: TensorBoard, PNG/CSV files, and optional trackers.

`Sink` writes one run's images and scalars. It uses `tf.summary` (TensorBoard
event files in `<log_dir>/<name>`, a run beside the `train` and `validation`
runs of `keras.callbacks.TensorBoard`) when the `tensorboard` package works,
and otherwise PNG files and a `scalars.csv` in the same folder. TensorFlow
2.21 no longer depends on `tensorboard`, and `tf.summary.image` then still
exists but raises `TBNotInstalledError` when called, so the sink finds out by
calling it once.

Trackers (`logger=`) receive the same images and scalars: `"wandb"`,
`"mlflow"`, or any object with `log_image(tag, image, step)` and
`log_scalar(tag, value, step)` (and optionally `flush(step)`).
"""

from __future__ import annotations

import csv
import importlib
import os
import pathlib
import warnings
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_interp._validation import received

__all__ = ["Sink", "tensorboard_available", "make_logger"]


def tensorboard_available() -> bool:
    """Whether `tf.summary` can write (the `tensorboard` package is installed).

    Calls `tf.summary.scalar` under a no-op writer: it raises
    `TBNotInstalledError` without `tensorboard`, whatever the writer.
    """
    try:
        with tf.summary.create_noop_writer().as_default():
            tf.summary.scalar("keras_interp_probe", 0.0, step=0)
    except Exception as error:  # noqa: BLE001 - the class is private to TF
        if type(error).__name__ == "TBNotInstalledError" or isinstance(
            error, ImportError
        ):
            return False
        raise
    return True


class _WandbLogger:
    """Weights & Biases: one `wandb.log` per step, images as `wandb.Image`."""

    def __init__(self) -> None:
        self.wandb = importlib.import_module("wandb")
        self.pending: dict[str, Any] = {}

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.pending[tag] = self.wandb.Image(image)

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        self.pending[tag] = value

    def flush(self, step: int) -> None:
        if self.pending:
            self.wandb.log({**self.pending, "epoch": step})
            self.pending = {}


class _MlflowLogger:
    """MLflow: metrics with `step`, images as artifacts named by tag and step."""

    def __init__(self) -> None:
        self.mlflow = importlib.import_module("mlflow")

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.mlflow.log_image(image, f"{tag}/step_{step:06d}.png")

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        self.mlflow.log_metric(tag, value, step=step)


def make_logger(logger: Any) -> Any:
    """`None`, `"wandb"`, `"mlflow"` or an object with `log_image`/`log_scalar`.

    Raises:
        ValueError: an unknown tracker name.
        ImportError: the tracker's package is not installed.
        TypeError: an object without `log_image` and `log_scalar`.
    """
    if logger is None:
        return None
    if isinstance(logger, str):
        adapters = {"wandb": _WandbLogger, "mlflow": _MlflowLogger}
        if logger not in adapters:
            raise ValueError(
                "`logger` must be 'wandb', 'mlflow', an object with `log_image` "
                f"and `log_scalar`, or None. {received('logger', logger)}"
            )
        try:
            return adapters[logger]()
        except ImportError as error:
            raise ImportError(
                f"`logger={logger!r}` needs the `{logger}` package: "
                f"pip install {logger}. ({error})"
            ) from error
    if not (callable(getattr(logger, "log_image", None))) or not callable(
        getattr(logger, "log_scalar", None)
    ):
        raise TypeError(
            "`logger` must have `log_image(tag, image, step)` and "
            f"`log_scalar(tag, value, step)` methods. {received('logger', logger)}"
        )
    return logger


class Sink:
    """Writes one callback's images and scalars, step by step.

    Args:
        log_dir: the folder shared with `keras.callbacks.TensorBoard`.
        name: the run's sub-folder (e.g. `"explanations"`).
        logger: a tracker from `make_logger`, or `None`.
        owner: the callback's class name, for the one warning.
    """

    def __init__(self, log_dir: str, name: str, logger: Any, owner: str) -> None:
        self.directory = pathlib.Path(log_dir) / name
        self.name = name
        self.logger = logger
        self.owner = owner
        self.writer = None
        self.use_tensorboard: bool | None = None
        self.scalars: dict[str, list[tuple[int, float]]] = {}

    def _open(self) -> None:
        if self.use_tensorboard is not None:
            return
        self.use_tensorboard = tensorboard_available()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.use_tensorboard:
            self.writer = tf.summary.create_file_writer(str(self.directory))
        else:
            warnings.warn(
                f"{self.owner}: the `tensorboard` package is not installed, so "
                "`tf.summary` cannot write; the grids are written as PNG files "
                f"and the scalars to scalars.csv under {self.directory} "
                "(pip install tensorboard for TensorBoard).",
                stacklevel=3,
            )

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Write a uint8 RGB image `(H, W, 3)` under `tag` at `step`."""
        self._open()
        if self.use_tensorboard:
            with self.writer.as_default(step=step):
                tf.summary.image(tag, image[None], max_outputs=1)
        else:
            path = self.directory / tag / f"step_{step:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
        if self.logger is not None:
            self.logger.log_image(f"{self.name}/{tag}", image, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Write one scalar under `tag` at `step`."""
        self._open()
        value = float(value)
        self.scalars.setdefault(tag, []).append((step, value))
        if self.use_tensorboard:
            with self.writer.as_default(step=step):
                tf.summary.scalar(tag, value)
        else:
            path = self.directory / "scalars.csv"
            new = not path.exists()
            with path.open("a", newline="", encoding="utf-8") as handle:
                out = csv.writer(handle)
                if new:
                    out.writerow(["step", "tag", "value"])
                out.writerow([step, tag, repr(value)])
        if self.logger is not None:
            self.logger.log_scalar(f"{self.name}/{tag}", value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        """Write a note (e.g. what was skipped) under `tag` at `step`."""
        self._open()
        if self.use_tensorboard:
            with self.writer.as_default(step=step):
                tf.summary.text(tag, text)
        else:
            with (self.directory / "notes.txt").open("a", encoding="utf-8") as f:
                f.write(f"step {step} {tag}: {text}{os.linesep}")

    def flush(self, step: int) -> None:
        """Flush the event file and the tracker's pending step."""
        if self.writer is not None:
            self.writer.flush()
        flush = getattr(self.logger, "flush", None)
        if callable(flush):
            flush(step)

    def close(self) -> None:
        """Close the event file; a later write opens a new one."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.use_tensorboard = None
