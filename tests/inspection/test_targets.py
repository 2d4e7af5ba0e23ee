"""Target: what is explained, one mechanism for every method."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp import methods
from keras_interp.inspection import Target, expose
from keras_interp.testing import models


@pytest.fixture(scope="module")
def model():
    return models.gap_dense(size=8, channels=4, classes=3)


def _x(batch=2):
    return tf.random.stateless_uniform((batch, 8, 8, 3), [1, 2], -1, 1)


@pytest.mark.parametrize(
    "reduce, expected",
    [
        ("mean", lambda a: a.mean(axis=(1, 2))),
        ("max", lambda a: a.max(axis=(1, 2))),
        ("l1", lambda a: np.abs(a).sum(axis=(1, 2))),
        ("l2", lambda a: np.sqrt((a**2).sum(axis=(1, 2)))),
    ],
)
def test_reductions(model, reduce, expected):
    x = _x()
    (activations,) = expose(model, arguments="conv", outputs=[])(x)
    (scores,) = expose(model, arguments=[], outputs=Target("conv", reduce=reduce))(x)
    np.testing.assert_allclose(scores, expected(activations.numpy()), rtol=1e-5)


def test_position_and_activation(model):
    x = _x()
    (activations,) = expose(model, arguments="conv", outputs=[])(x)
    (unit,) = expose(model, arguments=[], outputs=Target("conv", position=(2, 5)))(x)
    np.testing.assert_allclose(unit, activations[:, 2, 5])
    (probabilities,) = expose(
        model, arguments=[], outputs=Target(activation="softmax")
    )(x)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(model(x)), atol=1e-6)
    exposed = expose(model, outputs=Target(activation="sigmoid"))
    assert exposed.logits_layer is None  # squashed scores: no CAM kernel applies
    assert expose(model, outputs=Target()).logits_layer.name == "logits"


def test_every_method_explains_a_channel_the_same_way(model):
    # Saliency of channel 2's spatial mean equals a hand-made tape.
    x = _x()
    exposed = expose(model, arguments=[], outputs=Target("conv", reduce="mean"))
    _, maps = methods.gradients(exposed, x, [[2], [2]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        (activations,) = expose(model, arguments="conv", outputs=[])(x)
        score = tf.reduce_sum(tf.reduce_mean(activations[..., 2], axis=(1, 2)))
    expected = tf.reduce_mean(tf.abs(tape.gradient(score, x)), axis=-1)
    np.testing.assert_allclose(maps[..., 0], expected, rtol=1e-5, atol=1e-7)
    # Grad-CAM of the same channel, on the layer itself.
    exposed = expose(model, arguments="conv", outputs=Target("conv", reduce="mean"))
    _, cam = methods.gradcam(exposed, x, [[2], [2]])
    np.testing.assert_allclose(cam[..., 0], activations[..., 2] / 64, rtol=1e-5)


def test_errors(model):
    with pytest.raises(ValueError, match="`reduce` must be one of 'mean', 'max'"):
        Target("conv", reduce="sum")
    with pytest.raises(ValueError, match="Give `reduce` or `position`, not both"):
        Target("conv", reduce="mean", position=(0, 0))
    with pytest.raises(ValueError, match=r"`position` must be \(row, col\)"):
        Target("conv", position=(1, -1))
    with pytest.raises(ValueError, match="`activation` must be one of"):
        Target(activation="relu")
    with pytest.raises(ValueError, match="spatial map of shape .* give Target"):
        expose(model, outputs=Target("conv"))
    with pytest.raises(ValueError, match="`position` is outside layer 'conv'"):
        expose(model, outputs=Target("conv", position=(8, 0)))
    with pytest.raises(ValueError, match="`position` needs a spatial layer"):
        expose(model, outputs=Target("logits", position=(0, 0)))
