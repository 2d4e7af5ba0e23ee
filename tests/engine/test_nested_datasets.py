"""explain() over tf.data data sets whose elements are nests of inputs (a dict
or a tuple, optionally with indices): the same results as the arrays."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.engine import explain

N = 5


@pytest.fixture(scope="module")
def two_inputs():
    """`logits = flatten(image) @ A + vector @ B`: the input x gradient maps
    are `image * A` (channels summed) and `vector * B`."""
    rng = np.random.default_rng(0)
    image = keras.Input((4, 4, 2), name="image")
    vector = keras.Input((3,), name="vector")
    dense_a = keras.layers.Dense(3, use_bias=False)
    dense_b = keras.layers.Dense(3, use_bias=False)
    logits = keras.layers.Add()(
        [dense_a(keras.layers.Flatten()(image)), dense_b(vector)]
    )
    model = keras.Model([image, vector], logits)
    kernels = rng.normal(size=(32, 3)), rng.normal(size=(3, 3))
    dense_a.set_weights([kernels[0].astype("float32")])
    dense_b.set_weights([kernels[1].astype("float32")])
    x = (
        rng.normal(size=(N, 4, 4, 2)).astype("float32"),
        rng.normal(size=(N, 3)).astype("float32"),
    )
    y = np.array([0, 2, 1, 1, 0])
    a = kernels[0].reshape(4, 4, 2, 3)[..., y].transpose(3, 0, 1, 2)
    want = (
        (a * x[0]).sum(-1)[..., None],
        (kernels[1][:, y].T * x[1])[..., None],
    )
    return model, x, y, want


def _check(got, want, structure):
    logits, maps = got
    assert type(maps) is structure
    flat = list(maps.values()) if isinstance(maps, dict) else list(maps)
    assert [m.shape for m in flat] == [(N, 4, 4, 1), (N, 3, 1)]
    for a, b in zip(flat, want):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert logits.shape == (N, 1)


def _named(parts):
    return dict(zip(("image", "vector"), parts))


# element structure -> (make the data set from (x, y), structure of the maps)
CASES = {
    "dict": (lambda x, y: (_named(x), y), dict),
    "tuple": (lambda x, y: ((x[0], x[1]), y), tuple),
    "tuple indices (B, 1)": (lambda x, y: ((x[0], x[1]), y[:, None]), tuple),
}


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_nest_datasets_with_indices_equal_the_arrays(two_inputs, case, batched):
    model, x, y, want = two_inputs
    make, structure = CASES[case]
    dataset = tf.data.Dataset.from_tensor_slices(make(x, y))
    if batched:
        dataset = dataset.batch(3)
    got = explain("input_x_gradient", model, dataset, batch_size=2, verbose=0)
    _check(got, want, structure)
    inputs = _named(x) if structure is dict else x
    arrays = explain("input_x_gradient", model, inputs, y, batch_size=2, verbose=0)
    np.testing.assert_allclose(got[0], arrays[0], atol=1e-6)
    for a, b in zip(tf.nest.flatten(got[1]), tf.nest.flatten(arrays[1])):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
def test_nest_datasets_without_indices(two_inputs, batched):
    model, x, _, _ = two_inputs
    arrays = explain("gradients", model, x, batch_size=2, verbose=0)
    for element in (_named(x), x, (x,)):  # a dict, a tuple, a 1-tuple of a tuple
        dataset = tf.data.Dataset.from_tensor_slices(element)
        if batched:
            dataset = dataset.batch(2)
        got = explain("gradients", model, dataset, batch_size=3, verbose=0)
        assert got[0].shape == (N, 3)
        for a, b in zip(tf.nest.flatten(got[1]), tf.nest.flatten(arrays[1])):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_nest_dataset_errors(two_inputs):
    model, x, y, _ = two_inputs
    mixed = tf.data.Dataset.zip(
        (
            tf.data.Dataset.from_tensor_slices(x[0]).batch(2),
            tf.data.Dataset.from_tensor_slices(x[1]),
        )
    )
    with pytest.raises(ValueError, match="all be batched.*or all unbatched"):
        explain("gradients", model, mixed, verbose=0)
    ints = tf.data.Dataset.from_tensor_slices(((x[0], x[1].astype("int32")), y))
    with pytest.raises(ValueError, match=r"`x\[1\]` must hold float"):
        explain("gradients", model, ints, verbose=0)
    nan = x[1].copy()
    nan[3] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices(_named((x[0], nan))).batch(2)
    with pytest.raises(ValueError, match="batch 2 of the data set holds NaN"):
        explain("gradients", model, dataset, verbose=0)
    rows = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    wrong = rows.map(lambda inputs, indices: (inputs, indices[:1]))
    with pytest.raises(ValueError, match="one row per image, but batch 1"):
        explain("gradients", model, wrong, verbose=0)
