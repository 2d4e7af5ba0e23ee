"""MetricCallback: `keras_interp.metrics.evaluate` logged during `fit`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from callback_helpers import MASKS, data, read_run, small_cnn

from keras_interp.callbacks import MetricCallback
from keras_interp.metrics import evaluate

LOCALISATION = ["pointing_game", "relevance_mass"]
FAITHFULNESS = {"deletion": {"steps": 4}, "insertion": {"steps": 4}}


@pytest.mark.parametrize(
    "metrics",
    [LOCALISATION, pytest.param(FAITHFULNESS, marks=pytest.mark.slow)],
    ids=["localisation", "faithfulness"],
)
def test_metrics_per_epoch_equal_evaluate(metrics, tmp_path):
    x, y = data()
    masks = np.zeros((4, 16, 16), bool)
    masks[:, :8, :8] = True
    callback = MetricCallback(
        x[:4], y[:4], method="gradients", masks=masks, log_dir=tmp_path,
        metrics=metrics,
    )  # fmt: skip
    model = small_cnn()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    written = read_run(tmp_path / "metrics")
    for metric in metrics:
        assert [s for s, _ in written[f"gradients/{metric}"]] == [0, 1]
    table = evaluate(
        "gradients", model, x[:4], y[:4], masks=masks, verbose=0, metrics=metrics
    )
    for metric, value in table.loc["gradients"].items():
        assert written[f"gradients/{metric}"][-1][1] == pytest.approx(value, abs=1e-5)


def test_bad_arguments_and_failures(tmp_path):
    x, y = data()
    with pytest.raises(ValueError, match="metrics"):
        MetricCallback(x[:2], y[:2], method="gradients", metrics=["accuracy"])
    with pytest.raises(ValueError, match="Unknown method"):
        MetricCallback(x[:2], y[:2], method="nope", metrics=["deletion"])
    with pytest.raises(ValueError, match="masks"):
        MetricCallback(x[:2], y[:2], method="gradients", metrics=["deletion"],
                       masks=np.ones((3, 16, 16), bool))  # fmt: skip
    # A localisation metric without masks fails in every call: one warning,
    # then the callback disables itself; training finishes.
    callback = MetricCallback(x[:2], y[:2], method="gradients", log_dir=tmp_path,
                              metrics=["pointing_game"])  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = small_cnn().fit(x, y, epochs=3, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 3
    assert len([w for w in caught if "MetricCallback" in str(w.message)]) == 1
    assert callback.disabled


def test_under_mirrored_strategy(mirrored_run):
    """The metrics logged while `fit` ran under MirroredStrategy equal
    `evaluate` on the final weights."""
    model, x, y = mirrored_run["model"], mirrored_run["x"], mirrored_run["y"]
    callback = mirrored_run["metric"]
    assert callback.errors == [] and not callback.disabled
    written = read_run(mirrored_run["log_dir"] / "metrics")
    table = evaluate(
        "gradients", model, x[:4], y[:4], masks=MASKS, verbose=0,
        metrics=["pointing_game", "relevance_mass"],
    )  # fmt: skip
    for metric, value in table.loc["gradients"].items():
        assert [s for s, _ in written[f"gradients/{metric}"]] == [0, 1]
        assert written[f"gradients/{metric}"][-1][1] == pytest.approx(value, abs=1e-5)
