"""TCAV on models whose answers are known by construction.

`red_model`: 16x16 images -> `features` (4x4 average pooling, 48 values) ->
`softplus(4 * red - 2)` per position -> Dense: logit 1 is the sum and logit 0
minus the sum. Raising the red channel of the features raises logit 1 (with a
gradient that varies from image to image); green and blue do not reach the
logits at all. Random and target images are uniform noise. The "red" concept
has a bright red channel; the "orthogonal" one raises green and lowers blue by
as much, with red at its expected value 0.5, so its mean activation differs
from the random sets' only along a direction orthogonal to red *and* to the
mean activation (CAVlib trains on raw activations with an intercept: a concept
that brightens every channel gives CAVs with a component along the mean
activation, which does reach the logit).
"""

from __future__ import annotations

import re
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.concepts import (
    CAV,
    TCAVResult,
    directional_derivatives,
    relative_tcav,
    tcav,
    tcav_score,
)
from keras_interp.models import KerasModel

SIZE = 16
NUM_RANDOM = 6
SEED = {"random_state": 0}


def _red_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    features = keras.layers.AveragePooling2D(4, name="features")(inputs)
    red = keras.layers.Conv2D(1, 1, activation="softplus", name="red")(features)
    logits = keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(red))
    model = keras.Model(inputs, logits)
    red_kernel = np.reshape([4.0, 0, 0], (1, 1, 3, 1))
    model.get_layer("red").set_weights([red_kernel, np.array([-2.0])])
    model.get_layer("logits").set_weights(
        [np.stack([-np.ones(16), np.ones(16)], axis=1), np.zeros(2)]
    )
    return model


def _linear_model(kernel: np.ndarray) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    features = keras.layers.AveragePooling2D(4, name="features")(inputs)
    dense = keras.layers.Dense(kernel.shape[1], name="logits")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(features)))
    dense.set_weights([kernel, np.linspace(-1, 1, kernel.shape[1])])
    return model


def _noise(seed: int, n: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype("f4")


def _red(seed: int, n: int = 10) -> np.ndarray:
    images = _noise(seed, n)
    images[..., 0] = 0.5 + 0.5 * images[..., 0]
    return images


def _orthogonal(seed: int, n: int = 10) -> np.ndarray:
    images = _noise(seed, n)
    images[..., 0] = 0.5
    images[..., 1] = 0.5 + 0.5 * images[..., 1]
    images[..., 2] = 0.5 * images[..., 2]
    return images


@pytest.fixture(scope="module")
def model():
    return KerasModel(_red_model())


@pytest.fixture(scope="module")
def data():
    return {
        "red": _red(100),
        "orthogonal": _orthogonal(101),
        "randoms": [_noise(200 + i) for i in range(NUM_RANDOM)],
        "targets": _noise(300, 12),
    }


def run(model, data, concept, class_index=1, **kw):
    kw.setdefault("random_state", 0)
    args = (data[concept], data["randoms"], data["targets"])
    return tcav(model, "features", class_index, *args, **kw)


# -- directional derivatives ----------------------------------------------------
def test_linear_head_derivative_is_kernel_column_dot_cav():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(48, 3))
    model = KerasModel(_linear_model(kernel))
    v = rng.normal(size=48)
    images = list(_noise(1, 5))
    for c in range(3):
        expected = kernel[:, c] @ (v / np.linalg.norm(v))
        got = directional_derivatives(model, images, "features", v, c)
        assert got.shape == (5,)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # a raw Keras model, a tensor batch and a CAV object give the same numbers
    keras_model = _linear_model(kernel)
    got = directional_derivatives(keras_model, tf.constant(images), "features", v, 0)
    np.testing.assert_allclose(got, kernel[:, 0] @ (v / np.linalg.norm(v)), rtol=1e-5)
    cav = CAV(uuid.uuid4(), v / np.linalg.norm(v), (model, "features"))
    got = directional_derivatives(model, _noise(1, 5), "features", cav, 2, batch_size=2)
    np.testing.assert_allclose(got, kernel[:, 2] @ cav.vector, rtol=1e-5, atol=1e-6)


def test_nonlinear_head_derivative_matches_closed_form(model):
    images = _noise(2, 7)
    v = np.random.default_rng(1).normal(size=48)
    v /= np.linalg.norm(v)
    got = directional_derivatives(model, images, "features", v, 1, batch_size=3)
    red = images.reshape(7, 4, 4, 4, 4, 3).mean(axis=(2, 4))[..., 0].reshape(7, 16)
    grad_red = 4 / (1 + np.exp(-(4 * red - 2)))  # d softplus(4r - 2) / dr
    expected = grad_red @ v.reshape(16, 3)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        directional_derivatives(model, images, "features", v, 0), -expected, rtol=1e-4
    )


def _frozen_red_model():
    """`red_model` as a frozen GraphDef, through `FrozenGraphModel`."""
    from keras_interp.models.frozen import FrozenGraphModel

    @tf.function
    def graph(x):
        features = tf.identity(tf.nn.avg_pool2d(x, 4, 4, "VALID"), name="features")
        red = tf.reduce_sum(tf.nn.softplus(4.0 * features[..., 0] - 2.0), [1, 2])
        return tf.identity(tf.stack([-red, red], axis=-1), name="logits")

    spec = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="input")
    graph_def = graph.get_concrete_function(spec).graph.as_graph_def()
    return FrozenGraphModel(graph_def, output_names=["features"], logits_name="logits")


def test_frozen_graph_model_agrees_with_keras(model, data):
    frozen = _frozen_red_model()
    v = np.random.default_rng(3).normal(size=48)
    np.testing.assert_allclose(
        directional_derivatives(frozen, data["targets"], "features", v, 1),
        directional_derivatives(model, data["targets"], "features", v, 1),
        rtol=1e-4,
        atol=1e-6,
    )
    result = run(frozen, data, "red")
    assert result.mean > 0.95 and result.significant
    np.testing.assert_allclose(
        result.random_scores, run(model, data, "red").random_scores
    )


def test_tcav_score():
    assert tcav_score([0.3, -0.1, 2.0, 0.5]) == 0.75
    assert tcav_score([0.0, 0.0, 1.0]) == pytest.approx(1 / 3)  # zero: not up
    np.testing.assert_array_equal(tcav_score([[1, -1], [1, 1]]), [0.5, 1.0])
    with pytest.raises(ValueError, match="`derivatives` must be a non-empty"):
        tcav_score([])


# -- the statistical test -------------------------------------------------------
def test_concept_that_drives_the_class_is_significant(model, data):
    result = run(model, data, "red")
    assert isinstance(result, TCAVResult)
    assert result.concept_scores.shape == (NUM_RANDOM,)
    assert result.random_scores.shape == (NUM_RANDOM * (NUM_RANDOM - 1),)
    assert result.concept_derivatives.shape == (NUM_RANDOM, 12)
    assert len(result.cavs) == NUM_RANDOM
    assert result.mean > 0.95
    assert result.p_value < 0.05 and result.significant
    assert result.t_statistic > 0
    assert 0.2 < result.random_mean < 0.8
    assert "significant" in str(result) and f"{result.mean:.2f}" in str(result)


def test_concept_lowers_the_other_class(model, data):
    result = run(model, data, "red", class_index=0)
    assert result.mean < 0.05
    assert result.significant and result.t_statistic < 0


def test_orthogonal_concept_is_not_significant(model, data):
    for seed in (0, 1, 2):
        result = run(model, data, "orthogonal", random_state=seed)
        assert result.p_value >= 0.05 and not result.significant


def test_seeded_runs_are_identical(model, data):
    a = run(model, data, "red", random_state=7)
    b = run(model, data, "red", random_state=np.random.RandomState(7))
    np.testing.assert_array_equal(a.concept_scores, b.concept_scores)
    np.testing.assert_array_equal(a.random_scores, b.random_scores)
    np.testing.assert_array_equal(a.concept_derivatives, b.concept_derivatives)
    assert a.p_value == b.p_value
    for x, y in zip(a.cavs, b.cavs):
        np.testing.assert_array_equal(x.vector, y.vector)
    c = run(model, data, "red", seed=7, random_state=None)  # the new name
    np.testing.assert_array_equal(a.concept_scores, c.concept_scores)
    assert a.p_value == c.p_value
    with pytest.raises(ValueError, match="not both"):
        run(model, data, "red", seed=7, random_state=7)


def test_inputs_as_images_batches_or_activations_agree(model, data):
    reference = run(model, data, "red", random_state=3)
    acts = model.activations(list(data["red"]), "features")
    as_lists = dict(data, red=list(data["red"]), targets=list(data["targets"]))
    for variant in (dict(data, red=acts), as_lists):
        result = run(model, variant, "red", random_state=3)
        np.testing.assert_allclose(result.concept_scores, reference.concept_scores)
        np.testing.assert_allclose(result.random_scores, reference.random_scores)


def test_random_counterpart(model, data):
    result = run(model, data, "red", random_counterpart=0)
    assert result.concept_scores.shape == (NUM_RANDOM - 1,)
    assert result.random_scores.shape == (NUM_RANDOM - 1,)
    assert result.significant


def test_relative_tcav(model, data):
    red, other = data["red"], data["orthogonal"]
    args = (data["randoms"], data["targets"])
    red_vs_other = relative_tcav(model, "features", 1, red, other, *args, **SEED)
    assert red_vs_other.concept_scores.shape == (10,)
    assert red_vs_other.mean > 0.95 and red_vs_other.significant
    other_vs_red = relative_tcav(model, "features", 1, other, red, *args, **SEED)
    assert other_vs_red.mean < 0.05 and other_vs_red.significant
    # the null is tcav's with the same seed
    np.testing.assert_array_equal(
        red_vs_other.random_scores, run(model, data, "red").random_scores
    )


def test_result_with_undefined_p_value_is_not_significant():
    result = TCAVResult(
        np.ones(3), np.ones(4), float("nan"), float("nan"), 0.05, np.ones((3, 2)), ()
    )
    assert not result.significant and "not significant" in str(result)


# -- errors ---------------------------------------------------------------------
TCAV_ERRORS = {
    "empty concept": (
        lambda d: dict(concept_images=[]),
        ValueError,
        "`concept_images` must not be empty",
    ),
    "empty random set": (
        lambda d: dict(random_image_sets=[d["randoms"][0], []]),
        ValueError,
        re.escape("`random_image_sets[1]` must not be empty"),
    ),
    "one random set": (
        lambda d: dict(random_image_sets=d["randoms"][:1]),
        ValueError,
        "at least 2 sets",
    ),
    "counterpart and 2 sets": (
        lambda d: dict(random_image_sets=d["randoms"][:2], random_counterpart=0),
        ValueError,
        "at least 2 sets",
    ),
    "empty targets": (
        lambda d: dict(target_images=[]),
        ValueError,
        "`target_images` must not be empty",
    ),
    "class index too large": (
        lambda d: dict(class_index=2),
        ValueError,
        "`class_index` must be smaller than the number of logits",
    ),
    "negative class index": (
        lambda d: dict(class_index=-1),
        ValueError,
        "`class_index` must be a non-negative",
    ),
    "unknown layer": (
        lambda d: dict(layer_name="featurez"),
        ValueError,
        "featurez",
    ),
    "alpha": (
        lambda d: dict(alpha=1.5),
        ValueError,
        "`alpha` must be in the open interval",
    ),
    "counterpart index": (
        lambda d: dict(random_counterpart=9),
        ValueError,
        "`random_counterpart` must index",
    ),
    "random state": (
        lambda d: dict(random_state="seed"),
        ValueError,
        "`random_state` must be",
    ),
    "activation size": (
        lambda d: dict(concept_images=np.ones((3, 5), "f4")),
        ValueError,
        "`concept_images` must have 48 activations",
    ),
    "single image": (
        lambda d: dict(concept_images=d["red"][0]),
        ValueError,
        "`concept_images` must have rank 4",
    ),
    "model": (
        lambda d: dict(model="not a model"),
        TypeError,
        "`model` must be a keras_interp.models.Model",
    ),
    "path": (
        lambda d: dict(target_images="photo.png"),
        TypeError,
        "`target_images` must be a sequence of images",
    ),
}


@pytest.mark.parametrize("case", TCAV_ERRORS)
def test_tcav_errors(model, data, case):
    change, error, pattern = TCAV_ERRORS[case]
    with pytest.raises(error, match=pattern) as info:
        tcav(**dict(_kwargs(model, data), **change(data)))
    assert "Received:" in str(info.value)


def _kwargs(model, data):
    return dict(
        model=model,
        layer_name="features",
        class_index=1,
        concept_images=data["red"],
        random_image_sets=data["randoms"],
        target_images=data["targets"],
    )


@pytest.mark.parametrize(
    "cav, class_index, pattern",
    [
        (np.ones(7), 1, r"one value per activation of the layer \(48\)"),
        (np.zeros(48), 1, "finite and non-zero"),
        ("up", 1, "`cav` must be a CAV or a 1-D direction"),
        (np.ones(48), 5, "`class_index` must be smaller than the number of logits"),
    ],
)
def test_directional_derivative_errors(model, data, cav, class_index, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern) as info:
        directional_derivatives(model, data["targets"], "features", cav, class_index)
    assert "Received:" in str(info.value)


def test_relative_tcav_needs_two_runs(model, data):
    with pytest.raises(ValueError, match="`num_runs` must be at least 2"):
        relative_tcav(
            model,
            "features",
            1,
            data["red"],
            data["orthogonal"],
            data["randoms"],
            data["targets"],
            num_runs=1,
        )
