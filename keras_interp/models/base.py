"""CAVlib's model interface, for any model: frozen graphs and Keras models.

A `Model` turns any image into the model's input exactly as CAVlib does
(centre crop to a square, bilinear resize, scale to `input_value_range`) and
returns activations of named layers, flattened in NHWC order; it also gives the
gradients TCAV needs. `KerasModel` wraps any Keras model; the frozen-graph
models (`GooglenetModel`, `MobilenetModel`, `FrozenGraphModel`) live in
`keras_interp.models.frozen` and `keras_interp.models.zoo`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_positive_int,
    received,
)
from keras_interp.images import crop_to_square_and_resize, load_image


class Model:
    """A model that maps images to the activations of named layers.

    Subclasses implement `output_layer_names`, `layer_outputs` and
    `logits_and_layer`; everything else (image preparation, flattening,
    batching) is shared.

    Args:
        model_path: where the model file is (subclasses that load files).
        input_value_range: `(low, high)`: an image in [0, 1] is fed as
            `x * (high - low) + low` (CAVlib: GoogLeNet `(-117, 138)`,
            MobileNet `(0, 1)`).

    References:
        Google Research, CAVlib (mood-board-search), `models.py`, 2022.
    """

    #: The square side images are cropped and resized to.
    image_size: int = 224

    def __init__(
        self, model_path: Any = None, input_value_range: tuple[float, float] = (0, 1)
    ) -> None:
        low, high = _check_range(input_value_range)
        self.model_path = model_path
        self.input_value_range = (low, high)
        self._lock = threading.Lock()

    # -- to implement -------------------------------------------------------
    @property
    def output_layer_names(self) -> list[str]:
        """The names `get_activation_for_image` accepts."""
        raise NotImplementedError

    def layer_outputs(self, x: tf.Tensor, layer_names: Sequence[str]) -> list:
        """Activations `(B, h, w, c)` of `layer_names` for prepared inputs `x`
        `(B, H, W, 3)` (already in `input_value_range`), in one forward pass."""
        raise NotImplementedError

    def logits_and_layer(
        self, x: tf.Tensor, layer_name: str
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """`(logits (B, K), activations)` such that a `tf.GradientTape`
        watching `x` can differentiate the logits w.r.t. the activations."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def check_layer(self, layer_name: str) -> str:
        """Return `layer_name` or raise CAVlib's ValueError('Unknown layer ...')."""
        if layer_name not in self.output_layer_names:
            raise ValueError(
                f"Unknown layer name {layer_name!r}; this model has "
                f"{', '.join(self.output_layer_names)}. "
                f"{received('layer_name', layer_name)}"
            )
        return layer_name

    def prepare(self, image: Any) -> np.ndarray:
        """Any image -> `(1, S, S, 3)` float32 in `input_value_range`.

        Path, `pathlib.Path`, open binary file, PIL image or array (uint8, or
        float in [0, 1]); greyscale and RGBA become RGB (CAVlib failed on
        them); centre crop and bilinear resize to `image_size` exactly as
        CAVlib (`images.crop_to_square_and_resize`).
        """
        pixels = load_image(image)
        if pixels.shape[:2] != (self.image_size, self.image_size):
            pixels = crop_to_square_and_resize(pixels, self.image_size)
        low, high = self.input_value_range
        return (np.asarray(pixels, np.float32) * (high - low) + low)[None]

    def get_multiple_activations_for_image(
        self, image: Any, layer_names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """One forward pass: `{layer: flattened activation (NHWC order)}`."""
        names = [self.check_layer(name) for name in layer_names]
        x = tf.constant(self.prepare(image))
        with self._lock:
            outputs = self.layer_outputs(x, names)
        return {
            n: np.asarray(o, np.float32).reshape(-1) for n, o in zip(names, outputs)
        }

    def get_activation_for_image(self, image: Any, layer_name: str) -> np.ndarray:
        """The activation of one layer for one image, flattened (NHWC)."""
        return self.get_multiple_activations_for_image(image, [layer_name])[layer_name]

    def activations(
        self,
        images: Sequence[Any],
        layer_name: str,
        *,
        batch_size: int = 32,
        verbose: str | int = "auto",
    ) -> np.ndarray:
        """Flattened activations `(N, D)` of many images, batched through the
        engine (`keras_interp.concepts.batch_activations`); `layer_outputs`
        must be traceable.

        Args:
            images: images of any supported kind.
            layer_name: one of `output_layer_names`.
            batch_size: images per forward pass.
            verbose: `"auto"` shows a progress bar from
                `AUTO_PROGRESS_MIN_STEPS` (5) batches on, as `explain`; 0, 1
                or 2.

        Returns:
            float32 `(N, D)`.
        """
        from keras_interp.concepts import batch_activations

        name = self.check_layer(layer_name)
        batch_size = check_positive_int(batch_size, "batch_size")
        images = list(images)
        if not images:
            return np.zeros((0, 0), np.float32)
        x = np.concatenate([self.prepare(im) for im in images])
        return batch_activations(
            x, (self, name), batch_size=batch_size, verbose=verbose
        )


def _check_range(value: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            "`input_value_range` must be a pair (low, high). "
            f"{received('input_value_range', value)}"
        ) from None
    if not low < high:
        raise ValueError(
            "`input_value_range` must have low < high. "
            f"{received('input_value_range', value)}"
        )
    return low, high


class KerasModel(Model):
    """Any Keras model (Keras 3 or tf_keras) behind CAVlib's interface.

    Layer names are any `inspection.find_layer` reference written as a
    string: a name, or a nested path `"backbone/block_16_project"`. The image
    size is read from the model's input shape (224 when it is not fixed).

    Args:
        keras_model: the model.
        input_value_range: how a [0, 1] image is scaled for it, e.g. `(-1, 1)`
            for MobileNetV2's preprocessing.

    Example:
        >>> from keras_interp.testing.models import gap_dense
        >>> model = KerasModel(gap_dense(), input_value_range=(-1, 1))
        >>> model.image_size  # from the model's input (8, 8, 3)
        8
        >>> photo = np.random.default_rng(0).uniform(size=(20, 30, 3))
        >>> model.get_activation_for_image(photo, "conv").shape  # 8 x 8 x 4
        (256,)
    """

    def __init__(
        self, keras_model: Any, input_value_range: tuple[float, float] = (0, 1)
    ) -> None:
        super().__init__(None, input_value_range)
        if not hasattr(keras_model, "layers"):
            raise TypeError(
                "`keras_model` must be a Keras model. "
                f"{received('keras_model', keras_model)}"
            )
        self.keras_model = keras_model
        shape = tuple(getattr(keras_model, "input_shape", None) or ())
        if len(shape) == 4 and shape[1] and shape[1] == shape[2]:
            self.image_size = int(shape[1])
        self._exposed: dict[tuple, Any] = {}

    @property
    def output_layer_names(self) -> list[str]:
        from keras_interp.inspection import iter_layers

        return [path for path, _ in iter_layers(self.keras_model)]

    def check_layer(self, layer_name: str) -> str:
        from keras_interp.inspection import find_layer

        find_layer(self.keras_model, layer_name, arg="layer_name")  # with hints
        return layer_name

    def _model(self, arguments: tuple[str, ...], logits: bool) -> Any:
        from keras_interp.inspection import expose

        key = (arguments, logits)
        if key not in self._exposed:
            self._exposed[key] = expose(
                weakref.proxy(self.keras_model),
                arguments=list(arguments),
                outputs=None if logits else [],
            )
        return self._exposed[key]

    def layer_outputs(self, x: tf.Tensor, layer_names: Sequence[str]) -> list:
        outputs = self._model(tuple(layer_names), logits=False)(x, training=False)
        return list(outputs)

    def logits_and_layer(self, x, layer_name):
        logits, activations = self._model((layer_name,), logits=True)(x, training=False)
        return logits, activations
