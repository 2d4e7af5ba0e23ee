"""Upsampled activation maps against numpy references."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import expose
from keras_interp.methods.activation import percentile, upsampled_activation
from keras_interp.testing.models import gap_dense


def pooled_model(size=4, pool=2, channels=3, nested=False):
    """`images -> AveragePooling2D(pool) -> GAP -> Dense`: the exposed
    activations are the block means of the image, known exactly."""
    inputs = keras.Input((size, size, channels), name="images")
    pooling = keras.layers.AveragePooling2D(pool, name="pool")
    if nested:
        backbone = keras.Sequential(
            [keras.Input((size, size, channels)), pooling], name="backbone"
        )
        x = backbone(inputs)
    else:
        x = pooling(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="logits")(x)
    return expose(keras.Model(inputs, outputs))


def block_means(x, pool):
    b, h, w, c = x.shape
    return x.reshape(b, h // pool, pool, w // pool, pool, c).mean(axis=(2, 4))


def images(batch=2, size=4, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, size, size, channels)).astype(np.float32)


@pytest.mark.parametrize("nested", [False, True])
def test_nearest_upsampling_of_a_2x2_map_is_kron(nested):
    for size, pool in ((4, 2), (8, 4)):
        x = images(size=size)
        logits, maps = upsampled_activation(
            pooled_model(size, pool, nested=nested), x, interpolation="nearest"
        )
        activations = block_means(x, pool)  # (2, 2, 2, 3)
        assert maps.shape == (2, size, size, 3)
        for b in range(2):
            for c in range(3):
                expected = np.kron(activations[b, :, :, c], np.ones((pool, pool)))
                np.testing.assert_allclose(maps[b, :, :, c], expected, rtol=1e-6)
        np.testing.assert_allclose(logits, activations.mean(axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic", "area"])
def test_every_interpolation_equals_tf_image_resize(method):
    inputs = keras.Input((7, 9, 2))
    conv = keras.layers.Conv2D(3, (5, 4), name="conv")  # -> (3, 6, 3)
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    exposed = expose(keras.Model(inputs, keras.layers.Dense(2)(x)))
    x = np.random.default_rng(1).normal(size=(2, 7, 9, 2)).astype(np.float32)
    activations = conv(x)
    _, maps = upsampled_activation(exposed, x, interpolation=method)
    expected = tf.image.resize(activations, (7, 9), method=method)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_threshold_raises_values_below_the_percentile(threshold):
    model = gap_dense(size=8, channels=4)
    exposed = expose(model)
    x = images(3, size=8)
    _, plain = upsampled_activation(exposed, x, interpolation="bilinear")
    _, maps = upsampled_activation(
        exposed, x, interpolation="bilinear", threshold=threshold
    )
    plain = plain.numpy()
    expected = np.empty_like(plain)
    for b in range(3):
        for c in range(4):
            floor = np.percentile(plain[b, :, :, c], 100 * threshold)
            expected[b, :, :, c] = np.clip(plain[b, :, :, c], floor, None)
    np.testing.assert_allclose(maps, expected, rtol=1e-6, atol=1e-6)


def test_percentile_equals_numpy():
    values = np.random.default_rng(2).normal(size=(3, 4, 37)).astype(np.float32)
    values[0, 0, :5] = values[0, 0, 5]  # ties
    for q in (0.0, 0.013, 0.25, 0.5, 0.6, 0.999, 1.0):
        np.testing.assert_allclose(
            percentile(tf.constant(values), q),
            np.percentile(values, 100 * q, axis=-1),
            rtol=1e-6,
            atol=1e-6,
        )


def test_indices_select_channels_and_logits_are_their_means():
    exposed = pooled_model()
    x = images()
    logits, all_maps = upsampled_activation(exposed, x, interpolation="bilinear")
    indices = np.array([[2, 0], [1, 1]])
    picked_logits, maps = upsampled_activation(
        exposed, x, indices, interpolation="bilinear"
    )
    assert maps.shape == (2, 4, 4, 2)
    np.testing.assert_allclose(
        maps, tf.gather(all_maps, indices, axis=-1, batch_dims=1)
    )
    expected = np.take_along_axis(logits.numpy(), indices, -1)
    np.testing.assert_allclose(picked_logits, expected)
    channel_mean = block_means(x, 2)[0].mean((0, 1))[2]
    np.testing.assert_allclose(picked_logits[0, 0], channel_mean, rtol=1e-5)
    _, single = upsampled_activation(exposed, x[1:], indices[1:], interpolation="area")
    _, batched = upsampled_activation(exposed, x, indices, interpolation="area")
    np.testing.assert_allclose(single[0], batched[1], rtol=1e-6)


def test_eager_graph_and_xla_agree():
    exposed = expose(gap_dense(size=8))
    x = tf.constant(images(2, size=8))
    for method in ("bicubic", "area"):

        def fn(x, method=method):
            return upsampled_activation(
                exposed, x, [[0, 3], [2, 1]], interpolation=method, threshold=0.4
            )

        eager = fn(x)
        for compiled in (tf.function(fn), tf.function(fn, jit_compile=True)):
            logits, maps = compiled(x)
            np.testing.assert_allclose(logits, eager[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(maps, eager[1], rtol=1e-5, atol=1e-5)


def test_unknown_sizes_and_channels_first():
    exposed = expose(gap_dense(size=8))
    x = images(2, size=8)
    fn = tf.function(
        lambda x: upsampled_activation(exposed, x, threshold=0.5),
        input_signature=[tf.TensorSpec((None, None, None, 3))],
    )
    expected = upsampled_activation(exposed, x, threshold=0.5)
    np.testing.assert_allclose(fn(x)[1], expected[1], rtol=1e-5, atol=1e-5)

    class ChannelsFirst(keras.Model):
        def call(self, x):
            logits, activations = exposed(tf.transpose(x, (0, 2, 3, 1)))
            return logits, tf.transpose(activations, (0, 3, 1, 2))

    _, maps = upsampled_activation(
        ChannelsFirst(),
        np.transpose(x, (0, 3, 1, 2)),
        threshold=0.5,
        spatial_axis=(2, 3),
    )
    np.testing.assert_allclose(maps, expected[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"threshold": -0.1}, ValueError, r"`threshold` must be in \[0, 1\]"),
        ({"threshold": 1.5}, ValueError, r"Received: threshold=1.5"),
        ({"threshold": "0.5"}, TypeError, r"`threshold` must be None or a number"),
        ({"interpolation": "lanczos"}, ValueError, r"`interpolation` must be one of"),
        ({"spatial_axis": (1,)}, ValueError, r"`spatial_axis` must be two distinct"),
    ],
)
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        upsampled_activation(pooled_model(), images(), **kwargs)


def test_model_errors():
    model = gap_dense(size=8)
    with pytest.raises(ValueError, match=r"`model` must be an exposed model.*1 out"):
        upsampled_activation(model, images(size=8))
    flat = expose(model, arguments="gap")  # (B, C): not a spatial map
    with pytest.raises(ValueError, match=r"must be a spatial map.*Received: model="):
        upsampled_activation(flat, images(size=8))


def test_name():
    assert upsampled_activation.__name__ == "upsampled_activation"
