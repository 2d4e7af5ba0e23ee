"""Score-CAM's skipping of constant channels, and its tensor `batch_size`."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import expose
from keras_interp.methods.scorecam import live_first, scorecam

#: Channels 0-2 read the image; 3 and 4 have a zero kernel and a negative bias
#: (all zero after the ReLU), 5 a zero kernel and a positive bias (constant 0.5).
LIVE, CONSTANT = [0, 1, 2], [3, 4, 5]


def constant_channels_model():
    """`conv(6, relu) -> avgpool 2 -> GAP -> Dense(3)` on 8x8 images: 4x4
    activations (so masks are upsampled), half of the channels constant."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")
    h = keras.layers.AveragePooling2D(2, name="pool")(conv(inputs))
    dense = keras.layers.Dense(3, name="logits")
    model = keras.Model(
        inputs, dense(keras.layers.GlobalAveragePooling2D(name="gap")(h))
    )
    kernel = rng.normal(size=(3, 3, 3, 6)).astype("float32")
    kernel[..., CONSTANT] = 0.0
    bias = np.array([0.1, 0.0, -0.1, -1.0, -2.0, 0.5], np.float32)
    conv.set_weights([kernel, bias])
    dense.set_weights(
        [rng.normal(size=(6, 3)).astype("float32"), np.array([0.3, -0.2, 0.1])]
    )
    return model


class Counting:
    """An exposed model as a plain callable counting its calls."""

    def __init__(self, exposed):
        self.exposed, self.calls = exposed, 0

    def __call__(self, x, training=False):
        self.calls += 1
        return self.exposed(x, training=training)


def naive(exposed, x, indices):
    """Score-CAM written out, one masked image at a time (every channel)."""
    _, activations = (np.asarray(t) for t in exposed(x))
    baseline = np.asarray(exposed(tf.zeros_like(x))[0])
    maps = np.zeros((*x.shape[:3], indices.shape[1]), np.float32)
    for b in range(x.shape[0]):
        for k in range(activations.shape[-1]):
            a = activations[b, ..., k]
            span = a.max() - a.min()
            m = (a - a.min()) / span if span else np.zeros_like(a)
            m = np.asarray(tf.image.resize(m[None, ..., None], x.shape[1:3]))[0]
            s = np.asarray(exposed(x[b : b + 1] * m)[0])[0]
            maps[b] += (s[indices[b]] - baseline[b, indices[b]]) * m
    return maps


@pytest.fixture(scope="module")
def setup():
    exposed = expose(constant_channels_model())
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 8, 8, 3)), tf.float32)
    activations = np.asarray(exposed(x)[1])
    spread = activations.max(axis=(1, 2)) - activations.min(axis=(1, 2))
    assert (spread[:, CONSTANT] == 0).all() and (spread[:, LIVE] > 0).all()
    return exposed, x, np.array([[0, 2], [1, 1]], np.int32)


def test_skipping_gives_the_same_maps_with_fewer_passes(setup):
    exposed, x, indices = setup
    counted = {}
    maps = {}
    for skip in (True, False):
        model = Counting(exposed)
        _, maps[skip] = scorecam(model, x, indices, batch_size=1, skip_constant=skip)
        counted[skip] = model.calls
    np.testing.assert_allclose(maps[True], maps[False], atol=1e-6)
    np.testing.assert_allclose(maps[True], naive(exposed, x, indices), atol=1e-5)
    # One clean pass, then one pass per (image, mask): all 6 channels and the
    # baseline without skipping, the 3 live channels and the baseline with.
    assert counted[False] == 1 + 2 * (6 + 1)
    assert counted[True] == 1 + 2 * (3 + 1)


def test_skipping_under_tf_function(setup):
    exposed, x, indices = setup
    want = scorecam(exposed, x, indices, skip_constant=False)[1]
    got = tf.function(scorecam)(exposed, x, tf.constant(indices), batch_size=3)[1]
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_skipping_under_xla_with_a_tensor_batch_size(setup):
    """The engine's XLA path: the loop runs a run-time number of chunks of a
    compile-time size."""
    exposed, x, indices = setup
    want = scorecam(exposed, x, indices, skip_constant=False)[1]
    run = tf.function(scorecam, jit_compile=True)
    got = run(exposed, x, tf.constant(indices), batch_size=tf.constant(3))[1]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_every_channel_constant_gives_zero_maps(setup):
    exposed, _, _ = setup
    flat = tf.zeros((1, 8, 8, 3))  # live channels are then constant too
    scores, maps = scorecam(exposed, flat, [[0]])
    assert np.asarray(maps).shape == (1, 8, 8, 1)
    assert not np.asarray(maps).any()
    np.testing.assert_allclose(scores, exposed(flat)[0][:, :1], atol=1e-6)


def test_live_first():
    order, count = live_first(tf.constant([False, True, False, True, True]))
    assert order.numpy().tolist()[:3] == [1, 3, 4]
    assert sorted(order.numpy().tolist()) == [0, 1, 2, 3, 4]
    assert int(count) == 3


def test_tensor_batch_size_one_trace(setup):
    exposed, x, indices = setup
    want = scorecam(exposed, x, indices, batch_size=4)[1]

    @tf.function
    def run(batch_size):
        return scorecam(exposed, x, indices, batch_size=batch_size)[1]

    for size in (1, 4, 64):
        got = run(tf.constant(size))
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert run.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"skip_constant": "yes"}, TypeError, "`skip_constant`"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be a positive"),
        ({"spatial_axis": (-1, -2)}, ValueError, r"must be \(-3, -2\)"),
    ],
)
def test_bad_options(setup, kwargs, error, match):
    exposed, x, _ = setup
    with pytest.raises(error, match=match + ".*Received"):
        scorecam(exposed, x, **kwargs)


def test_several_inputs_are_refused(setup):
    exposed, x, _ = setup
    with pytest.raises(ValueError, match="one image tensor.*Received: inputs='tuple'"):
        scorecam(exposed, (x, x))
