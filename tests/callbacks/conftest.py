"""Fixtures shared by the callback tests: one `fit` under MirroredStrategy
with every callback attached (tracing a mirrored model is the slow part)."""

from __future__ import annotations

import pytest
import tensorflow as tf
from callback_helpers import GREENISH, MASKS, REDDISH, data, small_cnn

from keras_interp.callbacks import ConceptCallback, ExplainCallback, MetricCallback


@pytest.fixture(scope="session")
def mirrored_run(tmp_path_factory):
    """`fit` for 2 epochs under MirroredStrategy over two logical CPUs with
    an ExplainCallback, a ConceptCallback and a MetricCallback."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices (set up in tests/conftest.py)")
    log_dir = tmp_path_factory.mktemp("mirrored")
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = small_cnn()
    x, y = data()
    callbacks = {
        "explain": ExplainCallback(
            x[:5], methods=["gradcam", "gradients"], log_dir=log_dir
        ),
        "concept": ConceptCallback(
            {"red": (REDDISH, GREENISH)},
            x[:6], layer="conv", class_index=1, log_dir=log_dir,
        ),
        "metric": MetricCallback(
            x[:4], y[:4], method="gradients", masks=MASKS, log_dir=log_dir,
            metrics=["pointing_game", "relevance_mass"],
        ),
    }  # fmt: skip
    history = model.fit(
        x, y, epochs=2, batch_size=8, verbose=0, callbacks=list(callbacks.values())
    )
    return dict(
        model=model, strategy=strategy, x=x, y=y, log_dir=log_dir,
        history=history, **callbacks,
    )  # fmt: skip
