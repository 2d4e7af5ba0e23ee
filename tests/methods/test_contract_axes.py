"""More axes of the contract table, for every registered method: a two-output
model with a head selected, a two-input model, and float16 / bfloat16 models.

Each method is run on the tiny models of `keras_interp.testing.contract` and
compared with the same method on the one-input, one-output, float32 model
built from the same layers.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_interp import methods
from keras_interp.engine import explain
from keras_interp.inspection import Target, expose
from keras_interp.inspection.expose import select_output
from keras_interp.testing import contract

NAMES = sorted(methods.METHODS)

#: Methods that explain each input of several (one map per input, a tuple).
PER_INPUT = {
    "gradients",
    "guided_gradients",
    "input_x_gradient",
    "integrated_gradients",
}
#: Methods that explain one layer: one map whatever the number of inputs.
ONE_MAP = {"cam", "gradcam", "gradcampp", "layercam", "layer_gradients",
           "upsampled_activation", "reciprocam"}  # fmt: skip
#: Methods that perturb one image input: several inputs are refused.
IMAGE_ONLY = {"occlusion", "rise", "scorecam"}
#: Methods whose maps are scores of the model (not differences of scores):
#: the other input's additive term is in every value of the map.
SCORE_MAPS = {"reciprocam"}

#: Largest |difference| of maps, relative to the float32 maps' largest |value|
#: (the tolerance `explain` documents for mixed-precision models).
MIXED_TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 6e-2}
#: FullGrad sums a bias-gradient map per layer: bfloat16's 8-bit mantissa
#: leaves 0.19 of the largest value on this model (measured), so 0.25.
MIXED_OVERRIDES = {("full_gradients", "mixed_bfloat16"): 0.25}


def _options(name):
    return dict(contract.OPTIONS.get(name, {}))


def _run(name, model, x, y, **options):
    return explain(name, model, x, y, verbose=0, **_options(name), **options)


def _close(got, want, atol=1e-4):
    scale = max(float(np.abs(want).max()), 1e-6)
    np.testing.assert_allclose(got, want, atol=atol * scale, rtol=atol)


@pytest.fixture(scope="module")
def data():
    x, y = contract.data(4)
    return x, y % 2  # valid for a 2-unit head too


# ---------------------------------------------------------- several outputs
@pytest.fixture(scope="module")
def heads():
    """`flat_model` with a second head "aux" Dense(2) on the pooled features."""
    flat = contract.flat_model()
    aux = keras.layers.Dense(2, name="aux")(flat.get_layer("gap").output)
    two = keras.Model(flat.inputs, [flat.outputs[0], aux], name="two_heads")
    single = keras.Model(flat.inputs, aux, name="aux_only")
    return two, single


@pytest.mark.parametrize("name", NAMES)
def test_two_output_model_with_the_second_head_selected(heads, data, name):
    two, single = heads
    x, y = data
    if name == "full_gradients":  # Its exposer needs the one logits layer.
        with pytest.raises(ValueError, match="2 outputs.*Target\\(output="):
            _run(name, two, x, y)
        return
    chosen = (
        expose(two, outputs=Target(output="aux"))
        if methods.needs_exposed(name)
        else select_output(two, "aux")
    )
    got = _run(name, chosen, x, y)
    want = _run(name, single, x, y)
    _close(got[0], want[0])
    _close(got[1], want[1])
    with pytest.raises(ValueError, match="2 outputs"):
        _run(name, two, x, y)  # never a silent choice


# ----------------------------------------------------------- several inputs
@pytest.fixture(scope="module")
def two_inputs():
    """`flat_model(images) + Dense(flatten(other))`: additive, so the maps of
    `images` equal `flat_model`'s (plus the other input's term, for maps that
    are scores)."""
    flat = contract.flat_model()
    other = keras.Input(flat.inputs[0].shape[1:], name="other")
    extra = keras.layers.Dense(contract.CLASSES, name="extra")
    total = keras.layers.Add(name="total")(
        [flat.outputs[0], extra(keras.layers.Flatten()(other))]
    )
    return keras.Model([flat.inputs[0], other], total, name="two_inputs"), flat


@pytest.mark.parametrize("name", NAMES)
def test_two_input_model(two_inputs, data, name):
    model, flat = two_inputs
    x, y = data
    pair = (x, x[::-1].copy())
    if name in IMAGE_ONLY or name == "full_gradients":
        with pytest.raises(ValueError, match="inputs"):
            _run(name, model, pair, y)
        return
    options = {"logits_layer": "logits"} if name == "cam" else {}
    if name in ONE_MAP:
        model = expose(
            model,
            arguments={"name": "gap", "link": "input"},
            outputs=Target(output="total"),
        )
    _, maps = _run(name, model, pair, y, **options)
    _, want = _run(name, flat, x, y)
    if name in SCORE_MAPS:  # + extra(flatten(other)) of the explained unit
        term = np.asarray(two_inputs[0](pair)) - np.asarray(flat(x))
        want = want + np.take_along_axis(term, y[:, :1], 1)[:, None, None, :]
    if name in PER_INPUT:
        assert isinstance(maps, tuple) and len(maps) == 2
        assert maps[1].shape == want.shape
        maps = maps[0]
    _close(maps, want)


# -------------------------------------------------------- mixed precision
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_mixed_precision_models_give_float32_maps(data, name):
    x, y = data
    reference = contract.flat_model()
    want = _run(name, reference, x, y)
    for policy, tolerance in MIXED_TOLERANCE.items():
        keras.mixed_precision.set_global_policy(policy)
        try:
            mixed = contract.flat_model()
        finally:
            keras.mixed_precision.set_global_policy("float32")
        mixed.set_weights(reference.get_weights())
        assert mixed.get_layer("c1").compute_dtype != "float32"
        got = _run(name, mixed, x, y)
        assert got[0].dtype == got[1].dtype == np.float32
        scale = max(float(np.abs(want[1]).max()), 1e-6)
        error = float(np.abs(got[1] - want[1]).max()) / scale
        tolerance = MIXED_OVERRIDES.get((name, policy), tolerance)
        assert error <= tolerance, f"{policy}: {error:.3g} > {tolerance}"
