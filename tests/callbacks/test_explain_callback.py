"""ExplainCallback: real `fit` runs, reading back what was written."""

from __future__ import annotations

import csv
import sys
import time
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from callback_helpers import RecordingLogger, data, read_run, runs, small_cnn, tf_keras
from PIL import Image

import keras_interp
from keras_interp.callbacks import ExplainCallback, grid_size
from keras_interp.methods import gradients


def _fit(model, callback, epochs=3, x=None, y=None, **kwargs):
    x, y = data() if x is None else (x, y)
    return model.fit(
        x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=[callback], **kwargs
    )


@pytest.mark.parametrize("framework", [keras, tf_keras], ids=["keras3", "tf_keras"])
def test_grids_and_scalars_every_epoch(framework, tmp_path):
    x, y = data()
    model = small_cnn(framework)
    callback = ExplainCallback(
        x[:5], methods=["gradcam", "gradients"], log_dir=tmp_path, labels=y[:5],
        tile_size=32,
    )  # fmt: skip
    tensorboard = framework.callbacks.TensorBoard(str(tmp_path))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[tensorboard, callback])
    assert len(history.history["loss"]) == 3
    assert "explanations" in runs(tmp_path) and "train" in runs(tmp_path)
    written = read_run(tmp_path / "explanations")
    grids = written["grid"]
    assert [step for step, _ in grids] == [0, 1, 2]
    for _, image in grids:
        assert image.shape == (*grid_size(5, 3, 32), 3)
    for method in ("gradcam", "gradients"):
        assert [s for s, _ in written[f"{method}/rank_correlation"]] == [1, 2]
        for _, value in written[f"{method}/rank_correlation"]:
            assert -1.0 <= value <= 1.0
    probability = [v for _, v in written["probability"]]
    assert len(probability) == 3 and all(1 / 3 - 0.3 < p <= 1 for p in probability)
    assert callback.errors == [] and not callback.disabled


def test_logged_maps_are_the_engines_maps(tmp_path):
    """The last logged maps equal a direct `explain` after training, for the
    classes the callback wrote in the row labels (the predicted ones)."""
    x, y = data()
    model = small_cnn()
    callback = ExplainCallback(x[:4], methods="gradcam", log_dir=tmp_path)
    _fit(model, callback, epochs=2)
    predicted = np.argmax(model.predict(x[:4], verbose=0), axis=1)
    _, expected = keras_interp.gradcam(model, x[:4], predicted[:, None], verbose=0)
    epoch, logged = callback.history["gradcam"][-1]
    assert epoch == 1
    np.testing.assert_allclose(logged, expected[..., 0], atol=1e-5)


def test_rank_correlation_is_spearman(tmp_path):
    from scipy.stats import spearmanr

    x, y = data()
    callback = ExplainCallback(x[:3], methods="gradients", log_dir=tmp_path)
    _fit(small_cnn(), callback, epochs=2)
    (_, first), (_, second) = callback.history["gradients"]
    expected = np.mean(
        [spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(first, second)]
    )
    ((step, logged),) = read_run(tmp_path / "explanations")[
        "gradients/rank_correlation"
    ]
    assert step == 1 and logged == pytest.approx(expected, abs=1e-5)


TRACES: list[int] = []  # global, not a closure: the engine keys closures


def counting(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    TRACES.append(1)  # Python side effect: runs only while tracing
    return gradients(model, inputs, indices, spatial_axis=spatial_axis)


def test_compiled_once_no_retrace(tmp_path):
    TRACES.clear()

    x, y = data()
    callback = ExplainCallback(x[:4], methods=counting, log_dir=tmp_path)
    _fit(small_cnn(), callback, epochs=4)
    assert len(callback.history["counting"]) == 4
    assert len(TRACES) == 1
    assert callback._forward.experimental_get_tracing_count() == 1


def test_targets_fixed_true_and_validation(tmp_path):
    x, y = data()
    fixed = ExplainCallback(x[:4], [2, 1, 0, 2], methods="gradients", log_dir=tmp_path)
    true = ExplainCallback(
        x[:4], "true", labels=y[:4], methods="gradients", log_dir=tmp_path, name="t"
    )
    _fit(small_cnn(), [fixed, true][0], epochs=1)
    np.testing.assert_array_equal(fixed.targets, [2, 1, 0, 2])
    np.testing.assert_array_equal(true.targets, y[:4])
    with pytest.raises(ValueError, match="needs `labels`"):
        ExplainCallback(x[:4], "true")
    with pytest.raises(ValueError, match="Received: targets="):
        ExplainCallback(x[:4], "best")
    with pytest.raises(ValueError, match="one class index per image"):
        ExplainCallback(x[:4], [0, 1])
    with pytest.raises(ValueError, match="float images"):
        ExplainCallback((x[:4] * 255).astype("uint8"))
    with pytest.raises(ValueError, match="1 to 64 images"):
        ExplainCallback(np.zeros((65, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="Unknown method"):
        ExplainCallback(x[:4], methods="gradcamm")
    with pytest.raises(ValueError, match="masks"):
        ExplainCallback(x[:4], masks=np.ones((4, 3, 3), bool))
    with pytest.raises(ValueError, match="every_n_epochs"):
        ExplainCallback(x[:4], every_n_epochs=0)


def test_a_class_beyond_the_outputs_is_reported_not_raised(tmp_path):
    x, y = data()
    callback = ExplainCallback(x[:2], [0, 7], methods="gradients", log_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match="3 outputs"):
        history = _fit(small_cnn(), callback, epochs=2)
    assert len(history.history["loss"]) == 2


def test_dataset_images_with_labels(tmp_path):
    x, y = data()
    dataset = tf.data.Dataset.from_tensor_slices((x[:6], y[:6])).batch(4)
    callback = ExplainCallback(dataset, "true", methods="gradients", log_dir=tmp_path)
    assert callback.images.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(callback.labels, y[:6])
    _fit(small_cnn(), callback, epochs=1)
    assert len(callback.history["gradients"]) == 1


def test_every_n_epochs(tmp_path):
    x, y = data()
    callback = ExplainCallback(x[:2], methods="gradients", log_dir=tmp_path,
                               every_n_epochs=2)  # fmt: skip
    _fit(small_cnn(), callback, epochs=5)
    assert [s for s, _ in read_run(tmp_path / "explanations")["grid"]] == [0, 2, 4]


def test_without_tensorboard_writes_png_and_csv(tmp_path, monkeypatch):
    class TBNotInstalledError(Exception):
        pass

    def missing(*args, **kwargs):
        raise TBNotInstalledError("TensorBoard is not installed")

    for name in ("scalar", "image", "text"):
        monkeypatch.setattr(tf.summary, name, missing)
    x, y = data()
    callback = ExplainCallback(
        x[:3], methods=["gradcam", "gradients"], log_dir=tmp_path, tile_size=24
    )
    with pytest.warns(UserWarning, match="tensorboard") as caught:
        _fit(small_cnn(), callback, epochs=3)
    assert sum("tensorboard" in str(w.message) for w in caught) == 1
    folder = tmp_path / "explanations"
    pngs = sorted((folder / "grid").glob("*.png"))
    assert [p.name for p in pngs] == [f"step_00000{i}.png" for i in range(3)]
    for png in pngs:
        assert np.asarray(Image.open(png)).shape == (*grid_size(3, 3, 24), 3)
    with (folder / "scalars.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    tags = {(int(r["step"]), r["tag"]) for r in rows}
    assert {(1, "gradcam/rank_correlation"), (2, "gradients/rank_correlation")} <= tags
    assert not list(folder.glob("events.*"))


def test_failing_method_warns_once_and_disables(tmp_path, caplog):
    def broken(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        raise ValueError("boom: this method always fails")

    x, y = data()
    callback = ExplainCallback(x[:2], methods=broken, log_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = _fit(small_cnn(), callback, epochs=5)
    assert len(history.history["loss"]) == 5
    ours = [w for w in caught if "ExplainCallback" in str(w.message)]
    assert len(ours) == 1
    assert "boom: this method always fails" in str(ours[0].message)
    assert "ValueError" in str(ours[0].message)
    assert callback.disabled
    assert {epoch for epoch, _, _ in callback.errors} == {0, 1, 2}
    assert "disabled" in caplog.text


def test_one_failing_method_keeps_the_others(tmp_path):
    def broken(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        raise ValueError("boom")

    x, y = data()
    callback = ExplainCallback(x[:2], methods=["gradients", broken], log_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match="broken"):
        _fit(small_cnn(), callback, epochs=4)
    assert not callback.disabled
    assert len(callback.history["gradients"]) == 4
    assert "broken" not in callback.history
    assert len(read_run(tmp_path / "explanations")["grid"]) == 4


def test_mirrored_strategy(tmp_path):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (set up in tests/conftest.py)")
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = small_cnn()
    x, y = data()
    callback = ExplainCallback(x[:5], methods=["gradcam", "gradients"],
                               log_dir=tmp_path)  # fmt: skip
    _fit(model, callback, epochs=2)
    assert callback._strategy() is strategy
    assert callback.errors == []
    assert [s for s, _ in read_run(tmp_path / "explanations")["grid"]] == [0, 1]
    predicted = np.argmax(model.predict(x[:5], verbose=0), axis=1)
    _, expected = keras_interp.gradcam(model, x[:5], predicted[:, None], verbose=0)
    np.testing.assert_allclose(callback.history["gradcam"][-1][1], expected[..., 0],
                               atol=1e-5)  # fmt: skip


def test_max_seconds_skips_what_does_not_fit(tmp_path):
    def slow(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        pause = tf.py_function(lambda: time.sleep(1.0) or 0.0, [], tf.float32)
        with tf.control_dependencies([pause]):
            return gradients(model, inputs, indices, spatial_axis=spatial_axis)

    x, y = data()
    callback = ExplainCallback(x[:2], methods=["gradients", slow], max_seconds=0.8,
                               log_dir=tmp_path)  # fmt: skip
    with pytest.warns(RuntimeWarning, match="max_seconds"):
        _fit(small_cnn(), callback, epochs=4)
    skipped = dict(callback.skipped)
    # Epoch 0 traces both, epoch 1 measures them (slow overruns), then only
    # `gradients` fits in the budget.
    assert skipped[2] == ["slow"] and skipped[3] == ["slow"]
    assert [e for e, _ in callback.history["slow"]] == [0, 1]
    assert {0, 2, 3} <= {e for e, _ in callback.history["gradients"]}
    written = read_run(tmp_path / "explanations")
    assert len(written["grid"]) == 4
    assert {s for s, v in written["skipped"] if v >= 1} == set(skipped)
    for _, seconds in callback.seconds[2:]:
        assert seconds < 1.0  # `slow` alone takes 1 s


def test_logger_object_and_wandb(tmp_path, monkeypatch):
    x, y = data()
    logger = RecordingLogger()
    callback = ExplainCallback(x[:2], methods="gradients", log_dir=tmp_path,
                               logger=logger, tile_size=20)  # fmt: skip
    _fit(small_cnn(), callback, epochs=2)
    assert [(t, s) for t, _, s in logger.images] == [
        ("explanations/grid", 0),
        ("explanations/grid", 1),
    ]
    assert logger.images[0][1] == (*grid_size(2, 2, 20), 3)
    tags = {(t, s) for t, _, s in logger.scalars}
    assert ("explanations/gradients/rank_correlation", 1) in tags
    assert logger.flushes == [0, 1]

    logged = []
    wandb = types.SimpleNamespace(Image=lambda a: ("Image", a.shape), log=logged.append)
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    callback = ExplainCallback(x[:2], methods="gradients", log_dir=tmp_path,
                               logger="wandb", name="w")  # fmt: skip
    _fit(small_cnn(), callback, epochs=2)
    assert [entry["epoch"] for entry in logged] == [0, 1]
    assert logged[0]["w/grid"][0] == "Image"
    assert "w/gradients/rank_correlation" in logged[1]
    with pytest.raises(ValueError, match="Received: logger='neptune'"):
        ExplainCallback(x[:2], logger="neptune")
    with pytest.raises(TypeError, match="log_image"):
        ExplainCallback(x[:2], logger=object())


def test_epoch_hooks_only():
    """Batch hooks stay Keras' defaults (overriding one turns off Keras 3's
    asynchronous batch callbacks), and tf_keras is told there are none."""
    x, _ = data()
    callback = ExplainCallback(x[:1])
    for hook in ("on_batch_end", "on_train_batch_end", "on_test_batch_end",
                 "on_predict_batch_end", "on_train_batch_begin"):  # fmt: skip
        assert getattr(getattr(callback, hook), "_is_default", False), hook
    assert not callback._implements_train_batch_hooks()
    assert not callback._implements_test_batch_hooks()
    assert not callback._implements_predict_batch_hooks()
