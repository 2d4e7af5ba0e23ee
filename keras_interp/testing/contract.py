"""The method contract table: every registered method, on tiny models, with
options small enough for tests. `tests/methods/test_contract.py` runs each
entry (and its `smooth`/`tta` wraps) over input kinds, batch sizes, indices and
compilation modes, and checks they all give the same numbers.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_interp import methods
from keras_interp.shortcuts import prepare

SIZE, CLASSES = 12, 3

#: Options that keep every method fast on a 12x12 image.
OPTIONS: dict[str, dict[str, Any]] = {
    "scorecam": {"max_channels": 4},
    "integrated_gradients": {"steps": 4},
    "occlusion": {"window": (4, 4), "stride": (4, 4)},
    "rise": {"num_masks": 8, "grid_size": 2, "seed": 0},
    "upsampled_activation": {"interpolation": "bilinear", "threshold": 0.2},
}

#: Wrappers applied to every method in the table (name -> method -> method).
WRAPPERS = {
    "plain": lambda method: method,
    "smooth": lambda method: methods.smooth(
        method, repetitions=3, noise=0.1, seed=0, batch_size=2
    ),
    "tta": lambda method: methods.tta(method, scales=(0.5,), hflip=True),
}


def _head(x, name: str = "logits", activation: str | None = None):
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dense(CLASSES, activation=activation, name=name)(x)


def flat_model(seed: int = 0) -> keras.Model:
    """conv(relu) -> conv(relu6) -> GAP -> Dense: a flat functional model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.ReLU(6.0, name="r2")(x)
    return keras.Model(inputs, _head(x), name="flat")


def nested_model(seed: int = 0) -> keras.Model:
    """The same layers with the convolutions in a nested Sequential backbone,
    a BatchNormalization, and a softmax head (exposed as logits)."""
    keras.utils.set_random_seed(seed)
    backbone = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(6.0, name="r2"),
        ],
        name="backbone",
    )
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    outputs = _head(backbone(inputs), name="predictions", activation="softmax")
    return keras.Model(inputs, outputs, name="nested")


MODELS = {"flat": flat_model, "nested": nested_model}


def case(name: str, model: keras.Model) -> tuple[Any, Any, dict[str, Any]]:
    """`(method, the model to give it, options)` for a table entry."""
    return methods.METHODS[name], prepare(model, name), dict(OPTIONS.get(name, {}))


def data(batch: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images `(batch, 12, 12, 3)` in [-1, 1] and indices `(batch, 1)`."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32")
    return x, rng.integers(0, CLASSES, (batch, 1)).astype("int32")
