"""Tiny models and methods with known answers for the metric tests."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.methods._base import scores


def linear_model(size: int = 4, channels: int = 1, classes: int = 2, seed: int = 0):
    """`logits = flatten(x) @ W + b`: removing pixel p changes logit c by
    `-W[p, c] x_p`, exactly."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((size, size, channels))
    dense = keras.layers.Dense(classes, name="logits")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights(
        [rng.normal(size=(size * size * channels, classes)), rng.normal(size=classes)]
    )
    return model


def edges(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """A map that ignores the model: the Sobel magnitude of the input."""
    logits, _ = scores(model, inputs, indices)
    gray = tf.reduce_mean(inputs, axis=-1, keepdims=True)
    sobel = tf.image.sobel_edges(gray)[..., 0, :]
    magnitude = tf.sqrt(tf.reduce_sum(sobel**2, axis=-1, keepdims=True) + 1e-12)
    return logits, tf.repeat(magnitude, tf.shape(logits)[1], axis=-1)


def image_itself(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """A map that ignores the model: the input's channel mean."""
    logits, _ = scores(model, inputs, indices)
    gray = tf.reduce_mean(inputs, axis=-1, keepdims=True)
    return logits, tf.repeat(gray, tf.shape(logits)[1], axis=-1)


@pytest.fixture(scope="module")
def linear():
    return linear_model()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
