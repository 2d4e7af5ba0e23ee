"""Filters: real numbers for each, and the fixed `negative`."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp import filters

MAPS = tf.constant(
    [[[[-2.0, 1.0], [0.0, 3.0]], [[4.0, -1.0], [2.0, 1.0]]]]
)  # (1, 2, 2, 2): two maps


def test_normalize_per_map():
    out = filters.normalize(MAPS).numpy()
    first, second = out[..., 0].ravel(), out[..., 1].ravel()
    np.testing.assert_allclose(first, [0.0, 2 / 6, 1.0, 4 / 6])
    np.testing.assert_allclose(second, [0.5, 1.0, 0.0, 0.5])


def test_constant_map_normalises_to_zero():
    out = filters.normalize(tf.ones((1, 3, 3, 1)))
    np.testing.assert_array_equal(out, np.zeros((1, 3, 3, 1)))


def test_positive_negative_absolute():
    np.testing.assert_array_equal(filters.positive(MAPS), np.maximum(MAPS, 0))
    np.testing.assert_array_equal(filters.negative(MAPS), np.maximum(-MAPS.numpy(), 0))
    np.testing.assert_array_equal(filters.absolute(MAPS), np.abs(MAPS))
    # keras-explainable's negative was the positive part: ours is not.
    assert not np.array_equal(filters.negative(MAPS), filters.positive(MAPS))


@pytest.mark.parametrize(
    "name, parts",
    [
        ("positive_normalize", ("positive", "normalize")),
        ("absolute_normalize", ("absolute", "normalize")),
        ("negative_normalize", ("negative", "normalize")),
    ],
)
def test_normalized_variants(name, parts):
    composed = getattr(filters, name)
    expected = MAPS
    for part in parts:
        expected = getattr(filters, part)(expected)
    np.testing.assert_allclose(composed(MAPS), expected)
    assert composed.__name__ == name


def test_compose_order_axis_and_identity():
    double = lambda x, axis: 2 * x  # noqa: E731
    double.__name__ = "double"
    chained = filters.compose(filters.normalize, double)
    np.testing.assert_allclose(chained(MAPS), 2 * filters.normalize(MAPS))
    assert chained.__name__ == "normalize_double"
    np.testing.assert_array_equal(filters.compose()(MAPS), MAPS)
    whole = filters.normalize(MAPS, axis=(-4, -3, -2, -1)).numpy()
    assert whole.min() == 0.0 and whole.max() == 1.0
    with pytest.raises(TypeError, match=r"`filters\[1\]` must be callable"):
        filters.compose(filters.normalize, 3)


ALL_FILTERS = [
    filters.normalize,
    filters.positive,
    filters.negative,
    filters.absolute,
    filters.positive_normalize,
    filters.absolute_normalize,
    filters.negative_normalize,
]


@pytest.mark.parametrize("f", ALL_FILTERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "maps, axis, message",
    [
        (np.ones((4, 4)), (-3, -2), "out of range for maps of rank 2"),
        (np.ones((1, 4, 4, 1)), (1, 4), "out of range for maps of rank 4"),
        (np.ones((1, 4, 4, 1)), (1, -3), "repeats an axis"),
        (np.ones((1, 4, 4, 1)), (), "must not be empty"),
    ],
)
def test_bad_rank_or_axes_are_our_error_in_every_mode(f, maps, axis, message):
    with pytest.raises(ValueError, match=message) as info:
        f(maps, axis=axis)
    assert "Received: axis=" in str(info.value)
    spec = tf.TensorSpec(maps.shape, tf.float32)
    for jit in (False, True):  # tf.function and XLA: checked while tracing
        traced = tf.function(lambda x: f(x, axis=axis), jit_compile=jit)
        with pytest.raises(ValueError, match=message):
            traced.get_concrete_function(spec)


def test_axis_types():
    maps = np.arange(8, dtype=np.float32).reshape(1, 2, 4, 1)
    with pytest.raises(TypeError, match="Received: axis='hw'"):
        filters.normalize(maps, axis="hw")
    with pytest.raises(TypeError, match="`x` must hold real numbers"):
        filters.positive(np.array(["a", "b"]))
    # numpy integers and a single int are axes too; integer maps become float
    by_numpy = filters.normalize(maps, axis=(np.int64(1), np.int64(2)))
    np.testing.assert_allclose(by_numpy.numpy().ravel(), np.arange(8) / 7)
    np.testing.assert_allclose(
        filters.normalize(maps.astype(np.int32), axis=2).numpy()[0, 1, :, 0],
        [0, 1 / 3, 2 / 3, 1],
    )
