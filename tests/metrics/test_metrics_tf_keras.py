"""Metrics on tf_keras models give the values they give on Keras 3 models.

The same architecture is built with both Keras versions and the same weights
(`keras_interp.testing.models` builders take the framework), so every metric
must agree to round-off: the logits read through `expose` (the softmax head
stripped), the maps computed through the engine, the clone that
`model_randomization` re-initialises.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_interp import metrics
from keras_interp.testing.models import gap_dense

tf_keras = pytest.importorskip("tf_keras")

MASKS = np.zeros((3, 8, 8), bool)
MASKS[:, 2:6, 2:6] = True

#: metric -> options (small, so each pair of calls takes about a second).
CASES = {
    "deletion": {"method": "gradcam", "steps": 4},
    "insertion": {"method": "gradients", "steps": 4},
    "pointing_game": {"method": "gradcam", "masks": MASKS},
    "relevance_mass": {"method": "gradients", "masks": MASKS},
    "model_randomization": {"method": "gradients"},
    "max_sensitivity": {"method": "gradients", "nb_samples": 3},
    "sparseness": {"method": "gradcam"},
}


def nested(framework, seed: int = 0):
    """A Sequential model holding a Sequential backbone, ending in a softmax."""
    layers = framework.layers
    backbone = framework.Sequential(
        [
            framework.Input((8, 8, 3)),
            layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        ],
        name="backbone",
    )
    model = framework.Sequential(
        [
            framework.Input((8, 8, 3)),
            backbone,
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(3, name="logits"),
            layers.Activation("softmax", name="probabilities"),
        ],
        name="nested",
    )
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def pair():
    """The same softmax CNN and weights in Keras 3 and tf_keras."""
    return (
        gap_dense(keras, activation="softmax"),
        gap_dense(tf_keras, activation="softmax"),
    )


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).uniform(size=(3, 8, 8, 3)).astype(np.float32)


def test_the_two_models_agree(pair, x):
    keras3, legacy = pair
    np.testing.assert_allclose(
        keras3.predict(x, verbose=0), legacy.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_metric_values_match_keras3(name, pair, x):
    keras3, legacy = pair
    expected = metrics.METRICS[name](keras3, x, **CASES[name])
    result = metrics.METRICS[name](legacy, x, **CASES[name])
    assert np.isfinite(expected.values).all()
    np.testing.assert_allclose(result.values, expected.values, atol=1e-5)
    if expected.curves is not None:
        np.testing.assert_allclose(result.curves, expected.curves, atol=1e-5)
    assert result.info.keys() == expected.info.keys()


def test_scores_skip_the_tf_keras_softmax(pair, x):
    # With score="logit" a softmax left in place would bound the scores by 1.
    _, legacy = pair
    logits = metrics.deletion(legacy, x, method="gradients", steps=2, score="logit")
    probabilities = metrics.deletion(legacy, x, method="gradients", steps=2)
    assert not np.allclose(logits.curves, probabilities.curves)
    assert (probabilities.curves <= 1.0).all()


def test_randomization_of_a_nested_tf_keras_model(x):
    keras3, legacy = nested(keras), nested(tf_keras)
    trained = [w.copy() for w in legacy.get_weights()]
    expected = metrics.model_randomization(keras3, x, method="gradcam")
    result = metrics.model_randomization(legacy, x, method="gradcam")
    assert result.info["layers"] == ["logits", "conv"] == expected.info["layers"]
    np.testing.assert_allclose(result.curves, expected.curves, atol=1e-5)
    # The user's model is never modified.
    for before, after in zip(trained, legacy.get_weights()):
        np.testing.assert_array_equal(before, after)
