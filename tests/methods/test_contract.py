"""The contract table: every method, plain and wrapped by smooth and tta, on a
flat and a nested model, gives the same numbers through every path.

Paths compared to one eager reference call `method(model, x, y)`:
numpy inputs in batches of 3, a tensor in batches of 1, a batched
`tf.data.Dataset`, `jit_compile=True`; and `indices=None` (all units), whose
map of unit `y` must equal the map explained for `y` alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp import methods
from keras_interp.engine import explain
from keras_interp.testing import contract

NAMES = sorted(methods.METHODS)
CASES = [(name, "plain", kind) for name in NAMES for kind in contract.MODELS] + [
    (name, wrapper, "flat") for name in NAMES for wrapper in ("smooth", "tta")
]


@pytest.fixture(scope="module")
def models():
    return {kind: build() for kind, build in contract.MODELS.items()}


def close(actual, expected, what):
    expected = np.asarray(expected)
    scale = max(float(np.max(np.abs(expected))), 1e-3)
    np.testing.assert_allclose(
        actual, expected, rtol=1e-4, atol=2e-5 * scale, err_msg=what
    )


@pytest.mark.parametrize("name, wrapper, kind", CASES)
def test_contract(models, name, wrapper, kind):
    method, model, options = contract.case(name, models[kind])
    method = contract.WRAPPERS[wrapper](method)
    x, y = contract.data()
    logits, maps = method(model, tf.constant(x), tf.constant(y), **options)

    # Shapes, dtype, finite values.
    assert logits.shape == (8, 1), name
    assert maps.shape.rank == 4 and maps.shape[0] == 8 and maps.shape[-1] == 1
    assert maps.dtype == tf.float32 and logits.dtype == tf.float32
    assert np.isfinite(maps).all() and np.isfinite(logits).all()
    assert float(tf.reduce_max(tf.abs(maps))) > 0, f"{name}: all-zero maps"

    run = dict(resizing=False, verbose=0, **options)
    paths = {
        "numpy, batches of 3": explain(method, model, x, y, batch_size=3, **run),
        "tf.data": explain(
            method,
            model,
            tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
            **run,
        ),
        "jit_compile": explain(
            method, model, x, y, batch_size=8, jit_compile=True, **run
        ),
    }
    if wrapper == "plain":
        paths["tensor, batches of 1"] = explain(
            method, model, tf.constant(x), tf.constant(y), batch_size=1, **run
        )
    for path, (path_logits, path_maps) in paths.items():
        close(path_logits, logits, f"{name}/{wrapper}/{kind} logits via {path}")
        close(path_maps, maps, f"{name}/{wrapper}/{kind} maps via {path}")

    # indices=None explains every unit; unit y's map is the one explained alone.
    all_logits, all_maps = method(model, tf.constant(x), None, **options)
    rows = np.arange(8)
    close(np.asarray(all_logits)[rows, y[:, 0]], logits[:, 0], f"{name} all logits")
    close(np.asarray(all_maps)[rows, ..., y[:, 0]], maps[..., 0], f"{name} all maps")


@pytest.mark.parametrize("name", NAMES)
def test_identity_laws(models, name):
    method, model, options = contract.case(name, models["flat"])
    x, y = contract.data(batch=3)
    reference = method(model, tf.constant(x), tf.constant(y), **options)
    for wrapped in (
        methods.smooth(method, noise=0.0),
        methods.tta(method, scales=(), hflip=False),
    ):
        result = wrapped(model, tf.constant(x), tf.constant(y), **options)
        for a, b in zip(result, reference):
            np.testing.assert_array_equal(a, b)


def test_the_table_covers_the_registry():
    assert set(contract.OPTIONS) <= set(methods.METHODS)
    assert len(CASES) == 4 * len(methods.METHODS)
