"""Tests of `traced_function`: no AutoGraph for the library's code, AutoGraph
when a model or a method branches on a tensor in Python, and one retracing
count per compiled function."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf
from engine_helpers import (
    conv_model,
    images,
    input_gradient,
    linear_answer,
    linear_model,
    units,
)

from keras_interp import methods
from keras_interp.engine import compiled_function, explain
from keras_interp.engine.tracing import traced_function


def test_library_methods_trace_without_autograph():
    model = conv_model()
    x, y = images(3), units(3)
    for spec in ("gradients", "occlusion", "rise"):
        options = {"window": (2, 2)} if spec == "occlusion" else {}
        if spec == "rise":
            options = {"num_masks": 8, "grid_size": 2}
        method = methods.get(spec)
        explain(method, model, x, y, verbose=0, **options)
        function = compiled_function(method, model, **options)
        assert function.autograph is False, spec
        assert function.experimental_get_tracing_count() == 1, spec


def branching_gradient(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """`input_gradient`, negated when the batch's mean is negative: Python
    control flow on a tensor, which only AutoGraph can trace."""
    logits, maps = input_gradient(model, inputs, indices)
    if tf.reduce_mean(inputs) < 0:
        maps = -maps
    return logits, maps


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_method_branching_on_a_tensor_is_traced_with_autograph(sign):
    model, kernel, bias = linear_model()
    x = np.abs(images(4)) * sign
    logits, maps = explain(branching_gradient, model, x, verbose=0)
    want_logits, want_maps = linear_answer(x, kernel, bias)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps, sign * want_maps, rtol=1e-5, atol=1e-6)
    assert compiled_function(branching_gradient, model).autograph is True


def gated_model():
    """A subclassed tf_keras model that doubles the logits of a batch whose
    mean is positive, with a Python `if` (tf_keras converts `call` with
    AutoGraph when the caller's trace does; Keras 3 never does)."""
    tf_keras = pytest.importorskip("tf_keras")

    class GatedModel(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf_keras.layers.Dense(3, kernel_initializer="ones")

        def call(self, x, training=False):
            logits = self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))
            if tf.reduce_mean(x) > 0:
                logits = 2.0 * logits
            return logits

    return GatedModel()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_model_branching_on_a_tensor_is_explained(sign):
    model = gated_model()
    x = np.abs(images(2)) * sign
    model(x[:1])
    y = np.zeros((2, 1), "int32")
    logits, maps = explain("gradients", model, x, y, verbose=0)
    factor = 2.0 if sign > 0 else 1.0
    np.testing.assert_allclose(
        logits[:, 0], factor * x.reshape(2, -1).sum(1), rtol=1e-5
    )
    # d logit / d x = factor everywhere (all-ones kernel); `gradients` maps
    # are the mean over channels of |d logit / d x|.
    np.testing.assert_allclose(maps[..., 0], np.full(maps.shape[:3], factor))
    assert compiled_function(methods.get("gradients"), model).autograph is True


def test_a_real_error_is_raised_not_retried_forever():
    calls = []

    def explicit_bool(x):
        calls.append(1)
        return bool(x > 0)  # not an `if`: AutoGraph does not convert it either

    function = traced_function(explicit_bool)
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError):
        function(tf.constant(1.0))
    assert function.autograph is True
    assert len(calls) == 2  # once without, once with AutoGraph


def test_options_are_forwarded_and_autograph_is_refused():
    function = traced_function(
        lambda x: x + 1.0, input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    assert function.get_concrete_function().structured_outputs.shape.as_list() == [
        None
    ]
    with pytest.raises(TypeError, match="`autograph`"):
        traced_function(lambda x: x, autograph=True)


def test_many_methods_in_a_row_do_not_warn_of_retracing(caplog):
    """TensorFlow keys its "frequent retracing" warning by Python code; the
    engine builds one function per method from the same code, so without its
    own key, the sixth method in a row would warn."""
    model = conv_model()
    x, y = images(2), units(2)
    specs = [
        "gradients",
        "input_x_gradient",
        "integrated_gradients",
        "smooth(gradients, repetitions=2)",
        "guided_gradients",
        "occlusion",
        "rise",
    ]
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for spec in specs:
            options = {"window": (2, 2)} if spec == "occlusion" else {}
            if spec == "rise":
                options = {"num_masks": 8, "grid_size": 2}
            explain(spec, model, x, y, verbose=0, **options)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_branching_method_under_a_strategy(jit_compile):
    """The replica step (XLA) falls back to AutoGraph too."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (set up in tests/conftest.py)")
    strategy = tf.distribute.MirroredStrategy(devices)
    model, kernel, bias = linear_model()
    x = -np.abs(images(3))
    logits, maps = explain(
        branching_gradient,
        model,
        x,
        strategy=strategy,
        jit_compile=jit_compile,
        verbose=0,
    )
    want_logits, want_maps = linear_answer(x, kernel, bias)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps, -want_maps, rtol=1e-5, atol=1e-6)
