"""Activations for concept vectors: CAVlib's `compute_activations`.

`model_layer` names a model and one of its layers: one of CAVlib's strings
(`"googlenet_4d"`, `"googlenet_5b"`, `"mobilenet_12d"`, the inception5h
GoogLeNet and MobileNet v1 frozen graphs of `keras_interp.models.zoo`) or a
`(model, layer_ref)` pair for any model (`KerasModel`, a frozen-graph `Model`,
or a raw Keras model, which is wrapped as `KerasModel(model)` with inputs in
[0, 1]).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
import PIL.Image

from keras_interp._validation import received

#: Anything CAVlib accepts as an image: a path (`str` or `os.PathLike`), an open
#: binary file, a PIL image or an RGB array `(H, W, 3)` (uint8, or float in
#: [0, 1]). Images are centre-cropped to a square and resized bilinearly.
CAVableImage = str | os.PathLike | IO[bytes] | PIL.Image.Image | np.ndarray

#: A CAVlib layer string, or a `(model, layer_ref)` pair.
ModelLayer = str | tuple

#: The length of a CAV on each of CAVlib's layers (224x224 inputs, NHWC).
CAVLIB_SIZES = {
    "googlenet_4d": 103_488,
    "googlenet_5b": 50_176,
    "mobilenet_12d": 25_088,
}


def compute_activations(
    image: CAVableImage, model_layer: ModelLayer = "googlenet_4d"
) -> np.ndarray:
    """The activation of one image at one layer, flattened in NHWC order.

    Args:
        image: a path, open binary file, PIL image or RGB array.
        model_layer: one of CAVlib's strings (`"googlenet_4d"`, `"googlenet_5b"`,
            `"mobilenet_12d"`) or a `(model, layer_ref)` pair (see
            `keras_interp.models.zoo.resolve_model_layer`).

    Returns:
        float32 1-D array (103,488 values for `"googlenet_4d"`).

    Raises:
        ValueError: an unknown `model_layer` or layer, or an unreadable image.

    Example:
        >>> from keras_interp.models import KerasModel
        >>> model = KerasModel(gap_dense())  # 8x8 images; "conv" is 8x8x4
        >>> photo = np.full((8, 8, 3), 0.5, "float32")
        >>> compute_activations(photo, (model, "conv")).shape
        (256,)

    References:
        Google Research, CAVlib (mood-board-search), `activations.py`, 2022.
    """
    model, layer = resolve(model_layer)
    return model.get_activation_for_image(image, layer)


def batch_activations(
    images: Any,
    model_layer: ModelLayer = "googlenet_4d",
    *,
    batch_size: int = 32,
    verbose: str | int = 0,
) -> np.ndarray:
    """The activations of many images at one layer, `(N, D)`, through the engine.

    The batched counterpart of `compute_activations`: the forward passes run
    as one compiled step of `keras_interp.explain` (one trace for every batch
    size), `batch_size` images at a time.

    Args:
        images: a float batch `(N, H, W, 3)` already prepared for the model
            (taken as it is), or a sequence of images of any supported kind
            (each prepared with the model's `prepare`).
        model_layer: as in `compute_activations`.
        batch_size: images per forward pass.
        verbose: `"auto"`, 0, 1 or 2, as `explain`.

    Returns:
        float32 `(N, D)`, each row flattened in NHWC order.

    Raises:
        ValueError: an unknown `model_layer` or layer, or empty or bad `images`.

    Example:
        >>> from keras_interp.models import KerasModel
        >>> model = KerasModel(gap_dense())  # 8x8 images; "conv" is 8x8x4
        >>> photos = np.full((5, 8, 8, 3), 0.5, "float32")
        >>> rows = batch_activations(photos, (model, "conv"), batch_size=2)
        >>> rows.shape, bool(np.allclose(rows[0], compute_activations(photos[0],
        ...                                                          (model, "conv"))))
        ((5, 256), True)
    """
    from keras_interp._validation import check_positive_int
    from keras_interp.concepts._batching import layer_activations

    model, layer = resolve(model_layer)
    return layer_activations(
        model,
        images,
        model.check_layer(layer),
        batch_size=check_positive_int(batch_size, "batch_size"),
        verbose=verbose,
    )


def resolve(model_layer: ModelLayer) -> tuple[Any, Any]:
    """`(Model instance, layer)`: `keras_interp.models.zoo.resolve_model_layer`."""
    from keras_interp.models.zoo import resolve_model_layer

    return resolve_model_layer(model_layer)


def cavlib_layers() -> Mapping[str, tuple[type, str]]:
    """CAVlib's strings: `{model_layer: (model class, layer name)}`."""
    from keras_interp.models.zoo import MODEL_LAYERS

    return MODEL_LAYERS


def check_model_layer(value: Any) -> ModelLayer:
    """A string as is (resolved when used); a pair resolved to `(Model, layer)`."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return resolve(tuple(value))
    raise TypeError(
        "`model_layer` must be one of CAVlib's strings ('googlenet_4d', "
        "'googlenet_5b', 'mobilenet_12d') or a (model, layer_ref) pair. "
        f"{received('model_layer', value)}"
    )


def file_layer(model: Any, layer: Any) -> str:
    """The string a `.cav` file stores for `(model, layer)`.

    CAVlib's string when the pair is one of CAVlib's (e.g. a `GooglenetModel`
    at `mixed4d` -> `"googlenet_4d"`), else the layer's name or path.
    """
    for name, (model_class, layer_name) in cavlib_layers().items():
        if isinstance(model, model_class) and layer == layer_name:
            return name
    if isinstance(layer, str):
        return layer
    keras_model = getattr(model, "keras_model", None)
    if keras_model is not None:
        from keras_interp.inspection import find_layer, iter_layers

        for path, candidate in iter_layers(keras_model):
            if candidate is layer:
                with contextlib.suppress(ValueError):
                    if find_layer(keras_model, path) is layer:
                        return path
    raise ValueError(
        f"The layer {getattr(layer, 'name', layer)!r} has no unique path in the "
        "model, so a CAV on it cannot be written to a file; rename the layer. "
        f"{received('layer', layer)}"
    )


def cavlib_layer_name(model_layer: str) -> str:
    """The layer a CAVlib string names in its model (`"googlenet_4d"` -> mixed4d)."""
    return cavlib_layers()[model_layer][1]


def describe_model(model: Any) -> dict[str, Any]:
    """What a `.cav` file records of a user model (not its weights)."""
    keras_model = getattr(model, "keras_model", None)
    name = getattr(keras_model, "name", None)
    if name is None and getattr(model, "model_path", None) is not None:
        name = os.path.basename(os.fspath(model.model_path))
    info = {"class": type(model).__name__}
    if isinstance(name, str):
        info["name"] = name
    info["input_value_range"] = [float(v) for v in model.input_value_range]
    info["image_size"] = int(model.image_size)
    return info
