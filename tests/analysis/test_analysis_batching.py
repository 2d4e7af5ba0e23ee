"""The analysis tools batch through the engine: same numbers as eager references.

The references are computed here without the library's batching: the layer's
output from `expose(...)` called eagerly, and the input gradient of one unit
from an eager `tf.GradientTape`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.analysis import channel_activation, gradient_receptive_field
from keras_interp.inspection import expose

L = keras.layers


def _cnn() -> keras.Model:
    """conv (relu) -> strided conv `top` -> GAP -> Dense `head`."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((12, 10, 3), name="images")
    conv = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")
    top = L.Conv2D(3, 3, strides=2, name="top")
    head = L.Dense(5, name="head")
    model = keras.Model(inputs, head(L.GlobalAveragePooling2D()(top(conv(inputs)))))
    conv.set_weights([rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4) * 0.1])
    top.set_weights([rng.normal(size=(3, 3, 4, 3)), rng.normal(size=3) * 0.1])
    head.set_weights([rng.normal(size=(3, 5)), rng.normal(size=5)])
    return model


def _images(seed: int, n: int, shape=(12, 10, 3)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("f4")


def _layer_output(model, layer, images) -> np.ndarray:
    (out,) = expose(model, arguments=[layer], outputs=[])(images, training=False)
    return np.asarray(out, np.float64)


# -- channel activations --------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_channel_activation_matches_the_layer_output(batch_size):
    model, images = _cnn(), _images(1, 6)
    out = _layer_output(model, "top", images)  # (6, 5, 4, 3)
    flat = out[..., 2].reshape(6, -1)
    expected = {
        "mean": flat.mean(1),
        "max": flat.max(1),
        "median": np.median(flat, 1),
        "l1": np.abs(flat).sum(1),
        "l2": np.sqrt((flat**2).sum(1)),
    }
    for criterion, values in expected.items():
        got = channel_activation(
            model, "top", 2, images, criterion=criterion, batch_size=batch_size
        )
        assert got.dtype == np.float32 and got.shape == (6,)
        np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-6)
    unit = channel_activation(model, "top", 1, images, unit=(3, 2), batch_size=2)
    np.testing.assert_allclose(unit, out[:, 3, 2, 1], rtol=1e-5, atol=1e-6)


def test_channel_activation_of_a_dense_layer_and_with_preprocessing():
    model, images = _cnn(), _images(2, 5)
    dense = channel_activation(model, "head", 4, images, batch_size=2)
    np.testing.assert_allclose(
        dense, _layer_output(model, "head", images)[:, 4], rtol=1e-5, atol=1e-6
    )
    scaled = channel_activation(
        model, "conv", 0, images, preprocessing=lambda x: x * 2 - 1, batch_size=3
    )
    out = _layer_output(model, "conv", images * 2 - 1)
    np.testing.assert_allclose(
        scaled, out[..., 0].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )


# -- gradient receptive field -----------------------------------------------------
def _eager_saliency(model, layer, unit, channel, images) -> np.ndarray:
    (exposed,) = [expose(model, arguments=[], outputs=[layer])]
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        (activations,) = exposed(x, training=False)
        selected = activations[(slice(None), *unit)]
        if channel is None:
            score = 0.5 * tf.reduce_sum(tf.square(selected))
        else:
            score = tf.reduce_sum(selected[:, channel])
    total = np.abs(tape.gradient(score, x).numpy()).astype(np.float64)
    total = total.sum(axis=(0, -1))
    return total / total.max()


@pytest.mark.parametrize("channel", [0, 2, None])
def test_gradient_saliency_matches_an_eager_tape(channel):
    model, images = _cnn(), _images(3, 5)
    for unit, batch_size in [((0, 0), 2), ((2, 1), 32), ((4, 3), 1)]:
        result = gradient_receptive_field(
            model, "top", unit, channel=channel, images=images, batch_size=batch_size
        )
        expected = _eager_saliency(model, "top", unit, channel, images)
        assert result.saliency.dtype == np.float32
        np.testing.assert_allclose(result.saliency, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(result.mask, expected > 1e-6)


def test_gradient_saliency_of_a_1d_model():
    model = keras.Sequential(
        [keras.Input((20, 2)), L.Conv1D(3, 4, name="a"), L.Conv1D(2, 3, name="b")]
    )
    images = _images(4, 3, shape=(20, 2))
    result = gradient_receptive_field(model, "b", 5, channel=1, images=images)
    expected = _eager_saliency(model, "b", (5,), 1, images)
    np.testing.assert_allclose(result.saliency, expected, rtol=1e-5, atol=1e-7)
    assert result.region == [(5, 11)] and result.size == (6,)


# -- the engine runs it: one trace across calls, units and batch sizes ------------
def _spy_explain(monkeypatch) -> list:
    from keras_interp.analysis import _batching

    seen, real = [], _batching.explain

    def wrapped(method, *args, **kwargs):
        seen.append(method.__name__)
        return real(method, *args, **kwargs)

    monkeypatch.setattr(_batching, "explain", wrapped)
    return seen


def test_channel_activation_is_compiled_once_by_the_engine(monkeypatch):
    from keras_interp.analysis._batching import channel_maps, exposed_layer
    from keras_interp.engine import compiled_function

    seen = _spy_explain(monkeypatch)
    model, images = _cnn(), _images(5, 7)
    for size, channel in zip(range(1, 8), [0, 1, 2, 0, 1, 2, 0]):
        channel_activation(model, "top", channel, images, batch_size=size)
    assert seen == ["channel_maps"] * 7
    exposed = exposed_layer(model, ("channel", "top"), None)  # the cached one
    function = compiled_function(
        channel_maps, exposed, postprocessing=None, resizing=False
    )
    traces = function.experimental_get_tracing_count()
    assert 1 <= traces <= 3
    channel_activation(model, "top", 1, images, unit=(1, 1), batch_size=2)
    assert function.experimental_get_tracing_count() == traces


def test_gradient_receptive_field_is_compiled_once_by_the_engine(monkeypatch):
    from keras_interp.analysis._batching import exposed_layer, unit_saliency
    from keras_interp.engine import compiled_function

    seen = _spy_explain(monkeypatch)
    model, images = _cnn(), _images(6, 5)
    units = [(0, 0), (1, 2), (4, 3), (2, 1), (3, 0)]
    for size, unit in zip(range(1, 6), units):
        gradient_receptive_field(
            model, "top", unit, channel=size % 3, images=images, batch_size=size
        )
    assert seen == ["unit_saliency"] * 5
    exposed = exposed_layer(model, ("unit", "top"), None)
    function = compiled_function(
        unit_saliency, exposed, postprocessing=None, resizing=False, squared=False
    )
    traces = function.experimental_get_tracing_count()
    assert 1 <= traces <= 3
    gradient_receptive_field(model, "top", (2, 2), channel=0, images=images)
    assert function.experimental_get_tracing_count() == traces


def test_the_exposed_layers_do_not_keep_models_alive():
    import gc
    import weakref

    model = _cnn()
    channel_activation(model, "top", 0, _images(7, 2))
    gradient_receptive_field(model, "top", (0, 0), channel=0, images=_images(8, 2))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
