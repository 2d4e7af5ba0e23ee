"""Recipro-CAM: the analytic GAP + Dense case, a deeper head checked against
running its layers by hand, compilation, and errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp import expose
from keras_interp.methods.reciprocam import reciprocam
from keras_interp.testing.contract import assert_method_contract
from keras_interp.testing.models import gap_dense


def test_gap_dense_head_is_cam_over_area_plus_bias():
    # Features A (8x8xC) kept at (i, j) only: GAP gives A[i, j] / 64, so the
    # logit of class l is A[i, j] @ W[:, l] / 64 + b_l.
    model = gap_dense(size=8, channels=4, classes=3)
    model.get_layer("logits").bias.assign([0.5, -1.0, 2.0])
    exposed = expose(model)
    x = tf.random.stateless_normal((2, 8, 8, 3), (0, 1))
    scores, maps = reciprocam(exposed, x, batch_size=5)
    logits, features = exposed(x)
    kernel = model.get_layer("logits").kernel.numpy()
    want = np.einsum("bhwc,cl->bhwl", features, kernel) / 64 + [0.5, -1.0, 2.0]
    assert maps.shape == (2, 8, 8, 3) and maps.dtype == tf.float32
    np.testing.assert_allclose(maps, want, atol=1e-5)
    np.testing.assert_allclose(scores, logits, atol=1e-6)


def test_indices_and_compiled():
    exposed = expose(gap_dense(size=6))
    x = tf.random.stateless_normal((2, 6, 6, 3), (0, 2))
    _, every = reciprocam(exposed, x)
    run = tf.function(lambda x: reciprocam(exposed, x, [[2], [0]], batch_size=7))
    _, chosen = run(x)
    np.testing.assert_allclose(chosen[0, ..., 0], every[0, ..., 2], atol=1e-6)
    np.testing.assert_allclose(chosen[1, ..., 0], every[1, ..., 0], atol=1e-6)


def test_deeper_head_equals_running_it_by_hand():
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inputs = keras.Input((10, 10, 3))
    early = layers.Conv2D(4, 3, padding="same", name="early")(inputs)
    features = layers.Conv2D(5, 3, strides=2, padding="same", name="features")(early)
    skip = layers.Conv2D(5, 1, strides=2, name="skip")(early)  # not in the head
    x = layers.Add(name="add")([layers.ReLU(name="relu")(features), skip])
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="after")(x)
    x = layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="out")(x))
    exposed = expose(model, arguments="features")
    images = tf.random.stateless_normal((1, 10, 10, 3), (0, 3))
    _, maps = reciprocam(exposed, images)
    feats = model.get_layer("features")(model.get_layer("early")(images))
    skipped = model.get_layer("skip")(model.get_layer("early")(images))
    for i, j in [(0, 0), (2, 3), (4, 4)]:
        masked = feats * tf.one_hot(i * 5 + j, 25, dtype=tf.float32)[
            None, :, None
        ].numpy().reshape(1, 5, 5, 1)
        x = model.get_layer("add")([model.get_layer("relu")(masked), skipped])
        x = tf.reduce_max(model.get_layer("after")(x), axis=(1, 2))
        dense = model.get_layer("out")
        logits = x @ dense.kernel + dense.bias  # the exposed logits: no softmax
        np.testing.assert_allclose(maps[0, i, j], logits[0], atol=1e-5)


def test_errors():
    model = gap_dense()
    with pytest.raises(ValueError, match="exposed model"):
        reciprocam(model, tf.zeros((1, 8, 8, 3)))
    # (-2, -1) is channels first (tests/engine/test_model_kinds.py); these are
    # no image layout.
    for axes in [(-3, -1), (0, -1), (-2,)]:
        with pytest.raises(ValueError, match=r"must be \(-3, -2\).*Received"):
            reciprocam(expose(model), tf.zeros((1, 8, 8, 3)), spatial_axis=axes)
    with pytest.raises(ValueError, match="batch_size"):
        reciprocam(expose(model), tf.zeros((1, 8, 8, 3)), batch_size=0)


def test_method_contract():
    assert_method_contract("reciprocam")
