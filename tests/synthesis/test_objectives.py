"""Objectives and regularisers: algebra, immutability, and each constructor on
a hand-built context."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_interp.synthesis import objectives as O
from keras_interp.synthesis import regularizers as R
from keras_interp.synthesis.context import Context
from keras_interp.synthesis.objectives import Objective

RNG = np.random.default_rng(0)
ACTS = RNG.normal(size=(2, 4, 5, 3)).astype(np.float32)
DENSE = RNG.normal(size=(2, 6)).astype(np.float32)
LOGITS = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
IMAGES = RNG.uniform(size=(2, 6, 7, 4)).astype(np.float32)  # RGBA


def context(images=IMAGES):
    return Context(
        images=images,
        inputs=images[..., :3],
        layers={"conv": ACTS, "block/dense": DENSE},
        logits=LOGITS,
    )


def value(objective, ctx=None):
    return np.asarray(objective(ctx or context()))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- algebra -------------------------------------------------------------------
A = O.class_logit(0)
B = O.channel("conv", 1)


def test_algebra_matches_arithmetic():
    a, b = value(A), value(B)
    np.testing.assert_allclose(value(A + B), a + b, rtol=1e-5)
    np.testing.assert_allclose(value(A - B), a - b, rtol=1e-5)
    np.testing.assert_allclose(value(2 * A), 2 * a, rtol=1e-5)
    np.testing.assert_allclose(value(A * 2.5), 2.5 * a, rtol=1e-5)
    np.testing.assert_allclose(value(A * B), a * b, rtol=1e-5)
    np.testing.assert_allclose(value(-A), -a, rtol=1e-5)
    np.testing.assert_allclose(value(A / 4), a / 4, rtol=1e-5)
    np.testing.assert_allclose(value(A + 1), a + 1, rtol=1e-5)
    np.testing.assert_allclose(value(3 - A), 3 - a, rtol=1e-5)
    np.testing.assert_allclose(value(sum([A, B, A])), 2 * a + b, rtol=1e-5)
    scalar = O.diversity("conv")
    np.testing.assert_allclose(value(A + scalar), a + value(scalar), rtol=1e-5)


def test_composition_collects_layers_and_logits():
    combined = A + 0.5 * B - O.diversity("block/dense") + O.channel("conv", 0)
    assert combined.layers == ("conv", "block/dense")
    assert combined.needs_logits
    assert not B.needs_logits and B.layers == ("conv",)
    assert "class_logit(0)" in combined.name and "0.5" in combined.name


def test_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        A.name = "other"
    before = (A.name, A.layers, value(A))
    _ = A + B
    _ = -A
    assert (A.name, A.layers) == before[:2]
    np.testing.assert_array_equal(value(A), before[2])


def test_config_round_trip():
    objective = 2 * O.channel("conv", 1, reduce="max") - R.total_variation(0.1)
    objective = -(objective + O.direction("conv", [1.0, 0.0, 0.0])) / 3
    rebuilt = Objective.from_config(objective.get_config())
    np.testing.assert_allclose(value(rebuilt), value(objective), rtol=1e-5)
    import json

    assert json.loads(json.dumps(objective.get_config())) == objective.get_config()


def test_plain_function_objective():
    objective = Objective(lambda ctx: tf.reduce_sum(ctx.images, [1, 2, 3]), "sum")
    np.testing.assert_allclose(value(objective), IMAGES.sum((1, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="cannot be serialised"):
        (objective + A).get_config()


# -- model objectives ------------------------------------------------------------
def test_class_logit_and_probability():
    np.testing.assert_allclose(value(O.class_logit(1)), LOGITS[:, 1])
    np.testing.assert_allclose(value(O.class_logit([2, 0])), [0.5, 0.0])
    probabilities = softmax(LOGITS)
    np.testing.assert_allclose(
        value(O.class_probability(2)), probabilities[:, 2], rtol=1e-5
    )
    np.testing.assert_allclose(
        value(O.class_probability([0, 2])),
        [probabilities[0, 0], probabilities[1, 2]],
        rtol=1e-5,
    )


def test_channel_mean_max_and_dense():
    np.testing.assert_allclose(
        value(O.channel("conv", 2)), ACTS[..., 2].mean((1, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(
        value(O.channel("conv", 2, reduce="max")), ACTS[..., 2].max((1, 2))
    )
    np.testing.assert_allclose(value(O.channel(("block", "dense"), 4)), DENSE[:, 4])
    np.testing.assert_allclose(
        value(O.channel("conv", [0, 1])),
        [ACTS[0, ..., 0].mean(), ACTS[1, ..., 1].mean()],
        rtol=1e-5,
    )


def test_neuron_centre_and_position():
    np.testing.assert_allclose(value(O.neuron("conv", 1)), ACTS[:, 2, 2, 1])
    np.testing.assert_allclose(value(O.neuron("conv", 0, (3, 4))), ACTS[:, 3, 4, 0])


def test_layer_objective_is_mean_square():
    np.testing.assert_allclose(
        value(O.layer_objective("conv")), (ACTS**2).mean((1, 2, 3)), rtol=1e-5
    )


def test_direction_per_position_and_flattened():
    vector = np.array([0.5, -1.0, 2.0], np.float32)
    dots = ACTS @ vector  # (B, H, W)
    cos = dots / (np.linalg.norm(ACTS, axis=-1) * np.linalg.norm(vector))
    np.testing.assert_allclose(
        value(O.direction("conv", vector)), cos.mean((1, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(
        value(O.direction("conv", vector, metric="dot")), dots.mean((1, 2)), rtol=1e-5
    )
    cav = ACTS[0].reshape(-1)  # a direction over flattened NHWC activations
    flat = ACTS.reshape(2, -1)
    expected = flat @ cav / (np.linalg.norm(flat, axis=1) * np.linalg.norm(cav))
    result = value(O.direction("conv", cav))
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    assert result[0] == pytest.approx(1.0)


def test_diversity_of_identical_and_orthogonal_grams():
    same = np.repeat(ACTS[:1], 3, axis=0)
    ctx = Context(images=IMAGES[:1].repeat(3, 0), layers={"conv": same})
    assert value(O.diversity("conv"), ctx) == pytest.approx(-2.0)  # -(B - 1)
    orthogonal = np.zeros((2, 2, 2, 2), np.float32)
    orthogonal[0, ..., 0] = 1.0
    orthogonal[1, ..., 1] = 1.0
    ctx = Context(images=IMAGES, layers={"conv": orthogonal})
    assert value(O.diversity("conv"), ctx) == pytest.approx(0.0)
    single = Context(images=IMAGES[:1], layers={"conv": ACTS[:1]})
    assert value(O.diversity("conv"), single) == pytest.approx(0.0)
    # lucid: sum over ordered pairs of the cosine similarity of Gram matrices
    grams = np.einsum("bhwc,bhwd->bcd", ACTS, ACTS).reshape(2, -1)
    grams /= np.linalg.norm(grams, axis=1, keepdims=True)
    assert value(O.diversity("conv")) == pytest.approx(-(grams[0] @ grams[1]), 1e-5)


# -- regularisers --------------------------------------------------------------
RGB = IMAGES[..., :3]


def test_alpha_minimality():
    np.testing.assert_allclose(
        value(R.alpha_minimality(2.0)), -2 * IMAGES[..., 3].mean((1, 2)), rtol=1e-5
    )


def test_l1_l2():
    np.testing.assert_allclose(
        value(R.l1(0.5)), -0.5 * np.abs(RGB).sum((1, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(
        value(R.l1(constant=0.5)), -np.abs(RGB - 0.5).sum((1, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(
        value(R.l2(2.0)), -2 * np.sqrt((RGB**2).sum((1, 2, 3))), rtol=1e-5
    )


def test_total_variation_matches_tf():
    expected = tf.image.total_variation(tf.constant(RGB)).numpy()
    np.testing.assert_allclose(
        value(R.total_variation(0.1)), -0.1 * expected, rtol=1e-5
    )
    dy = np.abs(np.diff(RGB, axis=1)).sum((1, 2, 3))
    dx = np.abs(np.diff(RGB, axis=2)).sum((1, 2, 3))
    np.testing.assert_allclose(value(R.total_variation()), -(dy + dx), rtol=1e-5)


def test_high_frequency():
    dy = (np.diff(RGB, axis=1) ** 2).mean((1, 2, 3))
    dx = (np.diff(RGB, axis=2) ** 2).mean((1, 2, 3))
    np.testing.assert_allclose(value(R.high_frequency(3.0)), -3 * (dy + dx), rtol=1e-5)
    flat = Context(images=np.full((1, 5, 5, 3), 0.3, np.float32))
    assert value(R.high_frequency(), flat) == pytest.approx(0.0)


def test_regularisers_ignore_alpha_channel():
    opaque, clear = IMAGES.copy(), IMAGES.copy()
    opaque[..., 3], clear[..., 3] = 1.0, 0.0
    for reg in (R.l1(), R.l2(), R.total_variation(), R.high_frequency()):
        np.testing.assert_allclose(
            value(reg, context(opaque)), value(reg, context(clear)), rtol=1e-5
        )


def test_regularisers_with_one_colour_channel_and_alpha():
    grey = IMAGES[..., 2:]  # one colour channel and an alpha channel
    ctx, colour = Context(images=grey, alpha=True), grey[..., :1]
    np.testing.assert_allclose(
        value(R.alpha_minimality(2.0), ctx), -2 * grey[..., 1].mean((1, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(
        value(R.l1(), ctx), -np.abs(colour).sum((1, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(
        value(R.l2(), ctx), -np.sqrt((colour**2).sum((1, 2, 3))), rtol=1e-5
    )
    expected = tf.image.total_variation(tf.constant(colour)).numpy()
    np.testing.assert_allclose(value(R.total_variation(), ctx), -expected, rtol=1e-5)
    dy = (np.diff(colour, axis=1) ** 2).mean((1, 2, 3))
    dx = (np.diff(colour, axis=2) ** 2).mean((1, 2, 3))
    np.testing.assert_allclose(value(R.high_frequency(), ctx), -(dy + dx), rtol=1e-5)
    # Without `alpha`, two channels are both colour, as four are with alpha=False.
    plain = Context(images=grey)
    np.testing.assert_allclose(
        value(R.l1(), plain), -np.abs(grey).sum((1, 2, 3)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="needs an alpha channel"):
        value(R.alpha_minimality(), plain)
    opaque = Context(images=IMAGES, alpha=False)
    np.testing.assert_allclose(
        value(R.l1(), opaque), -np.abs(IMAGES).sum((1, 2, 3)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="needs at least one colour channel"):
        Context(images=IMAGES[..., :1], alpha=True)


# -- errors --------------------------------------------------------------------
def test_errors():
    with pytest.raises(ValueError, match="Layer 'fc' was not computed"):
        value(O.channel("fc", 0))
    ctx = Context(images=IMAGES, layers={"conv": ACTS})
    with pytest.raises(ValueError, match="logits were not computed"):
        value(O.class_logit(0), ctx)
    with pytest.raises(ValueError, match="needs an alpha channel"):
        value(R.alpha_minimality(), context(IMAGES[..., :3]))
    with pytest.raises(ValueError, match="`vector` has 4 values"):
        value(O.direction("conv", np.ones(4)))
    with pytest.raises(ValueError, match="`vector` must be finite"):
        O.direction("conv", [np.nan])
    with pytest.raises(ValueError, match="`metric` must be one of"):
        O.direction("conv", [1.0], metric="angle")
    with pytest.raises(ValueError, match="`reduce` must be one of 'mean', 'max'"):
        O.channel("conv", 0, reduce="sum")
    with pytest.raises(ValueError, match="`index` must be a non-negative integer"):
        O.class_logit(-1)
    with pytest.raises(ValueError, match="`index` must be a non-negative integer"):
        O.channel("conv", 1.5)
    with pytest.raises(ValueError, match="`position` is outside"):
        value(O.neuron("conv", 0, (4, 0)))
    with pytest.raises(ValueError, match="needs a spatial layer"):
        value(O.neuron("block/dense", 0))
    with pytest.raises(ValueError, match="`weight` must be a finite non-negative"):
        R.total_variation(-1.0)
    with pytest.raises(TypeError, match="A layer reference must be"):
        O.channel(1.5, 0)
    with pytest.raises(TypeError, match="unsupported operand"):
        A + "text"
    with pytest.raises(ValueError, match="Unknown objective constructor"):
        Objective.from_config({"constructor": "nope", "args": {}})


def test_one_total_variation_with_both_normalisations():
    images = tf.constant(RGB)
    tf_tv = tf.image.total_variation(images).numpy()
    np.testing.assert_allclose(R.variation(images).numpy(), tf_tv, rtol=1e-5)
    x = np.asarray(RGB, np.float64)
    dy, dx = np.abs(np.diff(x, axis=1)), np.abs(np.diff(x, axis=2))
    mean = dy.mean((1, 2, 3)) + dx.mean((1, 2, 3))
    np.testing.assert_allclose(R.variation(images, "mean").numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(
        value(R.total_variation(2.0, reduction="mean")), -2.0 * mean, rtol=1e-5
    )
    config = R.total_variation(2.0, reduction="mean").get_config()
    rebuilt = O.Objective.from_config(config)
    np.testing.assert_allclose(value(rebuilt), -2.0 * mean, rtol=1e-5)
    with pytest.raises(ValueError, match="Received: reduction='l1'"):
        R.variation(images, "l1")
