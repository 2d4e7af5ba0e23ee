"""Validation before tracing: models, paths, images, indices (in every mode), options.

Nothing here may end in a raw TensorFlow/Keras error or, worse, in a result: an
index past the model's last unit is clamped silently by XLA, and `2**32` wraps
to `0` when cast to int32.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from engine_helpers import H, K, W, images, input_gradient, linear_model

from keras_interp._validation import check_indices, check_units, note_unit_width
from keras_interp.engine import explain, resolve_model
from keras_interp.engine.models import clear_loaded, model_facts
from keras_interp.inspection.units import gather_units

MODES = ["eager", "graph", "xla"]


@pytest.fixture(scope="module")
def linear():
    return linear_model()[0]


def _run(mode, method, model, x, y, **kwargs):
    """`explain` run eagerly (functions run eagerly), as a graph, or with XLA."""
    tf.config.run_functions_eagerly(mode == "eager")
    try:
        return explain(
            method, model, x, y, jit_compile=mode == "xla", verbose=0, **kwargs
        )
    finally:
        tf.config.run_functions_eagerly(False)


class Scores:
    """A plain callable model (no Keras attributes: nothing known statically)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs):
        return self.model(inputs)


def recorded_gradient(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """`input_gradient`, recording the explained width as `gather_units` should."""
    if indices is not None:
        note_unit_width(K)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(inputs)
        logits = gather_units(model(inputs), indices)
    return logits, tf.einsum("blhwc->bhwl", tape.batch_jacobian(logits, inputs))


# Indices.


@pytest.mark.parametrize("mode", MODES)
def test_index_past_the_last_unit_is_an_error_in_every_mode(linear, mode):
    x, y = images(3), np.array([[0], [K], [1]])
    with pytest.raises(ValueError, match=rf"`y` must hold unit indices below {K}"):
        _run(mode, input_gradient, linear, x, y)  # Known from the model.
    with pytest.raises(ValueError, match=rf"below {K}.*got {K}\b"):
        _run(mode, recorded_gradient, Scores(linear), x, y)  # Recorded in tracing.
    good = _run(mode, recorded_gradient, Scores(linear), x, y - (y == K))
    assert good[1].shape == (3, H, W, 1)


def test_index_past_the_last_unit_with_a_strategy_and_a_dataset(linear):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = tf.distribute.MirroredStrategy(devices)
    x, y = images(3), np.array([[0], [1], [K + 2]])
    with pytest.raises(ValueError, match="below"):  # XLA per replica: clamped.
        explain(
            recorded_gradient, Scores(linear), x, y, strategy=strategy,
            jit_compile=True, verbose=0,
        )  # fmt: skip
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    with pytest.raises(ValueError, match="below"):
        explain(recorded_gradient, Scores(linear), dataset, jit_compile=True)


@pytest.mark.parametrize(
    "y, match",
    [
        (np.full(3, 2**32, np.int64), "below 2\\*\\*31, got 4294967296"),
        (np.full(3, 2**63 + 5, np.uint64), "below 2\\*\\*31"),
        (np.array([0.0, 1.0, 1.0]), "integer unit indices"),
        (np.array([True, False, True]), "integer unit indices"),
        (np.zeros((3, 1, 1), int), "shape \\(batch,\\) or \\(batch, units\\)"),
        (np.array([0, -1, 0]), "non-negative"),
        (np.zeros(2, int), "one row per image"),
    ],
)
def test_bad_indices_are_named(linear, y, match):
    with pytest.raises(ValueError, match=match) as info:
        explain(input_gradient, linear, images(3), y)
    assert "Received: y=" in str(info.value)


def test_dataset_indices_are_checked_before_the_int32_cast(linear):
    y = np.array([0, 2**32, 1], np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((images(3), y)).batch(3)
    with pytest.raises(ValueError, match="below 2\\*\\*31.*4294967296"):
        explain(input_gradient, linear, dataset)


def test_index_helpers():
    np.testing.assert_array_equal(check_indices([1, 2]), [[1], [2]])
    check_units(np.array([[2]]), [None, 3])
    with pytest.raises(ValueError, match="below 3"):
        check_units(np.array([[3]]), [4, 3, None])
    check_units(np.array([[30]]), [None])  # Unknown widths: nothing to check.


# Models and paths.


@pytest.mark.parametrize("bad", [None, 3, object()])
def test_model_that_is_not_a_model(linear, bad):
    with pytest.raises(TypeError, match="`model` must be a Keras model.*Received"):
        explain(input_gradient, bad, images(2))


def test_model_paths_are_loaded_once_or_refused(tmp_path, linear):
    clear_loaded()
    path = tmp_path / "linear.keras"
    linear.save(path)
    model = resolve_model(str(path))
    assert resolve_model(path) is model
    x = images(2)
    np.testing.assert_allclose(
        explain(input_gradient, str(path), x, verbose=0)[1],
        explain(input_gradient, linear, x, verbose=0)[1],
        atol=1e-6,
    )
    stamp = path.stat().st_mtime_ns + 10**9  # A newer file is loaded again.
    os.utime(path, ns=(stamp, stamp))
    assert resolve_model(path) is not model
    with pytest.raises(FileNotFoundError, match="`model` names no file"):
        resolve_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="not a SavedModel.*Received: model="):
        resolve_model(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="must be a .keras or .h5"):
        resolve_model(tmp_path / "notes.txt")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="could not be loaded as a Keras model"):
        resolve_model(tmp_path / "broken.keras")
    exported = tmp_path / "exported"
    linear.export(exported, verbose=False)
    with pytest.raises(ValueError, match="load_saved_model"):
        resolve_model(exported)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"garbage")
    (corrupt / "keras_metadata.pb").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not be loaded as a SavedModel"):
        resolve_model(corrupt)
    clear_loaded()


def test_model_facts(linear):
    facts = model_facts(linear)
    assert facts.input_shapes == ((H, W, 2),) and facts.units == K
    assert model_facts(Scores(linear)).units is None


# Images.


def test_channel_count_against_the_model(linear):
    with pytest.raises(ValueError, match="`x` must have 2 channels.*got 3") as info:
        explain(input_gradient, linear, np.zeros((2, H, W, 3), "float32"))
    assert "Received: x=<shape (batch, " in str(info.value)
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((2, H, W, 3), "float32"))
    with pytest.raises(ValueError, match="2 channels"):
        explain(input_gradient, linear, dataset.batch(2))


def test_spatial_size_only_where_the_model_fixes_it(linear):
    # Flatten + Dense fixes the size; global pooling does not.
    with pytest.raises(ValueError, match="height and width the model cannot take"):
        explain(input_gradient, linear, np.zeros((2, H + 2, W, 2), "float32"))
    pooled = keras.Sequential(
        [
            keras.Input((H, W, 2)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(K),
        ]
    )
    maps = explain(input_gradient, pooled, images(2)[:, :4], verbose=0)[1]
    assert maps.shape == (2, 4, W, K)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((2, H, W, 2), "uint8"), "float images"),
        (np.zeros((H, W, 2), "float32"), "rank 4.*x\\[None\\]"),
        (np.full((2, H, W, 2), np.nan, "float32"), "finite"),
        (np.zeros((0, H, W, 2), "float32"), "must not be empty"),
    ],
)
def test_bad_images_are_named(linear, x, match):
    with pytest.raises(ValueError, match=match) as info:
        explain(input_gradient, linear, x)
    assert "Received: x" in str(info.value)


# Options.


def test_unknown_options_are_refused_before_tracing(linear):
    with pytest.raises(ValueError, match="Unknown option 'windw'.*'window'"):
        explain("occlusion", linear, images(2), windw=(2, 2))
    with pytest.raises(ValueError, match="Unknown option 'bogus'"):
        explain(input_gradient, linear, images(2), bogus=3)
