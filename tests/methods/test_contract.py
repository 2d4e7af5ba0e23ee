"""The contract table: every registered method, plain and wrapped by smooth and
tta, on a flat and a nested model, passes `assert_method_contract` (shapes,
dtype, finite values, indices=None vs given, batch-size invariance, eager ==
tf.function == XLA); identity laws run the wrappers' real code paths; every
record is consistent with the registry built from it.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf

from keras_interp import filters, methods, shortcuts
from keras_interp.methods.record import FAMILIES
from keras_interp.testing import assert_method_contract, contract

NAMES = sorted(methods.METHODS)
PLAIN = [(name, "plain", kind) for name in NAMES for kind in contract.MODELS]
WRAPPED = [(name, wrapper, "flat") for name in NAMES for wrapper in ("smooth", "tta")]


@pytest.fixture(scope="module")
def models():
    return {kind: build() for kind, build in contract.MODELS.items()}


@pytest.mark.parametrize("name, wrapper, kind", PLAIN + WRAPPED)
def test_contract(models, name, wrapper, kind):
    method = contract.WRAPPERS[wrapper](methods.METHODS[name])
    assert_method_contract(
        method,
        models[kind],
        options=contract.OPTIONS.get(name, {}),
        # One batch size for wrapped methods: the plain ones cover chunking.
        batch_sizes=(1, 3) if wrapper == "plain" else (3,),
    )


@pytest.mark.parametrize("name", NAMES)
def test_identity_laws_run_the_wrappers(models, name):
    # Both laws go through the wrapper's real path: tta resizes by 1.0 and
    # averages two passes; smooth adds zero noise to 3 copies and averages them.
    method, model, options = contract.case(name, models["flat"])
    x, y = contract.data(batch=3)
    reference = method(model, tf.constant(x), tf.constant(y), **options)
    laws = {
        "tta(scales=(1.0,), hflip=False)": methods.tta(
            method, scales=(1.0,), hflip=False
        ),
        "smooth(noise=0, repetitions=3)": methods.smooth(
            method, repetitions=3, noise=0.0, seed=0, batch_size=3
        ),
    }
    for law, wrapped in laws.items():
        result = wrapped(model, tf.constant(x), tf.constant(y), **options)
        for a, b in zip(result, reference):
            scale = max(float(np.max(np.abs(b))), 1e-6)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale, err_msg=law)


def test_the_contract_check_catches_broken_methods(models):
    model = models["flat"]

    def wrong_rank(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        logits, maps = methods.gradients(model, inputs, indices)
        return logits, maps[..., 0]

    def batch_dependent(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        logits, maps = methods.gradients(model, inputs, indices)
        return logits, maps * tf.cast(tf.shape(inputs)[0], tf.float32)

    def ignores_indices(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        units = None if indices is None else tf.zeros_like(indices)  # always 0
        return methods.gradients(model, inputs, units)

    for broken, message in (
        (wrong_rank, "maps of rank 4"),
        (batch_dependent, "batch_size=1"),
        (ignores_indices, "indices=None"),
    ):
        with pytest.raises(AssertionError, match=message):
            assert_method_contract(broken, model, jit_compile=False)


def test_records_are_consistent():
    exposed = set()
    for name, record in methods.RECORDS.items():
        assert record.name == name and methods.METHODS[name] is record.function
        assert record.family in FAMILIES
        assert methods.record(name) is record
        assert methods.record(methods.smooth(record.function)) is record
        if record.exposed:
            exposed.add(name)
            assert callable(record.exposer), name
        else:
            assert record.exposer is None, name
        assert callable(record.postprocessing), name
        assert shortcuts.NATURAL_POSTPROCESSING[name] is record.postprocessing
        assert (name in shortcuts.SHORTCUTS) == record.shortcut
        parameters = inspect.signature(record.function).parameters
        assert list(parameters)[:3] == ["model", "inputs", "indices"], name
        assert parameters["spatial_axis"].kind is inspect.Parameter.KEYWORD_ONLY
        for option, spec in record.options.items():
            # Every default is valid under its own spec.
            assert spec.default is parameters[option].default
            spec.validate(spec.default, option)
    assert methods.EXPOSED == exposed
    assert methods.record("full_gradients").exposer is (
        methods.gradient.full_gradients_model
    )
    assert shortcuts.NATURAL_POSTPROCESSING["gradcam"] is filters.positive_normalize
    for name, record in methods.WRAPPER_RECORDS.items():
        assert methods.WRAPPERS[name] is record.function
        for option, spec in record.options.items():
            spec.validate(spec.default, option)


def test_options_of_the_table_are_valid():
    for name, options in contract.OPTIONS.items():
        assert methods.check_options(name, options).keys() == options.keys()
