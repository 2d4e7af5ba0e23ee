"""Guided backpropagation and gradients at a chosen layer, against hand-made
backward passes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import expose, find_layer, iter_layers
from keras_interp.methods.gradient import gradients
from keras_interp.methods.guided import guided_gradients, layer_gradients
from keras_interp.testing import models
from keras_interp.testing.compilation import assert_compiles_alike


def _x(batch=2, size=5, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(size=(batch, size, size, channels)), tf.float32)


def _set(layer, rng, scale=0.7):
    layer.set_weights([rng.normal(size=w.shape) * scale for w in layer.get_weights()])


def flat(seed=0):
    """c1 = Conv2D(relu) -> c2 = Conv2D -> ReLU -> Flatten -> Dense."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((5, 5, 2), name="images")
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(3, 3, padding="same", name="c2")(x)
    x = keras.layers.Flatten()(keras.layers.ReLU(name="r2")(x))
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    for name in ("c1", "c2", "logits"):
        _set(model.get_layer(name), rng)
    return model


def hand_guided(model, x, unit):
    """The guided backward pass written out: `g <- relu(g) * [z > 0]` at each
    ReLU, transposed convolutions elsewhere. Returns (d/d input of c2, d/dx)."""
    (k1, b1), (k2, b2) = (model.get_layer(n).get_weights() for n in ("c1", "c2"))
    w = model.get_layer("logits").get_weights()[0][:, unit].reshape(1, 5, 5, 3)
    z1 = tf.nn.conv2d(x, k1, 1, "SAME") + b1
    z2 = tf.nn.conv2d(tf.nn.relu(z1), k2, 1, "SAME") + b2
    g = tf.nn.relu(tf.broadcast_to(w, z2.shape)) * tf.cast(z2 > 0, tf.float32)
    g_a1 = tf.nn.conv2d_transpose(g, k2, z1.shape, 1, "SAME")
    g = tf.nn.relu(g_a1) * tf.cast(z1 > 0, tf.float32)
    return g_a1.numpy(), tf.nn.conv2d_transpose(g, k1, x.shape, 1, "SAME").numpy()


def nested(depth=2, seed=0):
    """The `flat` architecture with its convolutions inside `depth` nested
    models, and the equivalent flat model sharing the same layers."""
    rng = np.random.default_rng(seed)
    c1 = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="c1")
    c2 = keras.layers.Conv2D(3, 3, padding="same", name="c2")
    r2 = keras.layers.Activation("relu", name="r2")
    inner_in = keras.Input((5, 5, 2))
    block = keras.Model(inner_in, r2(c2(c1(inner_in))), name="block")
    for level in range(depth - 1):
        wrapper_in = keras.Input((5, 5, 2))
        block = keras.Model(wrapper_in, block(wrapper_in), name=f"wrap{level}")
    dense = keras.layers.Dense(2, name="logits")
    inputs = keras.Input((5, 5, 2))
    gap = keras.layers.GlobalAveragePooling2D(name="gap")
    model = keras.Model(inputs, dense(gap(block(inputs))))
    flat_in = keras.Input((5, 5, 2))
    twin = keras.Model(flat_in, dense(gap(r2(c2(c1(flat_in))))))
    for layer in (c1, c2, dense):
        _set(layer, rng)
    return model, twin


# ----------------------------------------------------------------- guided
def test_guided_gradients_equal_the_hand_computed_guided_pass():
    model, x = flat(), _x()
    logits, maps = guided_gradients(model, x, [[0], [1]], gradient_filter=None)
    np.testing.assert_allclose(logits, tf.gather(model(x), [[0], [1]], batch_dims=1))
    for b in range(2):
        expected = hand_guided(model, x[b : b + 1], b)[1].mean(-1)[0]
        np.testing.assert_allclose(maps[b, ..., 0], expected, rtol=1e-5, atol=1e-6)
    _, absolute = guided_gradients(model, x, [[0], [1]])
    expected = np.abs(hand_guided(model, x[:1], 0)[1]).mean(-1)[0]
    np.testing.assert_allclose(absolute[0, ..., 0], expected, rtol=1e-5, atol=1e-6)
    _, plain = gradients(model, x, [[0], [1]], gradient_filter=None)
    assert not np.allclose(plain, maps, atol=1e-3)


@pytest.mark.parametrize(
    "activation, gate",
    [
        (lambda: keras.layers.ReLU(6.0), lambda x: (x > 0) & (x < 6)),
        (lambda: keras.layers.Activation("relu6"), lambda x: (x > 0) & (x < 6)),
        ("relu6", lambda x: (x > 0) & (x < 6)),
        ("relu", lambda x: x > 0),
        (
            lambda: keras.layers.ReLU(negative_slope=0.1),
            lambda x: np.where(x > 0, 1, 0.1),
        ),
        (lambda: keras.layers.ReLU(threshold=1.0), lambda x: x > 1),
    ],
    ids=[
        "ReLU(6)",
        "Activation(relu6)",
        "fused relu6",
        "fused relu",
        "leaky",
        "threshold",
    ],
)
def test_relu_family_gating(activation, gate):
    inputs = keras.Input((4, 4, 1))
    fused = activation if isinstance(activation, str) else None
    conv = keras.layers.Conv2D(1, 1, use_bias=False, activation=fused)
    x = conv(inputs)
    x = x if fused else activation()(x)
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(x)))
    conv.set_weights([np.ones((1, 1, 1, 1))])
    signs = np.where(np.indices((4, 4)).sum(0) % 2, 1.0, -1.0)
    dense.set_weights([signs.reshape(16, 1) * 2.0])
    pixels = np.linspace(-3, 9, 16, dtype=np.float32).reshape(1, 4, 4, 1)
    _, maps = guided_gradients(model, pixels, gradient_filter=None)
    expected = np.maximum(signs * 2.0, 0) * gate(pixels[0, ..., 0])
    np.testing.assert_allclose(maps[0, ..., 0], expected, atol=1e-6)
    _, plain = gradients(model, pixels, gradient_filter=None)
    assert not np.allclose(plain, maps)


@pytest.mark.parametrize("depth", [1, 2])
def test_guided_gradients_inside_nested_backbones(depth):
    model, twin = nested(depth)
    x = _x(3)
    _, maps = guided_gradients(model, x, gradient_filter=None)
    _, flat_maps = guided_gradients(twin, x, gradient_filter=None)
    np.testing.assert_allclose(maps, flat_maps, rtol=1e-5, atol=1e-6)
    _, plain = gradients(model, x, gradient_filter=None)
    assert np.abs(maps).max() > 1e-3
    assert not np.allclose(maps, plain, atol=1e-4)  # xplique returns `plain` here
    _, exposed_maps = guided_gradients(expose(model), x, gradient_filter=None)
    np.testing.assert_allclose(exposed_maps, maps, rtol=1e-5, atol=1e-6)


def test_the_users_model_is_left_unchanged():
    model, _ = nested(2)
    x = _x(2)
    before = model(x).numpy()
    nodes = {path: len(layer._inbound_nodes) for path, layer in iter_layers(model)}
    _, plain = gradients(model, x)
    guided_gradients(model, x)
    tf.function(lambda x: guided_gradients(model, x))(x)
    gap_input = {"name": "gap", "link": "input"}
    layer_gradients(expose(model, arguments=gap_input), x, guided=True)
    after = {path: len(layer._inbound_nodes) for path, layer in iter_layers(model)}
    assert after == nodes
    np.testing.assert_array_equal(model(x).numpy(), before)
    np.testing.assert_array_equal(gradients(model, x)[1], plain)
    assert find_layer(model, "r2").activation.__name__ == "relu"


# ---------------------------------------------------------- layer gradients
def test_layer_gradients_at_the_first_layer_are_the_image_gradients():
    model, x = flat(), _x()
    exposed = expose(model, arguments={"name": "c1", "link": "input"})
    logits, maps = layer_gradients(exposed, x, [[1], [0]])
    np.testing.assert_allclose(
        maps, gradients(model, x, [[1], [0]], gradient_filter=None)[1], atol=1e-6
    )
    _, guided = layer_gradients(exposed, x, [[1], [0]], guided=True)
    expected = guided_gradients(model, x, [[1], [0]], gradient_filter=None)[1]
    np.testing.assert_allclose(guided, expected, atol=1e-6)


def test_layer_gradients_at_an_intermediate_layer():
    model, x = flat(), _x()
    exposed = expose(model, arguments={"name": "c2", "link": "input"})
    logits, maps = layer_gradients(exposed, x)
    assert logits.shape == (2, 2) and maps.shape == (2, 5, 5, 2)
    with tf.GradientTape(persistent=True) as tape:
        scores, activations = exposed(x)
        units = [scores[:, 0], scores[:, 1]]
    for unit in range(2):
        grad = tape.gradient(units[unit], activations).numpy()
        np.testing.assert_allclose(maps[..., unit], grad.mean(-1), atol=1e-6)
    _, guided = layer_gradients(exposed, x, [[0], [1]], guided=True)
    _, absolute = layer_gradients(exposed, x, [[0], [1]], gradient_filter=tf.abs)
    for b in range(2):
        g_a1 = hand_guided(model, x[b : b + 1], b)[0]
        np.testing.assert_allclose(guided[b, ..., 0], g_a1.mean(-1)[0], atol=1e-6)
        grad = tape.gradient(units[b], activations).numpy()[b]
        np.testing.assert_allclose(
            absolute[b, ..., 0], np.abs(grad).mean(-1), atol=1e-6
        )


# ------------------------------------------------ compiled == eager, dynamic
@pytest.mark.parametrize("case", ["guided", "guided_nested", "layer", "layer_guided"])
def test_eager_equals_tf_function_and_xla(case):
    model = nested(2)[0] if case == "guided_nested" else flat()
    if case.startswith("guided"):
        method, options = guided_gradients, {}
    else:
        model = expose(model, arguments={"name": "c2", "link": "input"})
        method, options = layer_gradients, {"guided": case == "layer_guided"}
    x = _x(2)
    for indices in (tf.constant([[1], [0]]), tf.constant([[1, 0], [0, 1]])):
        assert_compiles_alike(method, model, x, indices, options)


def test_channels_first_inputs():
    model, x = flat(), _x()
    inputs = keras.Input((2, 5, 5))
    first = keras.Model(inputs, model(keras.layers.Permute((2, 3, 1))(inputs)))
    _, expected = guided_gradients(model, x)
    _, maps = guided_gradients(
        first, tf.transpose(x, [0, 3, 1, 2]), spatial_axis=(-2, -1)
    )
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)


def test_names():
    assert guided_gradients.__name__ == "guided_gradients"
    assert layer_gradients.__name__ == "layer_gradients"


# -------------------------------------------------------------------- errors
class Subclassed(keras.Model):
    def __init__(self, outputs=1):
        super().__init__()
        self.conv = keras.layers.Conv2D(2, 3, activation="relu")
        self.dense = keras.layers.Dense(2)
        self.outputs_ = outputs

    def call(self, x):
        features = self.conv(x)
        scores = self.dense(tf.reduce_mean(features, (1, 2)))
        return scores if self.outputs_ == 1 else [scores, features]


def test_errors():
    x = _x()
    with pytest.raises(ValueError, match=r"guided_gradients needs a functional .*"):
        guided_gradients(Subclassed(), x)
    inputs = keras.Input((5, 5, 2))
    wrapped = keras.Model(inputs, Subclassed()(inputs))
    with pytest.raises(ValueError, match=r"nested model .* Received: model="):
        guided_gradients(wrapped, x)
    with pytest.raises(ValueError, match=r"layer_gradients\(guided=True\) needs"):
        layer_gradients(Subclassed(outputs=2), x, guided=True)
    _, maps = layer_gradients(Subclassed(outputs=2), x)  # unguided: any model
    assert maps.shape == (2, 3, 3, 2)
    with pytest.raises(ValueError, match=r"must return \[scores, activations\]"):
        layer_gradients(flat(), x)
    with pytest.raises(ValueError, match="must be a spatial map"):
        layer_gradients(
            expose(flat(), arguments={"name": "logits", "link": "input"}), x
        )
    with pytest.raises(TypeError, match="`gradient_filter` must be callable"):
        guided_gradients(flat(), x, gradient_filter=1)


def test_tf_keras_models_give_the_same_maps():
    tf_keras = pytest.importorskip("tf_keras")
    x = _x(2, size=8, channels=3)
    mine, theirs = models.gap_dense(keras), models.gap_dense(tf_keras)
    for method in (guided_gradients, gradients):
        np.testing.assert_allclose(
            method(theirs, x)[1], method(mine, x)[1], rtol=1e-5, atol=1e-6
        )
    link = {"name": "conv", "link": "input"}
    ours = layer_gradients(expose(mine, arguments=link), x, guided=True)[1]
    other = layer_gradients(expose(theirs, arguments=link), x, guided=True)[1]
    np.testing.assert_allclose(other, ours, rtol=1e-5, atol=1e-6)
