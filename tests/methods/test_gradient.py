"""Gradient methods on tiny models whose answers are known by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import expose
from keras_interp.methods.gradient import (
    full_gradients,
    full_gradients_model,
    gradients,
    input_x_gradient,
    integrated_gradients,
)
from keras_interp.testing import models
from keras_interp.testing.compilation import assert_compiles_alike


def _x(batch=2, size=6, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(size=(batch, size, size, channels)), tf.float32)


def _set(layer, rng, scale=0.5):
    layer.set_weights([rng.normal(size=w.shape) * scale for w in layer.get_weights()])


def smooth_conv(seed=0):
    """Conv(tanh) -> Conv(softplus, stride 2) -> GAP -> Dense: smooth, nonlinear."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((6, 6, 3))
    conv1 = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")
    conv2 = keras.layers.Conv2D(4, 3, 2, padding="same", activation="softplus")
    dense = keras.layers.Dense(3, name="logits")
    x = conv2(conv1(inputs))
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(x)))
    for layer in (conv1, conv2, dense):
        _set(layer, rng)
    return model


def conv_bn_dense(seed=0):
    """conv -> BatchNormalization -> ReLU -> conv2(relu, stride 2) -> GAP -> Dense."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((6, 6, 3), name="images")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn", epsilon=1e-3)(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(5, 3, 2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    for name in ("conv", "conv2", "logits"):
        _set(model.get_layer(name), rng)
    bn = model.get_layer("bn")
    gamma, beta, mean, var = (rng.normal(size=4) for _ in range(4))
    bn.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    return model


class Subclassed(keras.Model):
    """The linear model written as a subclassed model (no layer graph)."""

    def __init__(self, kernel, bias):
        super().__init__()
        self.dense = keras.layers.Dense(kernel.shape[1])
        self.dense.build((None, kernel.shape[0]))
        self.dense.set_weights([kernel, bias])

    def call(self, x):
        return self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))


@pytest.fixture(scope="module")
def linear():
    return models.linear(size=6, classes=2)


def _kernel(model):
    return model.get_layer("logits").get_weights()


# ------------------------------------------------------------------ analytic
def test_gradients_of_a_linear_model_are_the_kernel(linear):
    kernel, _ = _kernel(linear)
    logits, maps = gradients(linear, _x(), [[1], [0]])
    assert logits.shape == (2, 1) and maps.shape == (2, 6, 6, 1)
    for b, unit in enumerate((1, 0)):
        expected = np.abs(kernel[:, unit]).reshape(6, 6, 3).mean(-1)
        np.testing.assert_allclose(maps[b, ..., 0], expected, rtol=1e-6)
    _, raw = gradients(linear, _x(), gradient_filter=None)
    np.testing.assert_allclose(raw[0], kernel.reshape(6, 6, 3, 2).mean(2), rtol=1e-5)


def test_input_x_gradient_of_a_linear_model(linear):
    kernel, bias = _kernel(linear)
    x = _x()
    logits, maps = input_x_gradient(linear, x)
    expected = np.einsum("bhwc,hwcl->bhwl", x, kernel.reshape(6, 6, 3, 2))
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(maps, (1, 2)), logits - bias, atol=1e-5)


@pytest.mark.parametrize("method", [gradients, input_x_gradient, integrated_gradients])
def test_indices_batching_and_subclassed_models(linear, method):
    x = _x(3)
    indices = tf.constant([[1, 0], [0, 0], [1, 1]])
    logits_all, maps_all = method(linear, x)
    logits, maps = method(linear, x, indices)
    np.testing.assert_allclose(logits, tf.gather(logits_all, indices, batch_dims=1))
    expected = tf.transpose(
        tf.gather(tf.transpose(maps_all, [0, 3, 1, 2]), indices, batch_dims=1),
        [0, 2, 3, 1],
    )
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    for b in range(3):  # batched == per sample
        _, single = method(linear, x[b : b + 1], indices[b : b + 1])
        np.testing.assert_allclose(single[0], maps[b], rtol=1e-5, atol=1e-6)
    subclassed = Subclassed(*_kernel(linear))
    sub_logits, sub_maps = method(subclassed, x, indices)
    np.testing.assert_allclose(sub_logits, logits, rtol=1e-5)
    np.testing.assert_allclose(sub_maps, maps, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_of_a_linear_model_is_exact(linear):
    x = _x()
    _, ixg = input_x_gradient(linear, x)
    logits, maps = integrated_gradients(linear, x, steps=3)
    np.testing.assert_allclose(maps, ixg, rtol=1e-5, atol=1e-6)
    baseline = np.full((6, 6, 3), 0.7, np.float32)
    for base in (0.7, baseline, baseline[None], np.stack([baseline] * 2)):
        _, maps = integrated_gradients(linear, x, baseline=base, steps=2)
        base_logits = linear(np.broadcast_to(baseline, (2, 6, 6, 3)))
        np.testing.assert_allclose(
            np.sum(maps, (1, 2)), logits - base_logits, rtol=1e-4, atol=1e-5
        )


def test_integrated_gradients_completeness_on_a_nonlinear_model():
    model = smooth_conv()
    x = _x(3, seed=1) * 2
    baseline = _x(1, seed=5)[0] * 0.3
    logits, maps = integrated_gradients(model, x, baseline=baseline, steps=64)
    difference = logits - model(tf.broadcast_to(baseline, x.shape))
    assert np.min(np.abs(difference)) > 0.1  # a real test, not 0 == 0
    np.testing.assert_allclose(np.sum(maps, (1, 2)), difference, rtol=0.01)
    _, coarse = integrated_gradients(model, x, baseline=baseline, steps=2)
    coarse_error = np.abs(np.sum(coarse, (1, 2)) - difference)
    assert np.max(coarse_error) > 10 * np.max(np.abs(np.sum(maps, (1, 2)) - difference))


@pytest.mark.parametrize("batch_size", [1, 5, 48, 1000])
def test_integrated_gradients_chunking_is_invisible(batch_size):
    model = smooth_conv()
    x, indices = _x(3), tf.constant([[0, 2], [1, 1], [2, 0]])
    _, reference = integrated_gradients(model, x, indices, steps=16)
    chunked = tf.function(
        lambda x, i: integrated_gradients(model, x, i, steps=16, batch_size=batch_size)
    )
    np.testing.assert_allclose(chunked(x, indices)[1], reference, rtol=1e-5, atol=1e-6)
    _, eager = integrated_gradients(model, x, indices[:, :1], steps=4, batch_size=5)
    _, unchunked = integrated_gradients(model, x, indices[:, :1], steps=4)
    np.testing.assert_allclose(eager, unchunked, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch_size", [5, 100])
def test_integrated_gradients_takes_a_tensor_batch_size(batch_size):
    model = smooth_conv()
    x, indices = _x(3), tf.constant([[0, 2], [1, 1], [2, 0]])
    want = integrated_gradients(model, x, indices, steps=6, batch_size=batch_size)
    run = tf.function(
        lambda x, i, b: integrated_gradients(model, x, i, steps=6, batch_size=b)
    )
    got = run(x, indices, tf.constant(batch_size))
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
    assert np.abs(want[1].numpy()).max() > 1e-3
    run(x, indices, tf.constant(batch_size + 2))  # the same trace
    assert run.experimental_get_tracing_count() == 1
    with pytest.raises(TypeError, match="`batch_size` must be a positive.*tensor"):
        integrated_gradients(model, x, indices, batch_size=tf.constant(2.0))


# ------------------------------------------------------------------- FullGrad
def _psi(t):
    t = np.abs(t)
    t = t - t.min(axis=(1, 2), keepdims=True)
    top = t.max(axis=(1, 2), keepdims=True)
    return np.divide(t, top, out=np.zeros_like(t), where=top > 0)


def hand_full_gradients(model, x, unit, with_biases=True):
    """FullGrad recomputed from the weights with plain TF ops."""
    k1, b1 = model.get_layer("conv").get_weights()
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    k2, b2 = model.get_layer("conv2").get_weights()
    w, b = model.get_layer("logits").get_weights()
    scale = gamma / np.sqrt(var + 1e-3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z1 = tf.nn.conv2d(x, k1, 1, "SAME") + b1
        z2 = (z1 - mean) * scale + beta
        z3 = tf.nn.conv2d(tf.nn.relu(z2), k2, 2, "SAME") + b2
        score = (tf.reduce_mean(tf.nn.relu(z3), (1, 2)) @ w + b)[:, unit]
    gx, g1, g2, g3 = tape.gradient(score, [x, z1, z2, z3])
    bn_bias = beta - mean * scale
    if not with_biases:
        b1, bn_bias, b2 = 0 * b1, 0 * bn_bias, 0 * b2
    maps = _psi(x * gx).mean(-1) + _psi(b1 * g1).mean(-1) + _psi(bn_bias * g2).mean(-1)
    small = _psi((b2 * g3).numpy()).mean(-1)[..., None]
    return maps + tf.image.resize(small, (6, 6))[..., 0].numpy()


def test_full_gradients_equals_a_hand_computation():
    model = conv_bn_dense()
    exposed = full_gradients_model(model)
    assert exposed.endpoints == [
        ("logits", "output"),
        ("conv", "output"),
        ("bn", "output"),
        ("conv2", "output"),
    ]
    x = _x(2)
    logits, maps = full_gradients(exposed, x, [[0, 2], [1, 0]])
    assert logits.shape == (2, 2) and maps.shape == (2, 6, 6, 2)
    np.testing.assert_allclose(
        logits, tf.gather(model(x), [[0, 2], [1, 0]], batch_dims=1)
    )
    for b, units in enumerate(((0, 2), (1, 0))):
        for k, unit in enumerate(units):  # one map per explained unit
            expected = hand_full_gradients(model, x[b : b + 1], unit)[0]
            np.testing.assert_allclose(maps[b, ..., k], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(maps[0, ..., 0], maps[0, ..., 1])


def test_full_gradients_options_and_non_spatial_layers():
    model = conv_bn_dense()
    exposed, x = full_gradients_model(model), _x(2)
    _, maps = full_gradients(exposed, x, [[0], [1]])
    biases = [tf.zeros(4), tf.zeros(4), tf.zeros(5)]
    _, gradient_only = full_gradients(exposed, x, [[0], [1]], biases=biases)
    for b in range(2):
        expected = hand_full_gradients(model, x[b : b + 1], b, with_biases=False)
        np.testing.assert_allclose(gradient_only[b, ..., 0], expected[0], atol=1e-5)
    assert not np.allclose(maps, gradient_only)
    # A hidden Dense layer has no spatial map: it is skipped.
    inputs = keras.Input((6, 6, 3))
    features = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    hidden = keras.layers.Dense(4, name="hidden")(keras.layers.Flatten()(features))
    mlp = keras.Model(inputs, keras.layers.Dense(2, name="logits")(hidden))
    with_dense = full_gradients_model(mlp)
    assert [n for n, _ in with_dense.endpoints] == ["logits", "conv", "hidden"]
    _, a = full_gradients(with_dense, x)
    _, b = full_gradients(expose(mlp, arguments=["conv"], outputs="logits"), x)
    np.testing.assert_allclose(a, b, atol=1e-6)


def channels_first(model):
    """`model` taking channels-first images `(B, C, H, W)`."""
    inputs = keras.Input((3, 6, 6))
    return keras.Model(inputs, model(keras.layers.Permute((2, 3, 1))(inputs)))


@pytest.mark.parametrize("method", [gradients, input_x_gradient, integrated_gradients])
def test_channels_first_inputs(linear, method):
    x = _x(2)
    _, expected = method(linear, x, [[0], [1]])
    first = tf.transpose(x, [0, 3, 1, 2])
    _, maps = method(channels_first(linear), first, [[0], [1]], spatial_axis=(-2, -1))
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------ compiled == eager, dynamic
def _cases():
    conv = conv_bn_dense()
    return {
        "gradients": (gradients, models.linear(), {}),
        "input_x_gradient": (input_x_gradient, smooth_conv(), {}),
        "integrated_gradients": (
            integrated_gradients,
            smooth_conv(),
            {"steps": 6, "batch_size": 4, "baseline": 0.1},
        ),
        "full_gradients": (full_gradients, full_gradients_model(conv), {}),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("units", [1, 2])
def test_eager_equals_tf_function_and_xla(name, units):
    method, model, options = CASES[name]
    assert method.__name__ == name
    x = _x(2)
    indices = tf.constant([[1, 0], [0, 1]])[:, :units]
    assert_compiles_alike(method, model, x, indices, options)


# -------------------------------------------------------------------- errors
def test_errors(linear):
    x = _x()
    with pytest.raises(ValueError, match="`steps` must be a positive integer"):
        integrated_gradients(linear, x, steps=0)
    with pytest.raises(TypeError, match="`steps` must be an integer. Received"):
        integrated_gradients(linear, x, steps=2.5)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        integrated_gradients(linear, x, batch_size=0)
    with pytest.raises(ValueError, match=r"`baseline` must be .* Received: baseline="):
        integrated_gradients(linear, x, baseline=np.zeros((5, 5, 3)))
    with pytest.raises(TypeError, match="`gradient_filter` must be callable"):
        gradients(linear, x, gradient_filter="abs")
    with pytest.raises(ValueError, match="`inputs` must have rank 4"):
        gradients(linear, x[0])
    with pytest.raises(ValueError, match="`spatial_axis` must be two distinct"):
        integrated_gradients(linear, x, spatial_axis=(0, 1))
    with pytest.raises(
        ValueError, match=r"must be an exposed model .* Received: model="
    ):
        full_gradients(linear, x)
    with pytest.raises(ValueError, match=r"returned 1 output\(s\)"):
        full_gradients(linear, x, biases=[])
    exposed = full_gradients_model(conv_bn_dense())
    with pytest.raises(ValueError, match="one bias per intermediate output"):
        full_gradients(exposed, x, biases=[tf.zeros(4)])
    with pytest.raises(TypeError, match="`psi` must be callable"):
        full_gradients(exposed, x, psi=3)


def test_full_gradients_of_a_tf_keras_model():
    tf_keras = pytest.importorskip("tf_keras")
    x = _x(2, size=8)
    ours = full_gradients(full_gradients_model(models.gap_dense(keras)), x)[1]
    theirs = full_gradients(full_gradients_model(models.gap_dense(tf_keras)), x)[1]
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)
