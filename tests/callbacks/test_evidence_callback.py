"""On the known-evidence task, the logged agreement of the maps with the
deciding object rises as the model learns (asserted on the logged numbers)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from callback_helpers import read_run

from keras_interp.callbacks import ExplainCallback, MetricCallback
from keras_interp.testing.evidence import evidence_cnn, evidence_images

SETTINGS = dict(size=32, object_size=8, distractors=1, clutter=False)


@pytest.mark.slow
def test_agreement_with_the_deciding_object_rises(tmp_path):
    x, y, _ = evidence_images(240, seed=0, **SETTINGS)
    watched, labels, masks = evidence_images(16, seed=1, **SETTINGS)
    keras.utils.set_random_seed(0)
    model = evidence_cnn(32, 3)
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    explaining = ExplainCallback(
        watched, "true", labels=labels, masks=masks, methods="gradcam",
        log_dir=tmp_path,
    )  # fmt: skip
    measuring = MetricCallback(
        watched, labels, method="gradcam", masks=masks, log_dir=tmp_path,
        metrics=["pointing_game", "relevance_mass"], every_n_epochs=7,
    )  # fmt: skip
    history = model.fit(
        x, y, epochs=8, batch_size=32, verbose=0, callbacks=[explaining, measuring]
    )
    assert history.history["accuracy"][-1] > 0.6  # it learned the task
    logged = read_run(tmp_path / "explanations")
    mass = [v for _, v in logged["gradcam/relevance_mass"]]
    points = [v for _, v in logged["gradcam/pointing_game"]]
    assert len(mass) == len(points) == 8
    area = masks.mean()  # the mass a map spread evenly would put in the mask
    assert mass[0] < 1.5 * area < 2 * area < mass[-1]
    assert np.mean(mass[-3:]) > 2 * np.mean(mass[:3])
    assert np.mean(points[-3:]) > np.mean(points[:3])
    metrics = read_run(tmp_path / "metrics")
    assert [s for s, _ in metrics["gradcam/relevance_mass"]] == [0, 7]
    (_, before), (_, after) = metrics["gradcam/relevance_mass"]
    assert after > 2 * before
