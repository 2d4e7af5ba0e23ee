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
