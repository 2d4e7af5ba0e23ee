"""Models users have, through `explain`: several inputs (nests), channels-first
images, and mixed-precision (float16 / bfloat16 compute) models."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.engine import explain
from keras_interp.shortcuts import prepare
from keras_interp.testing import contract

# Several inputs: x is a tuple or dict of arrays, batched together.


def nest_gradient(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """The gradient of the selected logits w.r.t. the image input of a
    two-input model (a dict or a tuple), summed over channels."""
    images = inputs["image"] if isinstance(inputs, dict) else inputs[0]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        logits = model(inputs)
        if indices is not None:
            logits = tf.gather(logits, indices, axis=1, batch_dims=1)
    jacobian = tape.batch_jacobian(logits, images)  # (B, L, H, W, C)
    return logits, tf.einsum("blhwc->bhwl", jacobian)


@pytest.fixture(scope="module")
def two_inputs():
    """`logits = flatten(image) @ A + vector @ B`: the image gradient is `A`."""
    rng = np.random.default_rng(0)
    image = keras.Input((4, 3, 2), name="image")
    vector = keras.Input((5,), name="vector")
    a = keras.layers.Dense(3, use_bias=False, name="a")
    b = keras.layers.Dense(3, use_bias=False, name="b")
    logits = keras.layers.Add()([a(keras.layers.Flatten()(image)), b(vector)])
    model = keras.Model({"image": image, "vector": vector}, logits)
    kernel = rng.normal(size=(24, 3)).astype("float32")
    a.set_weights([kernel])
    b.set_weights([rng.normal(size=(5, 3)).astype("float32")])
    return model, kernel


def test_dict_inputs_are_batched_together(two_inputs):
    model, kernel = two_inputs
    rng = np.random.default_rng(1)
    x = {
        "image": rng.normal(size=(5, 4, 3, 2)).astype("float32"),
        "vector": rng.normal(size=(5, 5)).astype("float32"),
    }
    y = np.array([0, 2, 1, 1, 0])
    logits, maps = explain(nest_gradient, model, x, y, batch_size=2, verbose=0)
    full = model(x).numpy()
    np.testing.assert_allclose(logits[:, 0], full[np.arange(5), y], atol=1e-5)
    want = kernel.reshape(4, 3, 2, 3).sum(axis=2)[..., y].transpose(2, 0, 1)
    np.testing.assert_allclose(maps[..., 0], want, atol=1e-5)


def test_nest_errors(two_inputs):
    model, _ = two_inputs
    image = np.zeros((3, 4, 3, 2), "float32")
    with pytest.raises(ValueError, match="same number of rows"):
        explain(nest_gradient, model, {"image": image, "vector": np.zeros((2, 5))})
    with pytest.raises(ValueError, match="input names.*Received: x with keys"):
        explain(nest_gradient, model, {"image": image, "other": np.zeros((3, 5))})
    with pytest.raises(ValueError, match="x\\['vector'\\]` must be finite"):
        explain(
            nest_gradient, model, {"image": image, "vector": np.full((3, 5), np.inf)}
        )
    with pytest.raises(ValueError, match="x\\['vector'\\]` must have 5 size"):
        explain(nest_gradient, model, {"image": image, "vector": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="takes 2 inputs: pass `x` as a tuple"):
        explain(nest_gradient, model, image)


# Channels-first: `spatial_axis` names the inputs' height and width; maps are
# (B, H, W, L) either way.

CF_METHODS = ["gradients", "occlusion", "upsampled_activation"]
CAMS = ["gradcam", "cam", "gradcampp", "layercam", "scorecam", "reciprocam"]


def _cnn(data_format):
    keras.utils.set_random_seed(0)
    shape = (8, 6, 3) if data_format == "channels_last" else (3, 8, 6)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(
        4, 3, padding="same", activation="tanh", data_format=data_format, name="conv"
    )(inputs)
    x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


@pytest.fixture(scope="module")
def both_formats():
    last, first = _cnn("channels_last"), _cnn("channels_first")
    first.set_weights(last.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 8, 6, 3)).astype("float32")
    return last, first, x


@pytest.mark.parametrize("name", CF_METHODS)
def test_channels_first_equals_channels_last(both_formats, name):
    last, first, x = both_formats
    y = np.array([0, 2, 1])
    options = {"window": (2, 2), "stride": (2, 2)} if name == "occlusion" else {}
    want = explain(name, prepare(last, name), x, y, verbose=0, **options)
    got = explain(
        name,
        prepare(first, name),
        x.transpose(0, 3, 1, 2),
        y,
        spatial_axis=(-2, -1),
        verbose=0,
        **options,
    )
    assert got[1].shape == want[1].shape == (3, 8, 6, 1)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


@pytest.mark.parametrize("name", CAMS)
def test_channels_first_cams(both_formats, name):
    last, first, x = both_formats
    y = np.array([0, 2, 1])
    want = explain(name, prepare(last, name), x, y, verbose=0)
    got = explain(
        name,
        prepare(first, name),
        x.transpose(0, 3, 1, 2),
        y,
        spatial_axis=(-2, -1),
        verbose=0,
    )
    assert got[1].shape == want[1].shape == (3, 8, 6, 1)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_channels_first_postprocessing_and_resizing(both_formats):
    last, first, x = both_formats

    def unit_max(maps, axis):
        assert axis == (-3, -2) and maps.shape[-1] == 1  # (B, H', W', L)
        return maps / tf.reduce_max(tf.abs(maps), axis=axis, keepdims=True)

    kwargs = {"postprocessing": unit_max, "resizing": (4, 3), "verbose": 0}
    want = explain("gradients", last, x, [0, 1, 2], **kwargs)[1]
    cf = x.transpose(0, 3, 1, 2)
    got = explain("gradients", first, cf, [0, 1, 2], spatial_axis=(-2, -1), **kwargs)[1]
    assert got.shape == (3, 4, 3, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)


# Mixed precision: float32 maps close to the float32 model's.

#: Largest |difference| of maps, relative to the float32 maps' largest |value|.
MIXED_TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 6e-2}


@pytest.mark.parametrize("policy", sorted(MIXED_TOLERANCE))
@pytest.mark.parametrize("name", ["gradients", "gradcam", "occlusion"])
def test_mixed_precision_models_give_float32_maps(policy, name):
    reference = contract.flat_model()
    keras.mixed_precision.set_global_policy(policy)
    try:
        mixed = contract.flat_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(reference.get_weights())
    assert mixed.layers[1].compute_dtype != "float32"
    x, y = contract.data(4)
    options = contract.OPTIONS.get(name, {})
    want = explain(name, prepare(reference, name), x, y, verbose=0, **options)
    got = explain(name, prepare(mixed, name), x, y, verbose=0, **options)
    assert got[0].dtype == got[1].dtype == np.float32
    scale = np.abs(want[1]).max()
    assert np.abs(got[1] - want[1]).max() <= MIXED_TOLERANCE[policy] * scale
    np.testing.assert_allclose(got[0], want[0], atol=MIXED_TOLERANCE[policy])
