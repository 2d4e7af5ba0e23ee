"""The registry read from the method records: specs, records, option checks,
wrappers as stable objects, and registering a method of your own."""

from __future__ import annotations

import functools

import pytest

from keras_interp import filters, methods
from keras_interp.methods import (
    OptionSpec,
    check_options,
    gradcam,
    gradients,
    occlusion,
    record,
    rise,
    smooth,
    tta,
)


# ------------------------------------------------------------------- specs
def test_specs_and_inline_wrappers_are_one_object():
    inline = [smooth(gradients, repetitions=20) for _ in range(2)]
    assert inline[0] is inline[1]
    assert methods.get("smooth(gradients, repetitions=20)") is inline[0]
    assert methods.get("smooth(gradients)") is smooth(gradients)  # defaults alike
    assert methods.get("smooth(gradients)") is inline[0]  # 20 is the default
    nested = "tta(smooth(gradcam, seed=0), scales=[0.5, 2.0])"
    assert methods.get(nested) is tta(smooth(gradcam, seed=0), scales=(0.5, 2))
    spec = methods.get("occlusion(window=(5, 5))")
    assert spec is methods.get("occlusion(window=[5, 5])")
    assert spec is methods.with_defaults(occlusion, {"window": (5, 5)})
    assert spec is not methods.get("occlusion(window=(5, 4))")
    assert smooth(spec, seed=1) is smooth(
        methods.get("occlusion(window=(5,5))"), seed=1
    )


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ("gradcamm", ValueError, r"Unknown method 'gradcamm'.*Did you mean gradcam"),
        ("smooth(gradients, repetitons=3)", ValueError, "Did you mean 'repetitions'"),
        ("occlusion(windw=(3, 3))", ValueError, "Did you mean 'window'"),
        ("occlusion(window=(0, 3))", ValueError, r"pair of positive.*window=\(0, 3\)"),
        ("rise(probability=2)", ValueError, r"<= 1. Received: probability=2"),
        ("smooth(gradients, repetitions=0)", ValueError, "repetitions=0"),
        ("smooth(gradients, gradcam)", ValueError, "exactly one method"),
        ("smooth(", ValueError, "Cannot parse"),
        ("occlusion(window=x)", ValueError, "must be literals"),
    ],
)
def test_bad_specs(spec, error, match):
    with pytest.raises(error, match=match):
        methods.get(spec)


# ----------------------------------------------------------------- records
def test_record_looks_through_wrappers_specs_and_partials():
    assert record("gradcam").function is gradcam
    assert record(tta(smooth(gradcam))) is record("gradcam")
    assert record("occlusion(window=(3, 3))").name == "occlusion"
    assert record(functools.partial(occlusion, window=(3, 3))).name == "occlusion"
    assert record("full_gradients").exposer is methods.gradient.full_gradients_model
    assert record("gradients").postprocessing is filters.normalize
    assert record("input_x_gradient").signed and not record("gradients").signed
    assert record("rise").family == "perturbation"
    assert record("rise").options["seed"].default == 0
    with pytest.raises(ValueError, match="has no record"):
        record(lambda model, inputs, indices=None: None)


def test_option_specs_validate_and_canonicalise():
    spec = OptionSpec.integer(low=1)
    assert spec.validate(3, "steps") == 3
    for bad, error in ((0, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="`steps` must be an integer >= 1. Received"):
            spec.validate(bad, "steps")
    probability = OptionSpec.number(low=0, high=1, include_low=False)
    assert probability.range == "a finite number > 0 and <= 1"
    with pytest.raises(ValueError, match="probability=nan"):
        probability.validate(float("nan"), "probability")
    assert OptionSpec.numbers(low=0, include_low=False).validate([1, 2.5], "s") == (
        1.0,
        2.5,
    )
    with pytest.raises(ValueError, match=r"> 0\. Received: scales=\(1, 0\)"):
        OptionSpec.numbers(low=0, include_low=False).validate((1, 0), "scales")
    with pytest.raises(ValueError, match="one of 'mean', 'std'"):
        OptionSpec.choice("mean", "std").validate("max", "rank_by")
    assert OptionSpec.integer(optional=True).validate(None, "k") is None


# ------------------------------------------------------------ check_options
def test_check_options_of_methods_wrappers_specs_and_partials():
    assert check_options("occlusion", {"window": [4, 4]}) == {"window": (4, 4)}
    assert check_options(smooth(occlusion), {"batch_size": 8}) == {"batch_size": 8}
    assert check_options("occlusion(window=(3, 3))", {"stride": (1, 1)}) == {
        "stride": (1, 1)
    }
    partial = functools.partial(rise, num_masks=10)
    assert check_options(partial, {"num_masks": 5}) == {"num_masks": 5}
    assert check_options(gradcam, {"spatial_axis": (-3, -2)})  # the contract's
    with pytest.raises(ValueError) as info:
        check_options(tta(smooth(occlusion)), {"windw": (3, 3)})
    message = str(info.value)
    assert "Did you mean 'window'?" in message
    assert (
        "Valid options: batch_size, incremental, occluder, spatial_axis, stride, window"
        in message
    )
    assert message.endswith("Received: windw=(3, 3)")
    with pytest.raises(ValueError, match="option of the wrapper `smooth`"):
        check_options(smooth(gradients), {"noise": 0.5})
    with pytest.raises(TypeError, match="`steps` must be an integer"):
        check_options("integrated_gradients", {"steps": 2.0})
    with pytest.raises(ValueError, match="`occluder` must be a finite"):
        check_options(occlusion, {"occluder": float("inf")})
    with pytest.raises(TypeError, match="`options` must be a dict"):
        check_options(occlusion, [("window", (3, 3))])


def test_check_options_of_functions_without_a_record():
    def mine(model, inputs, indices=None, *, spatial_axis=(-3, -2), alpha=1.0):
        return None

    def open_ended(model, inputs, indices=None, **options):
        return None

    assert check_options(mine, {"alpha": 2}) == {"alpha": 2}
    with pytest.raises(ValueError, match="Unknown option 'alpah'.*'alpha'"):
        check_options(mine, {"alpah": 2})
    assert check_options(open_ended, {"anything": 1}) == {"anything": 1}


# ---------------------------------------------------------------- register
def test_register_a_method_of_your_own():
    def doubled(model, inputs, indices=None, *, spatial_axis=(-3, -2), factor=2.0):
        logits, maps = gradients(model, inputs, indices, spatial_axis=spatial_axis)
        return logits, factor * maps

    name = "doubled_for_test_registry"
    methods.register(name, doubled, postprocessing=filters.normalize)
    assert methods.METHODS[name] is doubled and record(name).family == "gradient"
    assert name not in methods.EXPOSED and not methods.needs_exposed(name)
    assert methods.get(f"smooth({name}, seed=0)").__wrapped__ is doubled
    assert check_options(name, {"factor": 3.0}) == {"factor": 3.0}
    with pytest.raises(ValueError, match="exists"):
        methods.register(name, doubled)
    with pytest.raises(ValueError, match="`name` must be an identifier"):
        methods.register("not a name", doubled)
    with pytest.raises(TypeError, match="`method` must be callable"):
        methods.register("also_for_test", 3)
    with pytest.raises(ValueError, match="`family` must be one of"):
        methods.register("bad_family_for_test", doubled, family="magic")


def test_registry_views_are_read_only():
    with pytest.raises(TypeError):
        methods.METHODS["x"] = gradients
