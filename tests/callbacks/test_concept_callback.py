"""ConceptCallback: TCAV scores logged during real `fit` runs."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from callback_helpers import GREENISH, REDDISH, RecordingLogger, read_run, tf_keras

from keras_interp.callbacks import ConceptCallback
from keras_interp.concepts import (
    TrainingImage,
    directional_derivatives,
    tcav_score,
    train_cav,
)
from keras_interp.models import KerasModel

SIZE = 12


def noise(n, seed, boost=None):
    """Noise images; `boost` (a channel) adds 0.5 to that colour."""
    x = np.random.default_rng(seed).random((n, SIZE, SIZE, 3), dtype=np.float32) * 0.5
    if boost is not None:
        x[..., boost] += 0.5
    return x


def colour_task(n=64, seed=0):
    """Class 1 images are reddish, class 0 bluish: redness decides class 1."""
    x, y = noise(n, seed), np.arange(n) % 2
    x[y == 1, ..., 0] += 0.5
    x[y == 0, ..., 2] += 0.5
    return x, y


def cnn(framework=keras):
    init = framework.initializers.GlorotUniform(seed=1)
    model = framework.Sequential(
        [
            framework.Input((SIZE, SIZE, 3)),
            framework.layers.Conv2D(
                4, 3, activation="relu", name="conv", kernel_initializer=init
            ),
            framework.layers.GlobalAveragePooling2D(),
            framework.layers.Dense(2, kernel_initializer=init),
        ]
    )
    model.compile(
        framework.optimizers.Adam(3e-2),
        framework.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


RED, GREEN = noise(12, 5, boost=0), noise(12, 6, boost=1)


@pytest.mark.parametrize("framework", [keras, tf_keras], ids=["keras3", "tf_keras"])
def test_redness_sensitivity_is_logged_and_exact(framework, tmp_path):
    x, y = colour_task()
    model = cnn(framework)
    callback = ConceptCallback(
        {"red": (RED, GREEN)}, x[y == 1][:10], layer="conv", class_index=1,
        log_dir=tmp_path,
    )  # fmt: skip
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    written = read_run(tmp_path / "concepts")
    assert [s for s, _ in written["red/tcav_score"]] == [0, 1, 2]
    assert [s for s, _ in written["red/cav_accuracy"]] == [0, 1, 2]
    final = written["red/tcav_score"][-1][1]
    assert final >= 0.9  # a trained model's class 1 rises with redness
    assert written["red/cav_accuracy"][-1][1] == 1.0

    # The last logged numbers are TCAV recomputed on the final weights.
    wrapped = KerasModel(model)
    derivatives = directional_derivatives(
        wrapped, x[y == 1][:10], "conv", red_cav(wrapped), 1
    )
    assert final == pytest.approx(tcav_score(derivatives))
    mean = written["red/derivative_mean"][-1][1]
    assert mean == pytest.approx(derivatives.mean(), rel=1e-4, abs=1e-6)


def red_cav(wrapped):
    """The CAV the callback trains: red vs green at "conv", seed 0."""
    pair = (wrapped, "conv")
    sets = []
    for images in (RED, GREEN):
        acts = np.asarray(wrapped.layer_outputs(images, ["conv"])[0])
        sets.append([TrainingImage(activations={pair: a.ravel()}) for a in acts])
    return train_cav(
        positive_images=sets[0], negative_images=sets[1], model_layer=pair,
        random_state=np.random.RandomState(0), verbose=0,
    )  # fmt: skip


def test_significance_saved_cav_and_logger(tmp_path):
    x, y = colour_task()
    model = cnn()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    cav = red_cav(KerasModel(model))
    path = tmp_path / "red.cav"
    cav.save(path)
    logger = RecordingLogger()
    callback = ConceptCallback(
        {"red": (RED, GREEN), "saved": path, "object": cav},
        x[y == 1][:8], layer="conv", class_index=1, log_dir=tmp_path,
        random_sets=[noise(8, 11), noise(8, 12), noise(8, 13)], logger=logger,
    )  # fmt: skip
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    written = read_run(tmp_path / "concepts")
    for key in ("tcav_mean", "random_mean", "p_value", "significant"):
        assert [s for s, _ in written[f"red/{key}"]] == [0, 1]
    assert all(0 <= v <= 1 for _, v in written["red/p_value"])
    assert "saved/cav_accuracy" not in written
    # A fixed CAV, from a file or an object: the same direction, same scores.
    assert written["saved/tcav_score"] == written["object/tcav_score"]
    assert ("concepts/red/p_value", 1) in {(t, s) for t, _, s in logger.scalars}


def test_a_failing_concept_warns_once_and_the_others_go_on(tmp_path):
    x, y = colour_task()
    wrong = (noise(4, 1)[:, :6, :6], noise(4, 2)[:, :6, :6])  # other input size
    callback = ConceptCallback(
        {"red": (RED, GREEN), "wrong": wrong}, x[:4], layer="conv", class_index=1,
        log_dir=tmp_path,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = cnn().fit(x, y, epochs=4, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 4
    ours = [w for w in caught if "ConceptCallback" in str(w.message)]
    assert len(ours) == 1 and "(wrong)" in str(ours[0].message)
    assert len(callback.history["red"]) == 4 and "wrong" not in callback.history
    assert not callback.disabled


def test_arguments_are_checked():
    x, _ = colour_task()
    with pytest.raises(TypeError, match="non-empty dict"):
        ConceptCallback({}, x, layer="conv", class_index=0)
    with pytest.raises(TypeError, match="Received: red="):
        ConceptCallback({"red": RED}, x, layer="conv", class_index=0)
    with pytest.raises(ValueError, match="No .cav file"):
        ConceptCallback({"red": "missing.cav"}, x, layer="conv", class_index=0)
    with pytest.raises(ValueError, match="at least 2"):
        ConceptCallback({"red": (RED, GREEN)}, x, layer="conv", class_index=0,
                        random_sets=[RED])  # fmt: skip
    with pytest.raises(ValueError, match="class_index"):
        ConceptCallback({"red": (RED, GREEN)}, x, layer="conv", class_index=-1)


def test_under_mirrored_strategy(mirrored_run):
    """The TCAV numbers logged while `fit` ran under MirroredStrategy equal
    TCAV recomputed on the final weights."""
    model, callback = mirrored_run["model"], mirrored_run["concept"]
    assert callback.errors == [] and not callback.disabled
    written = read_run(mirrored_run["log_dir"] / "concepts")
    assert [s for s, _ in written["red/tcav_score"]] == [0, 1]
    wrapped = KerasModel(model)
    pair = (wrapped, "conv")
    sets = []
    for images in (REDDISH, GREENISH):
        acts = np.asarray(wrapped.layer_outputs(images, ["conv"])[0])
        sets.append([TrainingImage(activations={pair: a.ravel()}) for a in acts])
    cav = train_cav(
        positive_images=sets[0], negative_images=sets[1], model_layer=pair,
        random_state=np.random.RandomState(0), verbose=0,
    )  # fmt: skip
    derivatives = directional_derivatives(
        wrapped, mirrored_run["x"][:6], "conv", cav, 1
    )
    assert written["red/tcav_score"][-1][1] == pytest.approx(tcav_score(derivatives))
    assert written["red/derivative_mean"][-1][1] == pytest.approx(
        derivatives.mean(), rel=1e-4, abs=1e-6
    )
