"""Tests of compilation: eager, XLA and distributed runs agree; traces; the cache."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf
from engine_helpers import (
    H,
    W,
    conv_model,
    images,
    input_gradient,
    pooled_gradient,
    units,
)

from keras_interp.engine import clear_cache, compiled_function, explain
from keras_interp.engine import compiled as compiled_module

# Methods and models whose answers are known (as in test_explain.py).


@pytest.fixture(scope="module")
def strategy():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (set up in tests/conftest.py)")
    return tf.distribute.MirroredStrategy(devices)


# Eager, compiled, XLA and distributed runs agree.


@pytest.mark.parametrize("jit_compile", [False, True])
def test_eager_and_compiled_agree(jit_compile):
    model = conv_model()
    x, y = images(5), units(5, width=3)
    eager = input_gradient(model, tf.constant(x), tf.constant(y))
    got = explain(
        input_gradient, model, x, y, batch_size=2, jit_compile=jit_compile, verbose=0
    )
    np.testing.assert_allclose(got[0], eager[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got[1], eager[1].numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "batch_size, jit_compile", [(4, False), (3, False), (1, False), (3, True)]
)
def test_mirrored_strategy_matches_one_device(strategy, batch_size, jit_compile):
    # 5 images: batches of 4+1, 3+2 and 1 leave a final batch smaller than, or
    # not divisible by, the two replicas.
    model = conv_model()
    x, y = images(5), units(5, width=2)
    options = {"batch_size": batch_size, "verbose": 0}
    want = explain(input_gradient, model, x, y, **options)
    got = explain(
        input_gradient,
        model,
        x,
        y,
        strategy=strategy,
        jit_compile=jit_compile,
        **options,
    )
    assert got[1].shape == want[1].shape == (5, H, W, 2)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_mirrored_strategy_with_a_dataset_and_no_indices(strategy):
    model = conv_model()
    x = images(5)
    want = explain(pooled_gradient, model, x, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(3)
    got = explain(pooled_gradient, model, dataset, strategy=strategy, verbose=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


# Compilation: traces and the weak cache.


def test_varying_batch_sizes_trace_at_most_three_times():
    model = conv_model()
    x, y = images(12), units(12)
    rng = np.random.default_rng(0)
    for _ in range(100):
        n, batch_size = int(rng.integers(1, 13)), int(rng.integers(1, 6))
        explain(input_gradient, model, x[:n], y[:n], batch_size=batch_size, verbose=0)
    function = compiled_function(input_gradient, model)
    assert function.experimental_get_tracing_count() <= 3


def test_cache_keys_options_by_value_or_identity():
    model = conv_model()
    same = compiled_function(pooled_gradient, model, pool=2)
    assert compiled_function(pooled_gradient, model, pool=2) is same
    assert compiled_function(pooled_gradient, model, pool=3) is not same
    assert compiled_function(pooled_gradient, model, pool=2, jit_compile=True) is not (
        same
    )
    weights = np.arange(3.0)
    by_value = compiled_function(pooled_gradient, model, extra=[weights, tf.ones(2)])
    again = compiled_function(
        pooled_gradient, model, extra=[weights.copy(), tf.ones(2)]
    )
    assert again is by_value
    changed = compiled_function(pooled_gradient, model, extra=[weights + 1, tf.ones(2)])
    assert changed is not by_value
    variable = tf.Variable(1.0)
    by_id = compiled_function(pooled_gradient, model, extra=variable)
    assert compiled_function(pooled_gradient, model, extra=variable) is by_id
    assert compiled_function(pooled_gradient, model, extra=tf.Variable(1.0)) is not (
        by_id
    )


def test_cache_holds_no_strong_reference_and_sets_no_attribute():
    model = conv_model()
    model(tf.constant(images(1)))  # Let Keras set its own lazy attributes first.
    attributes = set(vars(model))
    explain(input_gradient, model, images(3), units(3), verbose=0)
    explain(input_gradient, model, images(3), jit_compile=True, verbose=0)
    assert set(vars(model)) == attributes
    model_id, model_ref = id(model), weakref.ref(model)
    assert model_id in compiled_module._CACHE
    del model
    gc.collect()
    assert model_ref() is None
    assert model_id not in compiled_module._CACHE


def test_clear_cache():
    model = conv_model()
    first = compiled_function(input_gradient, model)
    clear_cache(model)
    assert compiled_function(input_gradient, model) is not first
    clear_cache()
    assert id(model) not in compiled_module._CACHE
