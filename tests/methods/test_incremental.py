"""Incremental occlusion equals plain occlusion; its plan is the hand-computed
one; the approximate drill-down is exact where it claims to be."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp import expose
from keras_interp.methods.incremental import (
    approximate_occlusion,
    incremental_occlusion,
    incremental_plan,
)
from keras_interp.methods.perturbation import occlusion
from keras_interp.testing.contract import assert_method_contract
from keras_interp.testing.models import gap_dense


def _close(plain: tf.Tensor, fast: tf.Tensor) -> None:
    """Equal up to float32 round-off, relative to the map's scale."""
    plain, fast = np.asarray(plain), np.asarray(fast)
    assert plain.shape == fast.shape
    scale = np.abs(plain).max()
    assert scale > 0
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-5 * scale)


def _stack() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(4, 3, name="c2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))


def _branches() -> keras.Model:
    """Every patch rule: padding, depthwise/separable convs, both poolings with
    padding "same", a strided branch, Add and Concatenate, then a head."""
    keras.utils.set_random_seed(1)
    layers = keras.layers
    inputs = keras.Input((20, 20, 3))
    x = layers.ZeroPadding2D(((1, 0), (2, 1)))(inputs)
    x = layers.Conv2D(6, 3, strides=2, padding="valid", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.ReLU(6.0)(y)
    x = layers.Add()([x, y])
    a = layers.AveragePooling2D(3, 1, padding="same")(x)
    m = layers.MaxPooling2D(3, 2, padding="same")(x)
    s = layers.SeparableConv2D(4, 3, strides=2, padding="same")(x)
    x = layers.Concatenate()([layers.MaxPooling2D(2, padding="same")(a), m, s])
    x = layers.Conv2D(5, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4)(x))


def test_plan_of_a_tiny_stack():
    # Rows of window i: [4i, 4i + 4). c1 (3x3, same) reaches [4i - 1, 4i + 5):
    # 6 rows at most; the pool (2, stride 2) [ceil((lo - 1) / 2), (hi - 1) // 2
    # + 1): 4 of 8; c2 (3x3, valid) [lo - 2, hi): 5 of 6; then Flatten.
    plan = incremental_plan(_stack(), (16, 16, 3), (4, 4), (4, 4))
    patches = {r["layer"]: r.get("patch") for r in plan["layers"]}
    assert patches == {
        "c1": (6, 6),
        "pool": (4, 4),
        "c2": (5, 5),
        "flat": None,
        "dense": None,
    }
    assert plan["fallback"] == {"layer": "flat", "reason": "no patch rule"}
    assert [r["mode"] for r in plan["layers"]] == ["patch"] * 3 + ["full"] * 2
    full, patch = plan["macs"]
    assert patch == (27 * 4) * 36 + 4 * 4 * 16 + 36 * 4 * 25 + 144 + 144 * 3
    assert full == 27 * 4 * 256 + 4 * 4 * 64 + 36 * 4 * 36 + 144 + 144 * 3


def test_full_fraction_moves_the_fallback():
    plan = incremental_plan(_stack(), (16, 16, 3), (4, 4), (4, 4), full_fraction=0.5)
    assert plan["fallback"] == {"layer": "c2", "reason": "patch covers map"}


@pytest.mark.parametrize(
    ("window", "stride"), [((3, 3), (2, 2)), ((5, 4), (3, 2)), ((20, 20), (1, 1))]
)
def test_equals_occlusion_on_every_patch_rule(window, stride):
    model = _branches()
    x = tf.random.stateless_uniform((2, 20, 20, 3), (0, 1))
    options = dict(window=window, stride=stride, occluder=[0.1, 0.2, 0.3])
    logits, plain = occlusion(model, x, [[1], [3]], **options)
    fast_logits, fast = incremental_occlusion(
        model, x, [[1], [3]], batch_size=7, **options
    )
    _close(plain, fast)
    np.testing.assert_array_equal(logits, fast_logits)


def test_compiled_and_exposed_and_fraction():
    model = expose(gap_dense(size=12))
    x = tf.random.stateless_uniform((2, 12, 12, 3), (0, 2))
    _, plain = occlusion(model, x, window=(4, 4), stride=(4, 4))
    run = tf.function(
        lambda x: incremental_occlusion(
            model, x, window=(4, 4), stride=(4, 4), full_fraction=0.3
        )
    )
    _close(plain, run(x)[1])


def test_unsupported_inputs_run_plain_occlusion(caplog):
    model = keras.Sequential(
        [keras.Input((3, 16, 16)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    x = tf.random.stateless_uniform((1, 3, 16, 16), (0, 3))
    options = dict(window=(4, 4), stride=(4, 4), spatial_axis=(-2, -1))
    with caplog.at_level("INFO"):
        _, fast = incremental_occlusion(model, x, **options)
    assert "channels-last" in caplog.text
    np.testing.assert_array_equal(fast, occlusion(model, x, **options)[1])


@pytest.mark.parametrize("value", [0, 1.5, "1"])
def test_bad_full_fraction(value):
    with pytest.raises((ValueError, TypeError), match="full_fraction"):
        incremental_occlusion(_stack(), tf.zeros((1, 16, 16, 3)), full_fraction=value)


def test_approximate_is_exact_when_refining_everything_and_on_the_coarse_grid():
    model = _branches()
    x = tf.random.stateless_uniform((1, 20, 20, 3), (0, 4))
    options = dict(window=(4, 4), stride=(1, 1))
    _, exact = occlusion(model, x, **options)
    _close(exact, approximate_occlusion(model, x, refine=1.0, **options)[1])
    _, rough = approximate_occlusion(model, x, refine=0.0, coarse=17, **options)
    # Coarse positions 0 and 17 on each axis: the corner windows are exact, and
    # the top-left pixel is covered by window (0, 0) only.
    np.testing.assert_allclose(rough[0, 0, 0], exact[0, 0, 0], rtol=1e-5)
    assert not np.allclose(rough, exact, atol=1e-6)
    with pytest.raises(ValueError, match="refine"):
        approximate_occlusion(model, x, refine=2.0, **options)


APPLICATIONS = {
    "mobilenetv2": (keras.applications.MobileNetV2, 32),
    "resnet50": (keras.applications.ResNet50, 32),
    "vgg16": (keras.applications.VGG16, 32),
    "inceptionv3": (keras.applications.InceptionV3, 75),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_equals_occlusion_on_applications(name):
    build, px = APPLICATIONS[name]
    keras.utils.set_random_seed(0)
    model = build(
        weights=None, input_shape=(px, px, 3), classes=4, classifier_activation=None
    )
    x = tf.random.stateless_uniform((1, px, px, 3), (0, 5))
    options = dict(window=(px // 4, px // 5), stride=(px // 5, px // 4))
    _, plain = occlusion(model, x, [[2]], **options)
    _, fast = incremental_occlusion(model, x, [[2]], batch_size=16, **options)
    _close(plain, fast)
    plan = incremental_plan(model, (px, px, 3), options["window"], options["stride"])
    assert plan["layers"][0]["mode"] == "patch"
    assert plan["macs"][1] < plan["macs"][0]


@pytest.mark.slow
def test_equals_occlusion_with_a_nested_backbone():
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            backbone,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    x = tf.random.stateless_uniform((2, 32, 32, 3), (0, 6))
    options = dict(window=(8, 8), stride=(6, 6))
    _, plain = occlusion(model, x, **options)
    _close(plain, incremental_occlusion(model, x, batch_size=32, **options)[1])
    plan = incremental_plan(model, (32, 32, 3), (8, 8), (6, 6))
    assert plan["layers"][0]["layer"] == "Conv1"


def test_method_contract():
    assert_method_contract(
        incremental_occlusion, options={"window": (6, 6), "stride": (6, 6)}
    )


def test_a_tensor_batch_size_is_one_trace_and_equals_the_int():
    """The engine passes its chunk size as a run-time tensor."""
    model = _stack()
    x = tf.random.stateless_uniform((2, 16, 16, 3), (0, 4))
    options = dict(window=(4, 4), stride=(3, 3))
    _, expected = incremental_occlusion(model, x, batch_size=5, **options)
    traces = []

    @tf.function
    def run(x, size):
        traces.append(1)
        return incremental_occlusion(model, x, batch_size=size, **options)[1]

    for size in (1, 5, 64):
        _close(expected, run(x, tf.constant(size)))
    assert len(traces) == 1
    with pytest.raises(TypeError, match="`batch_size`"):
        incremental_occlusion(model, x, batch_size=tf.constant(2.0), **options)
