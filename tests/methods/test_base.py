"""Shared method helpers: the counter-based Gaussian noise and forward()."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.methods._base import forward, hashed_normal, scores
from keras_interp.testing import models


def test_hashed_normal_statistics():
    noise = hashed_normal((200_001,), 3, tf.constant(11)).numpy()
    assert noise.shape == (200_001,)
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 1) < 0.01
    # The two halves come from cos and sin of the same pairs: uncorrelated.
    half = len(noise) // 2
    assert abs(np.corrcoef(noise[:half], noise[half : 2 * half])[0, 1]) < 0.01
    # Normal tails: about 4.55% beyond two standard deviations.
    assert abs(np.mean(np.abs(noise) > 2) - 0.0455) < 0.003


def test_hashed_normal_is_a_pure_function():
    key = tf.constant(5)
    eager = hashed_normal((4, 6), 1, key, stddev=0.5)
    xla = tf.function(lambda k: hashed_normal((4, 6), 1, k, 0.5), jit_compile=True)
    np.testing.assert_allclose(eager, xla(key), atol=1e-6)
    np.testing.assert_array_equal(eager, hashed_normal((4, 6), 1, key, stddev=0.5))
    assert not np.allclose(eager, hashed_normal((4, 6), 1, tf.constant(6), 0.5))
    assert not np.allclose(eager, hashed_normal((4, 6), 2, key, 0.5))


def test_forward_accepts_other_image_sizes_and_callables():
    model = models.gap_dense(size=8)
    x = tf.random.stateless_uniform((2, 16, 16, 3), [0, 1])
    (logits,) = forward(model, x)  # the functional input spec says 8x8
    assert logits.shape == (2, 3)
    with pytest.raises(ValueError):
        model(x)
    (plain,) = forward(lambda images: tf.reduce_sum(images, [1, 2]), x)
    np.testing.assert_allclose(plain, tf.reduce_sum(x, [1, 2]))


def test_scores_needs_a_2d_first_output():
    headless = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1)])
    with pytest.raises(ValueError, match=r"scores of shape \(batch, units\).*Target"):
        scores(headless, tf.zeros((1, 4, 4, 3)), None)
