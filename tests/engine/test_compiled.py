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


# One compiled function per method and options, however built; batch size and
# chunk size never enter a trace.


def _registry_case(name):
    from keras_interp.testing import contract

    source = contract.flat_model()  # Kept alive: `prepare` holds it weakly.
    method, model, options = contract.case(name, source)
    return method, model, options, contract.data(9), source


def _trace_count_over_batch_sizes(name, calls):
    from keras_interp import methods

    method, model, options, (x, y), _ = _registry_case(name)
    for call in range(calls):
        batch_size = call % 9 + 1
        explain(method, model, x, y, batch_size=batch_size, verbose=0, **options)
    options = methods.check_options(method, options)
    return compiled_function(method, model, **options).experimental_get_tracing_count()


@pytest.mark.parametrize(
    "name", ["occlusion", "rise", "scorecam", "integrated_gradients"]
)
def test_chunking_methods_trace_at_most_three_times_over_batch_sizes(name):
    assert _trace_count_over_batch_sizes(name, calls=9) <= 3


class RowCounter:
    """A model recording, at run time, its calls and the most rows it saw."""

    def __init__(self, model):
        self.model = model
        self.rows, self.calls = tf.Variable(0), tf.Variable(0)

    def __call__(self, x, training=False):
        self.rows.assign(tf.maximum(self.rows, tf.shape(x)[0]))
        self.calls.assign_add(1)
        return self.model(x, training=training)


# name -> (options, scored copies per image).
CHUNKING = {
    "occlusion": ({"window": (2, 2), "stride": (2, 2)}, 6),  # 3 x 2 positions
    "rise": ({"num_masks": 5, "grid_size": 2}, 5),
    "integrated_gradients": ({"steps": 4}, 4),
}


@pytest.mark.parametrize("name", sorted(CHUNKING))
def test_chunking_methods_score_chunks_of_the_engine_batch_size(name):
    from keras_interp import methods

    model = RowCounter(conv_model())
    options, copies = CHUNKING[name]
    x = images(7)
    for batch_size in (2, 3, 5):
        model.rows.assign(0)
        model.calls.assign(0)
        explain(name, model, x, batch_size=batch_size, verbose=0, **options)
        sizes = [min(batch_size, 7 - start) for start in range(0, 7, batch_size)]
        # Per batch: one clean pass, then ceil(n * copies / batch_size) chunks.
        want = sum(1 + -(-n * copies // batch_size) for n in sizes)
        assert int(model.calls.numpy()) == want, batch_size
        assert int(model.rows.numpy()) == batch_size
    method = methods.get(name)
    function = compiled_function(
        method, model, **methods.check_options(method, options)
    )
    assert function.experimental_get_tracing_count() <= 3


@pytest.mark.slow
def test_every_method_traces_at_most_three_times_in_100_calls():
    from keras_interp import methods

    counts = {
        name: _trace_count_over_batch_sizes(name, 100) for name in methods.METHODS
    }
    assert max(counts.values()) <= 3, counts


def test_inline_wrappers_partials_and_specs_share_one_function():
    import functools

    from keras_interp import methods

    model = conv_model()
    spec = methods.get("smooth(gradients, repetitions=4, seed=0)")
    inline = [methods.smooth(methods.gradients, repetitions=4, seed=0) for _ in "ab"]
    first = compiled_function(spec, model)
    assert all(compiled_function(m, model) is first for m in inline)
    other = methods.smooth(methods.gradients, repetitions=5, seed=0)
    assert compiled_function(other, model) is not first
    partials = [functools.partial(pooled_gradient, pool=2) for _ in "ab"]
    assert compiled_function(partials[0], model) is compiled_function(
        partials[1], model
    )
    assert compiled_function(partials[0], model) is not compiled_function(
        functools.partial(pooled_gradient, pool=1), model
    )
    lambdas = [lambda m, x, i=None, **k: input_gradient(m, x, i) for _ in "ab"]
    assert compiled_function(lambdas[0], model) is compiled_function(lambdas[1], model)
    x = images(3)
    np.testing.assert_array_equal(
        explain(inline[0], model, x, verbose=0)[1],
        explain(spec, model, x, verbose=0)[1],
    )


class Configured:
    """A wrapper object: `__wrapped__` plus a config."""

    def __init__(self, method, pool):
        self.__wrapped__, self.pool = method, pool

    def __call__(self, model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        return self.__wrapped__(model, inputs, indices, pool=self.pool)

    def get_config(self):
        return {"pool": self.pool}


def test_wrapper_objects_are_keyed_by_their_config():
    model = conv_model()
    same = compiled_function(Configured(pooled_gradient, 2), model)
    assert compiled_function(Configured(pooled_gradient, 2), model) is same
    assert compiled_function(Configured(pooled_gradient, 1), model) is not same
