"""CAVlib's own acceptance tests on the real frozen graphs.

The graphs are downloads (not available offline): these tests run when
KERAS_INTERP_GOOGLENET_PATH / KERAS_INTERP_MOBILENET_PATH point to them, and
skip with the reason otherwise. Expected values are CAVlib's
(cavlib/tests/test_cav.py and test_train.py).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from keras_interp.concepts import CAV, compute_activations, train_cav
from keras_interp.models import clear_model_cache

DATA = pathlib.Path(__file__).parent.parent / "data" / "cavlib"
PHOTO = DATA / "0a8d36f893911e09a257cfaea8a8543a.1x.224x224.png"
SAMPLE = DATA / "sample_cav"


def _needs(*names: str) -> None:
    for name in names:
        variable = f"KERAS_INTERP_{name.upper()}_PATH"
        if not os.environ.get(variable):
            pytest.skip(f"{variable} is not set: the real {name} graph is a download")
    clear_model_cache()


@pytest.mark.slow
def test_sample_cav_scores_the_test_image():
    _needs("googlenet")
    cav = CAV.load(DATA / "cavstudio_sample.cav")
    assert cav.score(PHOTO) == pytest.approx(-0.125, abs=0.001)
    activation = compute_activations(PHOTO, model_layer=cav.model_layer)
    assert cav.score(activation) == pytest.approx(-0.125, abs=0.001)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_layer, graph, order",
    [
        ("googlenet_4d", "googlenet", ["1", "2", "3", "4", "5"]),
        ("googlenet_5b", "googlenet", ["1", "2", "4", "5", "3"]),
        ("mobilenet_12d", "mobilenet", ["1", "2", "3", "5", "4"]),
    ],
)
def test_roundness_orders_the_results(model_layer, graph, order):
    _needs(graph)
    cav = train_cav(
        positive_images=sorted((SAMPLE / "training_positive").glob("*.png")),
        negative_images=sorted((SAMPLE / "training_negative").glob("*.png")),
        model_layer=model_layer,
        random_state=np.random.RandomState(1234),
    )
    ranked = cav.sort(sorted((SAMPLE / "results").glob("*.png")), reverse=True)
    assert [path.stem for path in ranked] == order
