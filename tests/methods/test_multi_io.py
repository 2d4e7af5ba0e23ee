"""Models with several outputs (one head chosen, by index or name, alike for
every method) and several inputs (one map per input)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tf_keras

from keras_interp.engine import explain
from keras_interp.inspection import Target, expose
from keras_interp.inspection.expose import select_output
from keras_interp.shortcuts import prepare

# Several outputs: a shared conv trunk, head "a" Dense(3), head "b" Dense(2)
# with a softmax (explained before it, as the logits of a one-head model).

HEADS = {"a": (0, 3), "b": (1, 2)}  # name -> (index, units)


def _two_heads(framework=keras, dict_outputs=False):
    k = framework
    inputs = k.Input((8, 8, 3), name="images")
    x = k.layers.Conv2D(4, 3, padding="same", activation="tanh", name="trunk")(inputs)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    a = k.layers.Dense(3, name="a")(x)
    b = k.layers.Dense(2, activation="softmax", name="b")(x)
    outputs = {"first": a, "second": b} if dict_outputs else [a, b]
    two = k.Model(inputs, outputs, name="two_heads")
    singles = {"a": k.Model(inputs, a, name="only_a"), "b": k.Model(inputs, b)}
    return two, singles


@pytest.fixture(scope="module")
def heads():
    keras.utils.set_random_seed(0)
    return _two_heads()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype("float32")


def _y(units):
    return np.array([0, units - 1, 1])


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("by", ["index", "name"])
def test_cam_explains_the_chosen_head(heads, x, head, by):
    two, singles = heads
    index, units = HEADS[head]
    chosen = expose(two, outputs=Target(output=index if by == "index" else head))
    y = _y(units)
    for name in ("gradcam", "cam"):
        got = explain(name, chosen, x, y, verbose=0)
        want = explain(name, prepare(singles[head], name), x, y, verbose=0)
        np.testing.assert_allclose(got[0], want[0], atol=1e-5)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
        assert np.abs(want[1]).max() > 1e-4  # not trivially zero


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("by", ["index", "name"])
def test_gradients_explain_the_chosen_head(heads, x, head, by):
    two, singles = heads
    index, units = HEADS[head]
    chosen = select_output(two, index if by == "index" else head)
    y = _y(units)
    # The head's pre-activation scores, as `expose` gives for one head.
    logits_only = expose(singles[head], arguments=[])
    for name in ("gradients", "integrated_gradients", "occlusion"):
        options = {"window": (4, 4), "stride": (4, 4)} if name == "occlusion" else {}
        got = explain(name, chosen, x, y, verbose=0, **options)
        want = explain(name, logits_only, x, y, verbose=0, **options)
        np.testing.assert_allclose(got[0], want[0], atol=1e-5)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
        assert np.abs(want[1]).max() > 1e-6


def test_a_linear_head_equals_the_plain_single_head_model(heads, x):
    two, singles = heads
    got = explain("gradients", select_output(two, "a"), x, _y(3), verbose=0)
    want = explain("gradients", singles["a"], x, _y(3), verbose=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)


def test_heads_differ(heads, x):
    """Each head is really selected (the two give different maps)."""
    two, _ = heads
    first = explain("gradcam", expose(two, outputs=Target(output=0)), x, [0, 1, 1])
    second = explain("gradcam", expose(two, outputs=Target(output=1)), x, [0, 1, 1])
    assert np.abs(first[1] - second[1]).max() > 1e-4


def test_dict_outputs_by_key_and_layer_name(x):
    keras.utils.set_random_seed(1)
    two, singles = _two_heads(dict_outputs=True)
    want = explain("gradcam", prepare(singles["b"], "gradcam"), x, _y(2), verbose=0)
    for ref in ("second", "b"):
        chosen = expose(two, outputs=Target(output=ref))
        got = explain("gradcam", chosen, x, _y(2), verbose=0)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_tf_keras_two_heads(x):
    tf_keras.utils.set_random_seed(2)
    two, singles = _two_heads(tf_keras)
    want = explain("gradcam", prepare(singles["a"], "gradcam"), x, _y(3), verbose=0)
    chosen = expose(two, outputs=Target(output="a"))
    got = explain("gradcam", chosen, x, _y(3), verbose=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


@pytest.mark.parametrize("name", ["gradients", "gradcam", "occlusion", "rise"])
def test_no_head_chosen_is_an_error_for_every_method(heads, x, name):
    two, _ = heads
    with pytest.raises(ValueError, match=r"2 outputs \(0: 'a', 1: 'b'\).*Target"):
        explain(name, prepare(two, name), x, verbose=0)


def test_output_errors(heads):
    two, _ = heads
    with pytest.raises(ValueError, match=r"no output 'c'.*0: 'a'.*output='c'"):
        expose(two, outputs=Target(output="c"))
    with pytest.raises(ValueError, match="no output 2.*Received: output=2"):
        select_output(two, 2)
    with pytest.raises(ValueError, match="`layer` or `output`, not both"):
        Target("gap", output=0)
    with pytest.raises(TypeError, match="Received: output=1.5"):
        Target(output=1.5)
    with pytest.raises(ValueError, match=r"2 outputs.*Target\(output=.*Received: model="):
        expose(two)
