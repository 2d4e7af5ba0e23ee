"""explain(..., compute_dtype=...): a float32 model run in 16-bit compute
without rebuilding it; float32 maps within the documented tolerance."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_interp.engine import explain
from keras_interp.engine.precision import COMPUTE_DTYPES, with_compute_dtype
from keras_interp.inspection import expose

# Max abs difference over max |map|, measured on this model (see explain's
# docstring): float16 about 1e-3; bfloat16 0.065 (gradients) and 0.006
# (Grad-CAM). Bounds with margin.
TOLERANCE = {
    "mixed_float16": 0.01,
    "float16": 0.01,
    "mixed_bfloat16": 0.1,
    "bfloat16": 0.1,
}


@pytest.fixture(scope="module")
def model():
    """A small conv net with batch norm and a nested backbone."""
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
        ],
        name="backbone",
    )
    inputs = keras.Input((12, 12, 3))
    x = backbone(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(-1, 1, (4, 12, 12, 3)).astype("float32")


def _relative(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("compute_dtype", COMPUTE_DTYPES)
@pytest.mark.parametrize("method", ["gradients", "gradcam"])
def test_maps_equal_float32_within_tolerance(model, x, method, compute_dtype):
    y = [0, 1, 2, 1]
    want = explain(method, model, x, y, verbose=0)
    got = explain(method, model, x, y, verbose=0, compute_dtype=compute_dtype)
    assert got[0].dtype == got[1].dtype == np.float32
    assert got[1].shape == want[1].shape
    assert _relative(got[1], want[1]) < TOLERANCE[compute_dtype]
    assert _relative(got[0], want[0]) < TOLERANCE[compute_dtype]
    # Really computed in 16 bits (not the float32 model again).
    assert _relative(got[1], want[1]) > 0


def test_the_copy_is_cached_and_the_model_untouched(model):
    half = with_compute_dtype(model, "mixed_bfloat16")
    assert with_compute_dtype(model, "mixed_bfloat16") is half
    assert with_compute_dtype(model, "float16") is not half
    assert with_compute_dtype(model, None) is model
    assert half.get_layer("conv").compute_dtype == "bfloat16"
    assert half.get_layer("backbone").layers[0].compute_dtype == "bfloat16"
    assert half.get_layer("conv").variable_dtype == "float32"
    assert model.get_layer("conv").compute_dtype == "float32"
    assert model.get_layer("backbone").layers[0].compute_dtype == "float32"
    for a, b in zip(half.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", ["float64", "mixed", "fp16", 16, keras.DTypePolicy])
def test_bad_values_name_compute_dtype(model, x, bad):
    with pytest.raises(ValueError, match=r"`compute_dtype` must be None or one of"):
        explain("gradients", model, x, verbose=0, compute_dtype=bad)


def test_an_exposed_model_is_refused_with_a_hint(model, x):
    with pytest.raises(ValueError, match=r"`compute_dtype` needs a plain Keras"):
        explain("gradcam", expose(model), x, verbose=0, compute_dtype="bfloat16")


def test_the_copy_follows_the_models_current_weights():
    """A model that trained since the copy was made is explained as it is now."""
    model = _stale_check_model()
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    before = explain("gradients", model, x, [[0], [1]], compute_dtype="mixed_float16")
    for weight in model.weights:
        weight.assign(weight * 2.0)
    after = explain("gradients", model, x, [[0], [1]], compute_dtype="mixed_float16")
    full = explain("gradients", model, x, [[0], [1]])
    np.testing.assert_allclose(after[0], full[0], rtol=1e-2, atol=1e-3)
    assert not np.allclose(before[0], after[0], rtol=1e-2)


def _stale_check_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(2)(h))
