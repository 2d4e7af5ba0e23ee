"""keras-explainable's own explaining and meta tests, ported.

Their set-up: ResNet50V2(weights=None, classifier_activation=None) at 64x64,
batch 2, indices of shape (2, 1); logits (2, 1) and maps (2, 64, 64, 1).
(tests/unit/engine/explaining_test.py and tests/unit/methods/meta_test.py.)
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_interp as ki
from keras_interp import methods
from keras_interp.inspection import expose, get_logits_layer, layers_with_biases
from keras_interp.testing import models


@pytest.fixture(scope="module")
def resnet():
    return models.resnet50v2(size=64, classes=10)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
    y = rng.integers(0, 10, (2, 1))
    return x, y


def _check(logits, maps):
    assert logits.shape == (2, 1)
    assert maps.shape == (2, 64, 64, 1)
    assert np.isfinite(maps).all()


@pytest.mark.parametrize("name", ["cam", "gradcam", "gradcampp", "scorecam"])
def test_explain_cam_methods(resnet, data, name):
    x, y = data
    # keras-explainable builds the two-output model by hand.
    model = keras.Model(
        resnet.inputs, [resnet.output, resnet.get_layer("avg_pool").input]
    )
    options = {"max_channels": 8} if name == "scorecam" else {}
    logits, maps = ki.explain(methods.METHODS[name], model, x, y, verbose=0, **options)
    _check(logits, maps)
    # Numbers, not only shapes: the explained logits are the model's.
    expected = resnet(x).numpy()[np.arange(2), y[:, 0]]
    np.testing.assert_allclose(logits[:, 0], expected, rtol=1e-4, atol=1e-4)
    if name in ("cam", "gradcam"):
        # GAP -> Dense head: mean(CAM) + bias = logit; Grad-CAM = CAM / (h w).
        _, raw = ki.explain(name, model, x, y, resizing=False, verbose=0)
        area = raw.shape[1] * raw.shape[2]
        cam = raw if name == "cam" else raw * area
        bias = resnet.layers[-1].get_weights()[1][y[:, 0]]
        np.testing.assert_allclose(
            cam.mean(axis=(1, 2))[:, 0] + bias, expected, rtol=1e-3, atol=1e-3
        )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_explain_gradcam_compiled_and_xla(resnet, data, jit_compile):
    x, y = data
    _check(*ki.explain("gradcam", expose(resnet), x, y, jit_compile=jit_compile))


def test_explain_gradients(resnet, data):
    x, y = data
    logits, maps = ki.explain(methods.gradients, resnet, x, y, verbose=0)
    _check(logits, maps)
    # The mean absolute input gradient of the explained logit, by hand.
    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        chosen = tf.gather(resnet(images), y[:, 0], axis=1, batch_dims=1)
    expected = tf.reduce_mean(tf.abs(tape.gradient(chosen, images)), axis=-1)
    np.testing.assert_allclose(logits[:, 0], chosen, rtol=1e-4, atol=1e-4)
    scale = float(tf.reduce_max(expected))
    np.testing.assert_allclose(maps[..., 0], expected, atol=1e-4 * scale)


def test_explain_tta_cam(resnet, data):
    method = methods.tta(methods.cam, scales=[0.5], hflip=True)
    _check(*ki.explain(method, expose(resnet), *data, verbose=0))


def test_explain_smooth_gradients(resnet, data):
    method = methods.smooth(methods.gradients, repetitions=3, noise=0.1)
    _check(*ki.explain(method, resnet, *data, verbose=0))


def test_explain_full_gradients(resnet, data):
    logits = get_logits_layer(resnet)
    inters, biases = layers_with_biases(resnet, exclude=[logits])
    model = expose(resnet, inters, logits)
    _check(*ki.explain(methods.full_gradients, model, *data, biases=biases))


def test_meta_directly(resnet, data):
    x, y = tf.constant(data[0]), tf.constant(data[1])
    logits, maps = methods.tta(methods.cam, [0.5], hflip=True)(
        expose(resnet), x, indices=y
    )
    assert logits.shape == (2, 1) and maps.shape == (2, 2, 2, 1)
    logits, maps = methods.smooth(methods.gradients, 5, 0.2)(resnet, x, y)
    _check(logits, maps)


def test_shortcuts_expose_by_themselves(resnet, data):
    logits, maps = ki.gradcam(resnet, *data, verbose=0)
    _check(logits, maps)
    # The shortcut is explain(gradcam) on the exposed model, then
    # positive_normalize (whatever sign the random weights give the maps).
    small = ki.gradcam(resnet, *data, resizing=False, verbose=0)[1]
    raw_logits, raw = ki.explain(
        "gradcam", expose(resnet), *data, resizing=False, verbose=0
    )
    np.testing.assert_allclose(logits, raw_logits, rtol=1e-5)
    expected = ki.filters.positive_normalize(tf.constant(raw)).numpy()
    np.testing.assert_allclose(small, expected, atol=1e-5)
    np.testing.assert_allclose(
        maps, tf.image.resize(small, (64, 64)).numpy(), atol=1e-5
    )
    assert maps.min() >= 0 and maps.max() <= 1
