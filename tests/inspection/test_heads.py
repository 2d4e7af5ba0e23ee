"""Heads: logits and pooling layers, and the biases FullGrad needs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_interp.inspection import (
    biases,
    get_global_pooling_layer,
    get_logits_layer,
    layers_with_biases,
)
from keras_interp.testing import models


def test_logits_and_pooling_layers_nested():
    model = models.functional_nested(size=32)
    assert get_logits_layer(model).name == "predictions"
    assert get_global_pooling_layer(model).name == "avg_pool"
    pooled = models.functional_nested_pooling(size=32)
    assert get_global_pooling_layer(pooled).name == "avg_pool"  # inside backbone
    assert get_logits_layer(pooled).name == "logits"


def test_conv_classifier_on_pooled_map_is_logits():
    mobilenet = keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3))
    assert get_logits_layer(mobilenet).name == "conv_preds"


@pytest.mark.parametrize("framework", [keras, tf_keras])
def test_batchnorm_bias_matches_the_layer(framework):
    rng = np.random.default_rng(0)
    for center, scale in [(True, True), (False, True), (True, False), (False, False)]:
        bn = framework.layers.BatchNormalization(
            center=center, scale=scale, epsilon=0.3
        )
        bn.build((None, 5))
        bn.set_weights([rng.uniform(0.5, 2, 5) for _ in bn.get_weights()])
        x = rng.normal(size=(4, 5)).astype("float32")
        (bias,) = biases([bn])
        out = bn(x, training=False).numpy()
        variance = bn.moving_variance.numpy()
        gamma = bn.gamma.numpy() if scale else 1.0
        np.testing.assert_allclose(
            out, x * gamma / np.sqrt(variance + 0.3) + bias, rtol=1e-5, atol=1e-5
        )


def test_layernorm_and_dense_biases():
    ln = keras.layers.LayerNormalization()
    ln.build((None, 3))
    ln.beta.assign([1.0, 2.0, 3.0])
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    dense.bias.assign([4.0, 5.0])
    no_center = keras.layers.LayerNormalization(center=False)
    no_center.build((None, 3))
    got = biases([ln, dense, no_center])
    np.testing.assert_allclose(got[0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[1], [4.0, 5.0])
    np.testing.assert_allclose(got[2], [0.0, 0.0, 0.0])
    no_bias = keras.layers.Dense(2, use_bias=False, name="nb")
    no_bias.build((None, 3))
    with pytest.raises(ValueError, match="Layer 'nb' has no bias"):
        biases([no_bias])


def test_layers_with_biases_excludes_logits():
    model = models.functional_nested(size=32)
    logits = get_logits_layer(model)
    layers, values = layers_with_biases(model, exclude=[logits])
    assert logits not in layers
    assert len(layers) == len(values) > 50
    assert all(isinstance(v, tf.Tensor) for v in values)
    kinds = {type(layer).__name__ for layer in layers}
    assert kinds == {"Conv2D", "BatchNormalization"}
    only = layers_with_biases(model, return_biases=False)
    assert logits in only


def test_head_errors():
    model = models.linear()
    with pytest.raises(ValueError, match="no global pooling or Flatten") as info:
        get_global_pooling_layer(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        )
    assert "arguments=" in str(info.value)
    assert get_global_pooling_layer(model).name == "flatten"
    with pytest.raises(ValueError, match="no logits layer: no layer has a kernel"):
        get_logits_layer(keras.Sequential([keras.Input((3,)), keras.layers.ReLU()]))
