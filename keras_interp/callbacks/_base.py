"""What every training callback shares: the epoch schedule, the failure guard,
the sink, the watched images, and the `tf_keras` callback protocol.

One class serves Keras 3 and `tf_keras` models: it subclasses
`keras.callbacks.Callback` and adds the attributes `tf_keras`'s `CallbackList`
reads (`_implements_{train,test,predict}_batch_hooks`, `_supports_tf_logs`,
`_chief_worker_only`); without them `tf_keras` `fit` raises `AttributeError`.
Only epoch hooks are overridden: overriding a batch-end hook would turn off
Keras 3's asynchronous dispatch of batch callbacks for the whole `fit`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_interp._validation import check_positive_int, received
from keras_interp.callbacks._sinks import Sink, make_logger

#: The most images a callback watches (each is a row of the grid).
MAX_IMAGES = 64

_LOG = logging.getLogger("keras_interp.callbacks")


class AlreadyReported(RuntimeError):
    """A failed call whose causes were already warned about (e.g. every method
    failed, each with its own warning): counted, not warned again."""


class TrainingCallback(keras.callbacks.Callback):
    """Base of the library's callbacks: runs `_log(epoch)` every few epochs and
    turns its exceptions into one warning, never into a failed `fit`.

    Subclasses implement `_log(epoch)`, writing through `self.sink`, and may
    call `self._guard(key, error, epoch)` to survive a partial failure (one
    method of several). A key failing `max_failures` times in a row is given
    up; when the whole call fails that often, the callback disables itself.

    Args:
        log_dir: the folder shared with `keras.callbacks.TensorBoard`.
        every_n_epochs: log after epochs `0, n, 2n, ...` (step = the epoch).
        name: the run's sub-folder of `log_dir`.
        logger: `None`, `"wandb"`, `"mlflow"` or a tracker object.
        max_failures: consecutive failures before giving up.

    Attributes:
        disabled: whether the callback gave up (after repeated failures).
        seconds: `[(epoch, seconds)]`, the cost of each logging call.
        errors: `[(epoch, key, repr(error))]`, every failure caught.
        clock: the function giving the time in seconds that `seconds` and
            the time budget read (`time.perf_counter`; tests set a fake one).
    """

    _supports_tf_logs = False
    _chief_worker_only = None

    def __init__(
        self,
        *,
        log_dir: str = "logs",
        every_n_epochs: int = 1,
        name: str,
        logger: Any = None,
        max_failures: int = 3,
    ) -> None:
        super().__init__()
        if not isinstance(log_dir, (str, bytes)) and not hasattr(log_dir, "__fspath__"):
            raise TypeError(f"`log_dir` must be a path. {received('log_dir', log_dir)}")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise ValueError(
                f"`name` must be a non-empty folder name. {received('name', name)}"
            )
        self.every_n_epochs = check_positive_int(every_n_epochs, "every_n_epochs")
        self.max_failures = check_positive_int(max_failures, "max_failures")
        self.log_dir = str(log_dir)
        self.name = name
        self.sink = Sink(self.log_dir, name, make_logger(logger), type(self).__name__)
        self.disabled = False
        self.seconds: list[tuple[int, float]] = []
        self.errors: list[tuple[int, str, str]] = []
        self._failures: dict[str, int] = {}
        self.clock: Callable[[], float] = time.perf_counter

    @property
    def scalars(self) -> dict[str, list[tuple[int, float]]]:
        """Every scalar written so far: `{tag: [(epoch, value)]}`."""
        return self.sink.scalars

    # -- tf_keras's callback protocol (epoch hooks only) --------------------------
    def _implements_train_batch_hooks(self) -> bool:
        return False

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    # -- hooks --------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.disabled or epoch % self.every_n_epochs:
            return
        start = self.clock()
        try:
            self._log(int(epoch))
        except AlreadyReported as error:
            self._guard("callback", error, epoch, warn=False)
        except Exception as error:  # noqa: BLE001 - never stop training
            self._guard("callback", error, epoch)
        else:
            self._failures.pop("callback", None)
        try:
            self.sink.flush(int(epoch))
        except Exception as error:  # noqa: BLE001
            self._guard("callback", error, epoch)
        self.seconds.append((int(epoch), self.clock() - start))

    def on_train_end(self, logs: dict | None = None) -> None:
        try:
            self.sink.close()
        except Exception as error:  # noqa: BLE001
            self._guard("close", error, -1)

    def _log(self, epoch: int) -> None:
        raise NotImplementedError

    # -- failures -----------------------------------------------------------------
    def _guard(
        self, key: str, error: BaseException, epoch: int, *, warn: bool = True
    ) -> bool:
        """Record a failure of `key`; warn on its first; return whether `key`
        is now given up (the whole callback, for `key="callback"`)."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        self.errors.append((int(epoch), key, repr(error)))
        if warn and count == 1 and sum(k == key for _, k, _ in self.errors) == 1:
            what = "" if key == "callback" else f" ({key})"
            warnings.warn(
                f"{type(self).__name__} {self.name!r}{what} failed at epoch "
                f"{epoch}: {type(error).__name__}: {error}. Training continues; "
                f"it is given up after {self.max_failures} failures in a row.",
                RuntimeWarning,
                stacklevel=2,
            )
        if count < self.max_failures:
            return False
        if key == "callback":
            self.disabled = True
            _LOG.warning(
                "%s %r disabled after %d failures in a row (last: %r).",
                type(self).__name__,
                self.name,
                count,
                error,
            )
        return True

    def _succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    # -- configuration ------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (arrays included), for `from_config`."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrainingCallback:
        """A new callback from `get_config()`'s dict."""
        return cls(**config)


def watched_images(images: Any, arg: str = "images") -> tuple[np.ndarray, Any]:
    """The fixed images a callback watches, and labels if a data set has them.

    Args:
        images: float `(N, H, W, C)` numpy array or tensor, or a finite
            `tf.data.Dataset` of images or `(images, labels)` pairs, batched
            or not; at most `MAX_IMAGES` images.
        arg: the argument's name in messages.

    Returns:
        `(x, labels)`: float32 `(N, H, W, C)` and int `(N,)` labels or `None`.

    Raises:
        ValueError: not rank 4, integer or non-finite pixels, empty, or more
            than `MAX_IMAGES` images.
        TypeError: an unsupported data set structure.
    """
    labels = None
    if isinstance(images, tf.data.Dataset):
        parts, label_parts = [], []
        for element in images.take(MAX_IMAGES + 1):
            label = None
            if isinstance(element, (tuple, list)) and len(element) >= 2:
                element, label = element[0], element[1]
            if not isinstance(element, tf.Tensor):
                raise TypeError(
                    f"`{arg}` must yield image tensors or (images, labels) pairs. "
                    f"{received(arg, images)}"
                )
            value = element.numpy()
            single = value.ndim == 3
            parts.append(value[None] if single else value)
            if label is not None:
                label = np.asarray(label)
                label_parts.append(label[None] if single else label)
            if sum(len(p) for p in parts) > MAX_IMAGES:
                break
        if not parts:
            raise ValueError(f"`{arg}` must not be empty. {received(arg, images)}")
        x = np.concatenate(parts)
        if label_parts:
            labels = np.concatenate(label_parts)
    else:
        x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(
            f"`{arg}` must be images of rank 4 (N, H, W, C). {received(arg, images)}"
        )
    if x.dtype.kind != "f":
        raise ValueError(
            f"`{arg}` must be float images, scaled as the model expects them "
            f"(integer images usually need the model's own scaling). "
            f"{received(arg, images)}"
        )
    if not 0 < len(x) <= MAX_IMAGES:
        raise ValueError(
            f"`{arg}` must hold 1 to {MAX_IMAGES} images (each is a row of the "
            f"grid). {received(arg, images)}"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"`{arg}` must be finite. {received(arg, images)}")
    if labels is not None:
        labels = class_labels(labels, len(x), "labels")
    return x.astype(np.float32), labels


def class_labels(value: Any, n: int, arg: str) -> np.ndarray:
    """Class indices `(n,)` from ints `(n,)`/`(n, 1)` or one-hot `(n, K)`."""
    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] > 1:
        array = array.argmax(axis=1)
    elif array.ndim == 2:
        array = array[:, 0]
    if array.shape != (n,) or array.dtype.kind not in "iuf":
        raise ValueError(
            f"`{arg}` must hold one class index per image ({n}), or one-hot rows. "
            f"{received(arg, value)}"
        )
    if array.dtype.kind == "f" and not np.all(array == np.round(array)):
        raise ValueError(
            f"`{arg}` must be integer class indices. {received(arg, value)}"
        )
    if (array < 0).any():
        raise ValueError(f"`{arg}` must be non-negative. {received(arg, value)}")
    return array.astype(np.int64)
