"""Tests of `explain`: input kinds, batching, resizing, partial_explain, errors.

Compilation, distribution and the compiled-function cache: test_compiled.py.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from engine_helpers import (
    C,
    H,
    K,
    W,
    conv_model,
    images,
    input_gradient,
    linear_answer,
    linear_model,
    pooled_gradient,
    units,
)

from keras_interp.engine import compiled_function, explain, partial_explain

# Methods and models whose answers are known.


@pytest.fixture(scope="module")
def linear():
    return linear_model()


# Correctness on the linear model.


def test_linear_gradient_maps_are_the_kernel(linear):
    model, kernel, bias = linear
    x = images(7)
    logits, maps = explain(input_gradient, model, x, verbose=0)
    want_logits, want_maps = linear_answer(x, kernel, bias)
    assert logits.dtype == maps.dtype == np.float32
    assert maps.shape == (7, H, W, K)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps, want_maps, rtol=1e-5, atol=1e-5)


def test_indices_select_the_right_units(linear):
    model, kernel, bias = linear
    x, y = images(5), units(5, width=2)
    logits, maps = explain(input_gradient, model, x, y, verbose=0)
    want_logits, want_maps = linear_answer(x, kernel, bias, y)
    assert maps.shape == (5, H, W, 2)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps, want_maps, rtol=1e-5, atol=1e-5)
    flat = explain(input_gradient, model, x, y[:, 0], verbose=0)
    column = explain(input_gradient, model, x, y[:, :1], verbose=0)
    np.testing.assert_array_equal(flat[1], column[1])
    np.testing.assert_array_equal(flat[1][..., 0], maps[..., 0])


# Every input kind and batch size gives the same numbers.


def _input_kinds(x, y):
    yield "numpy", (x, y)
    yield "tensor", (tf.constant(x), tf.constant(y))
    yield "float64", (x.astype("float64"), y)
    pairs = tf.data.Dataset.from_tensor_slices((x, y))
    yield "batched pairs", (pairs.batch(3),)
    yield "unbatched pairs", (pairs,)
    flat = tf.data.Dataset.from_tensor_slices((x, y[:, 0].astype("int64")))
    yield "batched pairs, flat int64 indices", (flat.batch(2),)
    yield "unbatched pairs, scalar indices", (flat,)


def test_input_kinds_agree(linear):
    model = linear[0]
    x, y = images(7), units(7)
    want = explain(input_gradient, model, x, y, verbose=0)
    for kind, args in _input_kinds(x, y):
        got = explain(input_gradient, model, *args, batch_size=4, verbose=0)
        np.testing.assert_allclose(got[0], want[0], atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5, err_msg=kind)


def test_datasets_of_images_only():
    model = conv_model()
    x = images(5)
    want = explain(input_gradient, model, x, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(x)
    for given in (dataset, dataset.batch(2), dataset.map(lambda i: (i,)).batch(4)):
        got = explain(input_gradient, model, given, verbose=0)
        np.testing.assert_allclose(got[1], want[1], atol=1e-6)


def test_dataset_of_unknown_length_and_empty_batches():
    model = conv_model()
    x = images(6)
    want = explain(input_gradient, model, x, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(2)
    dataset = dataset.filter(lambda batch: True)  # Unknown cardinality.
    empty = tf.data.Dataset.from_tensor_slices(x[:0]).batch(2)
    dataset = empty.concatenate(dataset).concatenate(dataset.take(0))
    got = explain(input_gradient, model, dataset, verbose=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_batch_size_does_not_change_results(batch_size):
    model = conv_model()
    x, y = images(7), units(7, width=2)
    eager = input_gradient(model, tf.constant(x), tf.constant(y))
    got = explain(input_gradient, model, x, y, batch_size=batch_size, verbose=0)
    np.testing.assert_allclose(got[0], eager[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got[1], eager[1].numpy(), atol=1e-5)


# Post-processing and resizing.


def test_postprocessing_receives_the_maps_spatial_axes(linear):
    # `spatial_axis` names the inputs' height and width; maps are always
    # (B, H, W, L), so post-processing gets their axes (-3, -2).
    model, kernel, bias = linear
    x, axes = images(3), []

    def min_max(maps, axis):
        axes.append(axis)
        low = tf.reduce_min(maps, axis=axis, keepdims=True)
        high = tf.reduce_max(maps, axis=axis, keepdims=True)
        return (maps - low) / (high - low)

    _, maps = explain(
        input_gradient,
        model,
        x,
        postprocessing=min_max,
        spatial_axis=(1, 2),
        verbose=0,
    )
    want = linear_answer(x, kernel, bias)[1]
    low, high = (
        want.min(axis=(1, 2), keepdims=True),
        want.max(axis=(1, 2), keepdims=True),
    )
    np.testing.assert_allclose(maps, (want - low) / (high - low), atol=1e-5)
    assert axes and all(axis == (-3, -2) for axis in axes)


@pytest.mark.parametrize(
    "resizing, size",
    [(True, (H, W)), ((8, 10), (8, 10)), ([3, 3], (3, 3)), (False, None), (None, None)],
)
def test_resizing_is_bilinear_or_off(linear, resizing, size):
    model, kernel, bias = linear
    x = images(2)
    low = tf.nn.avg_pool2d(linear_answer(x, kernel, bias)[1], 2, 2, "VALID")
    _, maps = explain(pooled_gradient, model, x, resizing=resizing, verbose=0)
    want = low if size is None else tf.image.resize(low, size, method="bilinear")
    assert maps.shape == want.shape == (2, *(size or (H // 2, W // 2)), K)
    np.testing.assert_allclose(maps, want.numpy(), atol=1e-5)


# Progress bar.


def test_progress_bar(capsys, linear):
    model = linear[0]
    explain(input_gradient, model, images(6), batch_size=2, verbose=1)
    assert "3/3" in capsys.readouterr().out
    explain(input_gradient, model, images(6), batch_size=2, verbose=0)
    assert capsys.readouterr().out == ""
    explain(input_gradient, model, images(6), batch_size=2)  # "auto": 3 batches.
    assert capsys.readouterr().out == ""
    explain(input_gradient, model, images(6), batch_size=1)  # "auto": 6 batches.
    assert "6/6" in capsys.readouterr().out


# partial_explain.


def test_partial_explain(linear):
    model = linear[0]
    x = images(4)
    explainer = partial_explain(pooled_gradient, resizing=False, pool=2, verbose=0)
    assert explainer.__name__ == "pooled_gradient"
    assert "pooled_gradient" in explainer.__doc__ and "resizing" in explainer.__doc__
    assert explainer.method is pooled_gradient
    assert dict(explainer.defaults) == {"resizing": False, "pool": 2, "verbose": 0}
    signature = inspect.signature(explainer)
    assert list(signature.parameters)[:3] == ["model", "x", "y"]
    assert signature.parameters["resizing"].default is False
    assert signature.parameters["pool"].default == 2
    np.testing.assert_array_equal(
        explainer(model, x)[1],
        explain(pooled_gradient, model, x, resizing=False, verbose=0)[1],
    )
    assert explainer(model, x, resizing=True)[1].shape == (4, H, W, K)
    assert explainer(model, x, pool=3)[1].shape == (4, 2, 1, K)


def test_partial_explain_errors():
    with pytest.raises(TypeError, match="`method` must be callable"):
        partial_explain("gradcam")
    with pytest.raises(TypeError, match="cannot bind model, x"):
        partial_explain(input_gradient, model=None, x=None)


# Errors.


def _ds(*parts):
    return tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else parts[0])


NAN, BAD = np.full((1, H, W, C), np.nan, "float32"), np.zeros((2, 1, 1), "int32")

# (arguments replacing the defaults, exception, message pattern); data sets are
# built lazily, at test time.
ERRORS = {
    "int x": (
        lambda: {"x": images(2, dtype="uint8")},
        ValueError,
        "float images.*astype",
    ),
    "one image": (lambda: {"x": images(2)[0]}, ValueError, r"got rank 3.*x\[None\]"),
    "rank 5": (lambda: {"x": images(2)[None]}, ValueError, "rank 4 .*got rank 5"),
    "empty x": (lambda: {"x": images(0)}, ValueError, "`x` must not be empty"),
    "nan x": (lambda: {"x": np.concatenate([images(1), NAN])}, ValueError, "finite"),
    "y length": (lambda: {"y": units(3)}, ValueError, r"per image in `x` \(2\), got 3"),
    "float y": (lambda: {"y": units(2) * 1.0}, ValueError, "integer unit indices"),
    "bool y": (lambda: {"y": np.array([True, False])}, ValueError, "integer unit"),
    "negative y": (lambda: {"y": -units(2) - 1}, ValueError, "non-negative unit"),
    "y rank": (lambda: {"y": BAD}, ValueError, r"\(batch,\) or \(batch, units\)"),
    "batch_size 0": (lambda: {"batch_size": 0}, ValueError, "positive integer.*=0"),
    "batch_size 2.0": (lambda: {"batch_size": 2.0}, TypeError, "must be an integer"),
    "verbose": (lambda: {"verbose": 3}, ValueError, "one of 'auto', 0, 1, 2"),
    "method": (lambda: {"method": 42}, TypeError, "`method` must be callable"),
    "postprocessing": (lambda: {"postprocessing": 1}, TypeError, "`postprocessing`"),
    "resizing (8,)": (lambda: {"resizing": (8,)}, ValueError, r"\(height, width\)"),
    "resizing 0": (lambda: {"resizing": (8, 0)}, ValueError, "`resizing` must be"),
    "spatial_axis": (lambda: {"spatial_axis": "hw"}, ValueError, "`spatial_axis`"),
    "jit_compile": (lambda: {"jit_compile": "yes"}, TypeError, "must be a bool"),
    "strategy": (lambda: {"strategy": "mirrored"}, TypeError, "tf.distribute.Strat"),
    "y with data": (
        lambda: {"x": _ds(images(2), units(2)).batch(2), "y": units(2)},
        ValueError,
        "`y` must be None when `x` is a tf.data.Dataset",
    ),
    "int data": (lambda: {"x": _ds(images(2, dtype="uint8"))}, ValueError, "float"),
    "float data y": (
        lambda: {"x": _ds(images(2), units(2) * 1.0)},
        ValueError,
        "integer unit",
    ),
    "data y rank": (lambda: {"x": _ds(images(2), BAD)}, ValueError, r"\(\) or \(un"),
    "data rank 2": (lambda: {"x": _ds(images(2)[:, 0])}, ValueError, "or rank 3"),
    # A dict is several inputs, keyed by the model's input names.
    "dict data": (lambda: {"x": _ds({"i": images(2)})}, ValueError, "input names"),
    "3-tuple data": (
        lambda: {"x": _ds(images(2), images(2), units(2))},
        TypeError,
        "\\(inputs, indices\\) pairs",
    ),
    "infinite": (lambda: {"x": _ds(images(2)).repeat()}, ValueError, "finite.*take"),
    "empty data": (lambda: {"x": _ds(images(2)).take(0)}, ValueError, "not be empty"),
    "no images": (
        lambda: {"x": _ds(images(2)).filter(lambda i: False)},
        ValueError,
        "the data set yielded no images",
    ),
    "nan data": (
        lambda: {"x": _ds(np.concatenate([images(2), NAN])).batch(2)},
        ValueError,
        "batch 2 of the data set holds NaN",
    ),
    "negative data y": (
        lambda: {"x": _ds(images(3), np.array([[0], [1], [-1]])).batch(2)},
        ValueError,
        "non-negative unit indices, but batch 2 of the data set holds -1",
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_errors(linear, case):
    arguments, error, match = case
    with pytest.raises(error, match=match):
        explain(
            **{"method": input_gradient, "model": linear[0], "x": images(2)}
            | arguments()
        )


def test_method_breaking_the_contract_is_named(linear):
    def no_label_axis(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        logits, maps = input_gradient(model, inputs, indices)
        return logits, maps[..., 0]

    with pytest.raises(ValueError, match="'no_label_axis' must return.*maps of rank 4"):
        explain(no_label_axis, linear[0], images(2), verbose=0)


def test_concatenating_maps_of_different_sizes_asks_for_a_fixed_size(linear):
    model = keras.Sequential(
        [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(K)]
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: iter([images(1), images(1)[:, :4, :2]]),
        output_signature=tf.TensorSpec((None, None, None, C), tf.float32),
    )
    with pytest.raises(ValueError, match=r"resizing=\(height, width\)"):
        explain(input_gradient, model, dataset, verbose=0)
    _, maps = explain(input_gradient, model, dataset, resizing=(3, 3), verbose=0)
    assert maps.shape == (2, 3, 3, K)


def test_method_by_spec_and_batch_size_forwarding(linear):
    # A registry spec names the method; explain's batch_size reaches methods
    # that chunk their own forward passes, as a run-time value (one trace).
    linear, _, _ = linear
    x = np.random.default_rng(1).random((3, H, W, C), dtype="float32")

    def chunked(model, inputs, indices=None, *, spatial_axis=(-3, -2), batch_size=1):
        logits, maps = input_gradient(model, inputs, indices)
        return logits, maps * 0 + tf.cast(batch_size, tf.float32)

    for batch_size in (2, 1, 3, 2):
        maps = explain(chunked, linear, x, batch_size=batch_size, verbose=0)[1]
        np.testing.assert_array_equal(maps, np.full_like(maps, batch_size))
    assert compiled_function(chunked, linear).experimental_get_tracing_count() <= 3
    by_name = explain("gradients", linear, x, verbose=0)
    from keras_interp.methods import gradients

    direct = explain(gradients, linear, x, verbose=0)
    np.testing.assert_array_equal(by_name[1], direct[1])
    with pytest.raises(
        ValueError, match="Unknown method 'gradcamm'.*Did you mean gradcam"
    ):
        explain("gradcamm", linear, x)
