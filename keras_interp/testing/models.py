"""Small models for tests, examples and benchmarks.

Each builder takes a `framework` (`keras` for Keras 3, or the `tf_keras`
module) so the same architecture can be built with both Keras versions.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def resnet50v2(framework: Any = keras, *, size: int = 64, classes: int = 10, **kw):
    """keras-explainable's test model: ResNet50V2 without weights or softmax."""
    return framework.applications.ResNet50V2(
        weights=None,
        classes=classes,
        input_shape=(size, size, 3),
        classifier_activation=None,
        **kw,
    )


def _backbone(framework: Any, size: int, pooling: str | None = None):
    return framework.applications.ResNet50V2(
        weights=None, include_top=False, input_shape=(size, size, 3), pooling=pooling
    )


def sequential_nested(framework: Any = keras, *, size: int = 64, classes: int = 10):
    """Sequential: nested backbone, GlobalAveragePooling2D, Dense('logits'),
    softmax Activation."""
    layers = framework.layers
    return framework.Sequential(
        [
            framework.Input((size, size, 3)),
            _backbone(framework, size),
            layers.GlobalAveragePooling2D(name="avg_pool"),
            layers.Dense(classes, name="logits"),
            layers.Activation("softmax", name="predictions"),
        ],
        name="sequential_nested",
    )


def functional_nested(framework: Any = keras, *, size: int = 64, classes: int = 10):
    """Functional: a nested backbone called on a new input, pooled, classified
    by a softmax Dense (as in transfer learning)."""
    layers = framework.layers
    inputs = framework.Input((size, size, 3), name="images")
    x = _backbone(framework, size)(inputs)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return framework.Model(inputs, outputs, name="functional_nested")


def functional_nested_pooling(
    framework: Any = keras, *, size: int = 64, classes: int = 10
):
    """Functional: a nested backbone with `pooling='avg'` inside it."""
    layers = framework.layers
    inputs = framework.Input((size, size, 3), name="images")
    x = _backbone(framework, size, pooling="avg")(inputs)
    outputs = layers.Dense(classes, name="logits")(x)
    return framework.Model(inputs, outputs, name="functional_nested_pooling")


def backbone_extended(framework: Any = keras, *, size: int = 64, classes: int = 10):
    """Functional: a backbone's output extended functionally (one flat graph)."""
    layers = framework.layers
    backbone = _backbone(framework, size)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    outputs = layers.Dense(classes, name="logits")(x)
    return framework.Model(backbone.input, outputs, name="backbone_extended")


#: keras-explainable's inspection test matrix.
INSPECTION_MATRIX = {
    "functional": resnet50v2,
    "sequential_nested": sequential_nested,
    "functional_nested": functional_nested,
    "functional_nested_pooling": functional_nested_pooling,
    "backbone_extended": backbone_extended,
}


def gap_dense(
    framework: Any = keras,
    *,
    size: int = 8,
    channels: int = 4,
    classes: int = 3,
    seed: int = 0,
    activation: str | None = None,
):
    """`Conv2D(relu) -> GlobalAveragePooling2D -> Dense`: CAM is exact here.

    For this model `logits = mean_hw(A) @ W + b`, so the CAM of class c is
    `A @ W[:, c]` and Grad-CAM equals CAM / (H' * W').
    """
    layers = framework.layers
    rng = np.random.default_rng(seed)
    inputs = framework.Input((size, size, 3), name="images")
    conv = layers.Conv2D(channels, 3, padding="same", activation="relu", name="conv")
    x = conv(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    dense = layers.Dense(classes, activation=activation, name="logits")
    outputs = dense(x)
    model = framework.Model(inputs, outputs, name="gap_dense")
    conv.set_weights(
        [rng.normal(size=(3, 3, 3, channels)), rng.normal(size=channels) * 0.1]
    )
    dense.set_weights([rng.normal(size=(channels, classes)), rng.normal(size=classes)])
    return model


def linear(framework: Any = keras, *, size: int = 6, classes: int = 2, seed: int = 0):
    """`Flatten -> Dense`: the gradient of logit c is the kernel column c."""
    layers = framework.layers
    rng = np.random.default_rng(seed)
    inputs = framework.Input((size, size, 3), name="images")
    dense = layers.Dense(classes, name="logits")
    outputs = dense(layers.Flatten(name="flatten")(inputs))
    model = framework.Model(inputs, outputs, name="linear")
    dense.set_weights(
        [rng.normal(size=(size * size * 3, classes)), rng.normal(size=classes)]
    )
    return model
