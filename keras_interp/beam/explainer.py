"""The object a Beam worker loads once: a model and its compiled explaining step.

`Explainer` has no Beam dependency: it is what `ExplainModelHandler.load_model`
returns, and what Beam shares across bundles (and, with `large_model=True`,
across a worker's processes, which is why its one entry point, `explain`,
takes and returns plain lists, dicts and numpy arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp import methods
from keras_interp._validation import received
from keras_interp.engine import compiled_function
from keras_interp.engine.tracing import traced_function
from keras_interp.images import load_image
from keras_interp.shortcuts import prepare

#: The `batch_size` given to methods that chunk their forward passes (Score-CAM,
#: occlusion, RISE) when the handler sets no `max_batch_size`; as `explain()`.
DEFAULT_CHUNK_SIZE = 32


def check_targets(targets: Any) -> str | tuple[int, ...] | None:
    """`"predicted"`, `None`, or the unit indices as a tuple of ints >= 0."""
    if targets is None or (isinstance(targets, str) and targets == "predicted"):
        return targets
    values = [targets] if isinstance(targets, (int, np.integer)) else targets
    if isinstance(values, (list, tuple, np.ndarray)) and len(values) > 0:
        if all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
            for v in values
        ):
            return tuple(int(v) for v in values)
    raise ValueError(
        '`targets` must be "predicted", None, a unit index >= 0 or a non-empty '
        f"list of them. {received('targets', targets)}"
    )


def resolve_method(
    method: str | Callable, postprocessing: Any, options: dict[str, Any]
) -> tuple[Callable, Callable | None]:
    """The method function and its post-processing; `options` are checked
    and put in canonical form in place (as `explain()` does).

    Raises:
        ValueError: an unknown method, option or `postprocessing` value.
    """
    function = methods.get(method)
    if options:
        options.update(methods.check_options(function, options))
    if isinstance(postprocessing, str) and postprocessing == "natural":
        try:
            return function, methods.record(function).postprocessing
        except ValueError:  # An unregistered method has no natural choice.
            return function, None
    if postprocessing is None or callable(postprocessing):
        return function, postprocessing
    raise ValueError(
        '`postprocessing` must be "natural", a function or None. '
        f"{received('postprocessing', postprocessing)}"
    )


class Explainer:
    """A model with its compiled explaining step, for batches of images.

    Args:
        model: the model (as loaded, not exposed).
        method: a method, name or spec.
        targets: `"predicted"`, a tuple of unit indices, or `None` (all units).
        top_k: predicted units explained with `"predicted"`.
        preprocessing: `fn(images) -> inputs`, or `None`.
        image_size: `(height, width)`, or `None` for the model's static input
            size (images are left as they are when it has none).
        resize_mode: `"crop"` or `"stretch"`.
        postprocessing: `"natural"`, `fn(maps, axis)` or `None`.
        activation: `"softmax"`, `"sigmoid"` or `None`.
        jit_compile: compile the step with XLA.
        chunk_size: `batch_size` for methods that chunk their forward passes.
        method_options: options of `method`.
    """

    def __init__(
        self,
        model: Any,
        method: str | Callable,
        *,
        targets: str | tuple[int, ...] | None = "predicted",
        top_k: int = 1,
        preprocessing: Callable | None = None,
        image_size: tuple[int, int] | None = None,
        resize_mode: str = "crop",
        postprocessing: Any = "natural",
        activation: str | None = "softmax",
        jit_compile: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        method_options: dict[str, Any] | None = None,
    ) -> None:
        options = dict(method_options or {})
        function, post = resolve_method(method, postprocessing, options)
        self.model = model
        self.prepared = prepare(model, method)
        self.function = compiled_function(
            function,
            self.prepared,
            postprocessing=post,
            resizing=True,
            jit_compile=jit_compile,
            **options,
        )
        self.targets = check_targets(targets)
        self.top_k = top_k
        self.preprocessing = preprocessing
        self.image_size = image_size or static_image_size(model)
        self.resize_mode = resize_mode
        self.activation = activation
        # As explain(): methods that chunk their forward passes read their
        # `batch_size` from this tensor's shape.
        self._chunk = tf.zeros((chunk_size, 0))
        self._scores = traced_function(self._forward, reduce_retracing=True)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        outputs = self.prepared(x, training=False)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def inputs(self, images: Sequence[Any]) -> np.ndarray:
        """The float32 model inputs `(B, H, W, C)` of a list of images."""
        arrays = [load_image(i, self.image_size, mode=self.resize_mode) for i in images]
        shapes = sorted({a.shape for a in arrays})
        if len(shapes) > 1:
            raise ValueError(
                f"The images of a batch have different sizes {shapes}: set "
                "`image_size` on the handler. "
                f"{received('image_size', self.image_size)}"
            )
        x = np.stack(arrays)
        if self.preprocessing is not None:
            x = np.asarray(self.preprocessing(x), np.float32)
        return x

    def explain(self, images: Sequence[Any]) -> list[dict[str, Any]]:
        """Explain a batch of images.

        Args:
            images: a list of images, as `load_image` reads them.

        Returns:
            One dict per image: `logits (K,)`, `probabilities (K,)`,
            `predicted_class`, `classes (L,)`, `explained_logits (L,)` and
            `maps (H, W, L)`.

        Raises:
            ValueError: images of different sizes with no `image_size`, or
                targets past the model's last unit.
        """
        x = tf.constant(self.inputs(images))
        logits = self._scores(x).numpy().astype(np.float32)
        units = logits.shape[-1]
        if self.targets == "predicted":
            if self.top_k > units:
                raise ValueError(
                    f"`top_k` must be at most the model's {units} units. "
                    f"{received('top_k', self.top_k)}"
                )
            order = np.argsort(-logits, axis=-1, kind="stable")
            classes = order[:, : self.top_k].astype(np.int32)
        elif self.targets is None:
            classes = np.tile(np.arange(units, dtype=np.int32), (len(logits), 1))
        else:
            if max(self.targets) >= units:
                raise ValueError(
                    f"`targets` must be below the model's {units} units. "
                    f"{received('targets', self.targets)}"
                )
            classes = np.tile(np.asarray(self.targets, np.int32), (len(logits), 1))
        indices = None if self.targets is None else tf.constant(classes)
        explained, maps = self.function(x, indices, self._chunk)
        explained, maps = explained.numpy(), maps.numpy()
        probabilities = _activate(logits, self.activation)
        return [
            {
                "logits": logits[i],
                "probabilities": probabilities[i],
                "predicted_class": int(np.argmax(logits[i])),
                "classes": classes[i],
                "explained_logits": explained[i],
                "maps": maps[i],
            }
            for i in range(len(logits))
        ]


def static_image_size(model: Any) -> tuple[int, int] | None:
    """The `(height, width)` of a model's first input, if static."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    shape = tuple(inputs[0].shape)
    if len(shape) == 4 and all(isinstance(s, int) for s in shape[1:3]):
        return int(shape[1]), int(shape[2])
    return None


def _activate(logits: np.ndarray, activation: str | None) -> np.ndarray:
    values = logits.astype(np.float64)
    if activation == "softmax":
        values = np.exp(values - values.max(axis=-1, keepdims=True))
        values = values / values.sum(axis=-1, keepdims=True)
    elif activation == "sigmoid":
        values = 0.5 * (1 + np.tanh(0.5 * values))  # no overflow for large |x|
    return values.astype(np.float32)
