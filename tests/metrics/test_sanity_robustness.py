"""Model randomisation, random logit, max-sensitivity, average stability."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_interp import metrics
from keras_interp.metrics.sanity import reinitialise
from keras_interp.testing.evidence import evidence_cnn
from tests.metrics.conftest import edges, image_itself


@pytest.fixture(scope="module")
def cnn():
    return evidence_cnn(16, 3, seed=1)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_randomisation_tells_gradients_from_model_free_maps(cnn, images, mode):
    before = [w.copy() for w in cnn.get_weights()]
    x, y = images[:2], np.array([0, 2])
    grads = metrics.model_randomization(cnn, x, y, method="gradients", mode=mode)
    free = edges if mode == "cascading" else image_itself
    same = metrics.model_randomization(cnn, x, y, method=free, mode=mode)
    assert grads.info["layers"] == ["logits", "conv4", "conv3", "conv2", "conv1"]
    assert grads.curves.shape == (2, 5)
    assert grads.mean < 0.5
    np.testing.assert_allclose(same.values, 1.0, atol=1e-6)
    for a, b in zip(before, cnn.get_weights()):  # the user's model is untouched
        np.testing.assert_array_equal(a, b)


def test_ssim_and_hog_similarities(cnn, images):
    from keras_interp.metrics.similarity import map_similarity

    rng = np.random.default_rng(0)
    a = rng.random((3, 16, 16))
    b = rng.random((3, 16, 16))
    ramp = np.linspace(0, 1, 256).reshape(1, 16, 16).repeat(3, 0)
    for kind in ("ssim", "hog"):
        np.testing.assert_allclose(map_similarity(a, a, kind), 1.0, atol=1e-6)
        np.testing.assert_allclose(map_similarity(ramp, 3 * ramp + 1, kind), 1.0,
                                   atol=1e-6)  # fmt: skip
        assert map_similarity(a, b, kind).max() < 0.5
    edge = metrics.model_randomization(
        cnn, images[:2], [0, 1], method=edges, similarity="ssim"
    )
    np.testing.assert_allclose(edge.values, 1.0, atol=1e-6)


def test_reinitialise_uses_the_layers_own_initializers():
    layer = keras.layers.Dense(
        3, kernel_initializer=keras.initializers.Constant(0.5), bias_initializer="ones"
    )
    layer.build((None, 2))
    layer.set_weights([np.zeros((2, 3)), np.zeros(3)])
    reinitialise(layer, seed=0)
    np.testing.assert_array_equal(layer.get_weights()[0], 0.5)
    np.testing.assert_array_equal(layer.get_weights()[1], 1.0)
    seeded = keras.layers.Dense(4, kernel_initializer="he_normal")
    seeded.build((None, 5))
    reinitialise(seeded, seed=7)
    first = seeded.get_weights()[0]
    reinitialise(seeded, seed=7)
    np.testing.assert_array_equal(first, seeded.get_weights()[0])
    assert 0.3 < first.std() / np.sqrt(2 / 5) < 1.7  # He normal's scale


def test_random_logit(cnn, images):
    y = np.array([0, 1, 2, 0])
    edge = metrics.random_logit(cnn, images, y, method=edges)
    np.testing.assert_allclose(edge.values, 1.0, atol=1e-6)
    assert (edge.info["classes"] != y).all()
    grads = metrics.random_logit(
        cnn, images, y, method="gradients", similarity="spearman"
    )
    assert grads.mean < 0.9


def _reference_neighbours(x, seed, radius, samples):
    noise = np.random.default_rng(seed).uniform(
        -radius, radius, (len(x), samples, *x.shape[1:])
    )
    base = x.mean(-1)
    moved = (x[:, None] + noise.astype(np.float32)).mean(-1)
    return base, moved


def test_max_sensitivity_and_average_stability_match_reference(cnn, images):
    base, moved = _reference_neighbours(images, 4, 0.1, 5)
    delta = moved - base[:, None]
    sens = metrics.max_sensitivity(
        cnn, images, None, method=image_itself, seed=4, radius=0.1, nb_samples=5
    )
    expected = np.sqrt((delta**2).sum((2, 3))).max(1) / np.sqrt((base**2).sum((1, 2)))
    np.testing.assert_allclose(sens.values, expected, rtol=1e-4)
    stab = metrics.average_stability(
        cnn, images, None, method=image_itself, seed=4, radius=0.1, nb_samples=5
    )
    np.testing.assert_allclose(stab.values, np.sqrt((delta**2).sum((2, 3))).mean(1),
                               rtol=1e-4)  # fmt: skip
    l1 = metrics.average_stability(
        cnn, images, None, method=image_itself, seed=4, radius=0.1, nb_samples=5,
        distance="l1",
    )  # fmt: skip
    np.testing.assert_allclose(l1.values, np.abs(delta).sum((2, 3)).mean(1), rtol=1e-4)
