"""ExplainCallback: real `fit` runs, reading back what was written.

Most tests read one shared `fit` (module fixture `shared`): a Keras 3 CNN
trained for 4 epochs with one callback per behaviour attached, each logging
to its own run of one log folder. Tracing `fit` and the methods is most of a
test's cost, so sharing it keeps the file fast."""

from __future__ import annotations

import csv
import logging
import sys
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from callback_helpers import (
    COSTS,
    RecordingLogger,
    charged,
    data,
    read_run,
    runs,
    slow,
    small_cnn,
    tf_keras,
)
from PIL import Image

import keras_interp
from keras_interp.callbacks import ExplainCallback, grid_size
from keras_interp.methods import gradients

EPOCHS = 4
TRACES: list[int] = []  # global, not a closure: the engine keys closures


def counting(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    TRACES.append(1)  # Python side effect: runs only while tracing
    return gradients(model, inputs, indices, spatial_axis=spatial_axis)


def broken(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    raise ValueError("boom: this method always fails")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("shared")
    x, y = data()
    dataset = tf.data.Dataset.from_tensor_slices((x[:6], y[:6])).batch(4)
    logger, logged = RecordingLogger(), []
    wandb = types.SimpleNamespace(Image=lambda a: ("Image", a.shape), log=logged.append)
    TRACES.clear()
    records = _Records()
    library_log = logging.getLogger("keras_interp.callbacks")
    library_log.addHandler(records)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "wandb", wandb)
        callbacks = dict(
            main=ExplainCallback(
                x[:5], methods=["gradcam", "gradients"], log_dir=log_dir,
                labels=y[:5], tile_size=32,
            ),
            counting=ExplainCallback(x[:4], methods=counting, log_dir=log_dir,
                                     name="counting"),
            fixed=ExplainCallback(x[:4], [2, 1, 0, 2], methods="gradients",
                                  log_dir=log_dir, name="fixed"),
            true=ExplainCallback(x[:4], "true", labels=y[:4], methods="gradients",
                                 log_dir=log_dir, name="true"),
            dataset=ExplainCallback(dataset, "true", methods="gradients",
                                    log_dir=log_dir, name="dataset"),
            every2=ExplainCallback(x[:2], methods="gradients", log_dir=log_dir,
                                   every_n_epochs=2, name="every2"),
            beyond=ExplainCallback(x[:2], [0, 7], methods="gradients",
                                   log_dir=log_dir, name="beyond"),
            broken=ExplainCallback(x[:2], methods=broken, log_dir=log_dir,
                                   name="broken"),
            partly=ExplainCallback(x[:2], methods=["gradients", broken],
                                   log_dir=log_dir, name="partly"),
            logger=ExplainCallback(x[:2], methods="gradients", log_dir=log_dir,
                                   logger=logger, tile_size=20, name="logger"),
            wandb=ExplainCallback(x[:2], methods="gradients", log_dir=log_dir,
                                  logger="wandb", name="w"),
            budget=charged(ExplainCallback(
                x[:2], methods=["gradients", slow], max_seconds=0.5,
                log_dir=log_dir, name="budget",
            )),
        )  # fmt: skip
        model = small_cnn()
        tensorboard = keras.callbacks.TensorBoard(str(log_dir))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                history = model.fit(
                    x, y, epochs=EPOCHS, batch_size=8, verbose=0,
                    callbacks=[tensorboard, *callbacks.values()],
                )  # fmt: skip
        finally:
            library_log.removeHandler(records)
    return types.SimpleNamespace(
        model=model, x=x, y=y, log_dir=log_dir, history=history, recorder=logger,
        logged=logged, warnings=[str(w.message) for w in caught],
        log_messages=records.messages, traces=len(TRACES), **callbacks,
    )  # fmt: skip


def _warnings(shared, name):
    return [w for w in shared.warnings if f"ExplainCallback {name!r}" in w]


def _fit(model, callback, epochs=3, x=None, y=None, **kwargs):
    x, y = data() if x is None else (x, y)
    return model.fit(
        x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=[callback], **kwargs
    )


def test_grids_and_scalars_every_epoch(shared):
    assert len(shared.history.history["loss"]) == EPOCHS
    assert "explanations" in runs(shared.log_dir) and "train" in runs(shared.log_dir)
    written = read_run(shared.log_dir / "explanations")
    grids = written["grid"]
    assert [step for step, _ in grids] == list(range(EPOCHS))
    for _, image in grids:
        assert image.shape == (*grid_size(5, 3, 32), 3)
    for method in ("gradcam", "gradients"):
        steps = [s for s, _ in written[f"{method}/rank_correlation"]]
        assert steps == list(range(1, EPOCHS))
        for _, value in written[f"{method}/rank_correlation"]:
            assert -1.0 <= value <= 1.0
    probability = [v for _, v in written["probability"]]
    assert len(probability) == EPOCHS
    assert all(1 / 3 - 0.3 < p <= 1 for p in probability)
    assert shared.main.errors == [] and not shared.main.disabled
    assert _warnings(shared, "explanations") == []


def test_grids_and_scalars_with_tf_keras(tmp_path):
    x, y = data()
    model = small_cnn(tf_keras)
    callback = ExplainCallback(
        x[:5], methods=["gradcam", "gradients"], log_dir=tmp_path, labels=y[:5],
        tile_size=32,
    )  # fmt: skip
    tensorboard = tf_keras.callbacks.TensorBoard(str(tmp_path))
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[tensorboard, callback])
    assert len(history.history["loss"]) == 2
    assert "explanations" in runs(tmp_path) and "train" in runs(tmp_path)
    written = read_run(tmp_path / "explanations")
    assert [step for step, _ in written["grid"]] == [0, 1]
    for _, image in written["grid"]:
        assert image.shape == (*grid_size(5, 3, 32), 3)
    for method in ("gradcam", "gradients"):
        assert [s for s, _ in written[f"{method}/rank_correlation"]] == [1]
    assert callback.errors == [] and not callback.disabled
    predicted = np.argmax(model.predict(x[:5], verbose=0), axis=1)
    _, expected = keras_interp.gradients(model, x[:5], predicted[:, None], verbose=0)
    np.testing.assert_allclose(
        callback.history["gradients"][-1][1], expected[..., 0], atol=1e-5
    )


def test_logged_maps_are_the_engines_maps(shared):
    """The last logged maps equal a direct `explain` after training, for the
    classes the callback wrote in the row labels (the predicted ones)."""
    model, x = shared.model, shared.x
    predicted = np.argmax(model.predict(x[:5], verbose=0), axis=1)
    _, expected = keras_interp.gradcam(model, x[:5], predicted[:, None], verbose=0)
    epoch, logged = shared.main.history["gradcam"][-1]
    assert epoch == EPOCHS - 1
    np.testing.assert_allclose(logged, expected[..., 0], atol=1e-5)


def test_rank_correlation_is_spearman(shared):
    from scipy.stats import spearmanr

    (_, first), (_, second) = shared.main.history["gradients"][-2:]
    expected = np.mean(
        [spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(first, second)]
    )
    written = read_run(shared.log_dir / "explanations")
    step, logged = written["gradients/rank_correlation"][-1]
    assert step == EPOCHS - 1 and logged == pytest.approx(expected, abs=1e-5)


def test_compiled_once_no_retrace(shared):
    assert len(shared.counting.history["counting"]) == EPOCHS
    assert shared.traces == 1
    assert shared.counting._forward.experimental_get_tracing_count() == 1


def test_targets_fixed_true_and_validation(shared):
    x, y = shared.x, shared.y
    np.testing.assert_array_equal(shared.fixed.targets, [2, 1, 0, 2])
    np.testing.assert_array_equal(shared.true.targets, y[:4])
    assert len(shared.fixed.history["gradients"]) == EPOCHS
    assert len(shared.true.history["gradients"]) == EPOCHS
    written = read_run(shared.log_dir / "fixed")
    assert len(written["probability"]) == EPOCHS
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


def test_a_class_beyond_the_outputs_is_reported_not_raised(shared):
    ours = _warnings(shared, "beyond")
    assert len(ours) == 1 and "3 outputs" in ours[0]
    assert len(shared.history.history["loss"]) == EPOCHS


def test_dataset_images_with_labels(shared):
    callback = shared.dataset
    assert callback.images.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(callback.labels, shared.y[:6])
    assert len(callback.history["gradients"]) == EPOCHS


def test_every_n_epochs(shared):
    assert [s for s, _ in read_run(shared.log_dir / "every2")["grid"]] == [0, 2]


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


def test_failing_method_warns_once_and_disables(shared):
    ours = _warnings(shared, "broken")
    assert len(ours) == 1
    assert "boom: this method always fails" in ours[0]
    assert "ValueError" in ours[0]
    callback = shared.broken
    assert callback.disabled
    # Disabled after the third failure: epoch 3 is not tried.
    assert {epoch for epoch, _, _ in callback.errors} == {0, 1, 2}
    assert any("'broken' disabled" in m for m in shared.log_messages)
    assert len(shared.history.history["loss"]) == EPOCHS


def test_one_failing_method_keeps_the_others(shared):
    callback = shared.partly
    ours = _warnings(shared, "partly")
    assert len(ours) == 1 and "(broken)" in ours[0]
    assert not callback.disabled
    assert len(callback.history["gradients"]) == EPOCHS
    assert "broken" not in callback.history
    assert len(read_run(shared.log_dir / "partly")["grid"]) == EPOCHS


def test_max_seconds_skips_what_does_not_fit(shared):
    """Costs on a fake clock (forward 0.1 s, `slow` 0.6 s, `gradients` free):
    the first call measures both methods, then only `gradients` fits in
    0.5 s, and no call after the first exceeds it."""
    callback = shared.budget
    ours = _warnings(shared, "budget")
    assert len(ours) == 1 and "max_seconds=0.5" in ours[0]
    skipped = dict(callback.skipped)
    assert skipped == {1: ["slow"], 2: ["slow"], 3: ["slow"]}
    assert [e for e, _ in callback.history["slow"]] == [0]
    assert [e for e, _ in callback.history["gradients"]] == [0, 1, 2, 3]
    written = read_run(shared.log_dir / "budget")
    assert len(written["grid"]) == EPOCHS
    assert {s for s, v in written["skipped"] if v >= 1} == set(skipped)
    seconds = [s for _, s in callback.seconds]
    assert seconds[0] == pytest.approx(2 * COSTS["forward"] + 2 * COSTS["slow"])
    assert seconds[1:] == pytest.approx([COSTS["forward"]] * 3)  # within 0.5


def test_logger_object_and_wandb(shared):
    logger = shared.recorder
    steps = list(range(EPOCHS))
    assert [(t, s) for t, _, s in logger.images] == [("logger/grid", s) for s in steps]
    assert logger.images[0][1] == (*grid_size(2, 2, 20), 3)
    tags = {(t, s) for t, _, s in logger.scalars}
    assert ("logger/gradients/rank_correlation", 1) in tags
    assert logger.flushes == steps
    logged = shared.logged
    assert [entry["epoch"] for entry in logged] == steps
    assert logged[0]["w/grid"][0] == "Image"
    assert "w/gradients/rank_correlation" in logged[1]
    x = shared.x
    with pytest.raises(ValueError, match="Received: logger='neptune'"):
        ExplainCallback(x[:2], logger="neptune")
    with pytest.raises(TypeError, match="log_image"):
        ExplainCallback(x[:2], logger=object())


def test_mirrored_strategy(mirrored_run):
    model, x = mirrored_run["model"], mirrored_run["x"]
    callback = mirrored_run["explain"]
    assert len(mirrored_run["history"].history["loss"]) == 2
    assert callback._strategy() is mirrored_run["strategy"]
    assert callback.errors == []
    written = read_run(mirrored_run["log_dir"] / "explanations")
    assert [s for s, _ in written["grid"]] == [0, 1]
    predicted = np.argmax(model.predict(x[:5], verbose=0), axis=1)
    _, expected = keras_interp.gradcam(model, x[:5], predicted[:, None], verbose=0)
    np.testing.assert_allclose(callback.history["gradcam"][-1][1], expected[..., 0],
                               atol=1e-5)  # fmt: skip


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
