"""Leap-style class prototypes (`class_prototypes`), their options' effects, and
`entanglement`/`equalise` on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest
from leap_toy import BACKGROUND, NAMES, trained_model

from keras_interp.inspection import expose
from keras_interp.synthesis.class_entanglement import entanglement
from keras_interp.synthesis.leap import generate
from keras_interp.synthesis.objectives import gram_similarity
from keras_interp.synthesis.prototypes import (
    class_prototypes,
    equalise,
    feature_layer,
)

BASE = {
    "shape": (32, 32, 3),
    "steps": 64,
    "lr": 0.05,
    "log_freq": 64,
    "baseline": BACKGROUND,
    "transform": "m",
}


@pytest.fixture(scope="module")
def model():
    return trained_model()


def _hf(images):
    return (np.diff(images, axis=1) ** 2).mean() + (np.diff(images, axis=2) ** 2).mean()


def test_prototypes_and_their_history(model):
    result = class_prototypes(model, [0, 3], **{**BASE, "log_freq": 16})
    assert result.images.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(result.targets, [0, 3])
    assert result.probabilities[0, 0] > 0.9 and result.probabilities[1, 3] > 0.9
    np.testing.assert_array_equal(result.steps, [16, 32, 48, 64])
    assert result.history.shape == (4, 2, 4)
    # The target's probability rises during optimisation.
    assert result.history[-1, 0, 0] > result.history[0, 0, 0] - 1e-6
    assert len(result.objective) == 64 and result.objective[-1] > result.objective[0]


def test_diversity_lowers_the_similarity_of_prototypes(model):
    features = expose(model, arguments=[feature_layer(model)])
    assert feature_layer(model) == "conv2"

    def similarity(images):
        sims = gram_similarity(features(images)[1]).numpy()
        return sims[~np.eye(len(sims), dtype=bool)].mean()

    plain = class_prototypes(model, [2], per_class=3, **BASE)
    diverse = class_prototypes(model, [2], per_class=3, diversity_weight=10.0, **BASE)
    assert similarity(diverse.composites) < similarity(plain.composites) - 0.05
    assert diverse.probabilities[:, 2].mean() > 0.5


def test_alpha_channel_and_alpha_weight(model):
    free = class_prototypes(model, [0, 2], use_alpha=True, **BASE)
    lean = class_prototypes(model, [0, 2], use_alpha=True, alpha_weight=1.0, **BASE)
    assert free.images.shape == (2, 32, 32, 4) and free.composites.shape[-1] == 3
    alpha = free.images[..., 3]
    assert 0 <= alpha.min() and alpha.max() <= 1 and alpha.std() > 0.01
    assert lean.images[..., 3].mean() < alpha.mean() - 0.05
    assert (free.probabilities[[0, 1], [0, 2]] > 0.9).all()


def test_alpha_only_keeps_the_baseline_colours(model):
    result = class_prototypes(model, [0], alpha_only=True, **BASE)
    np.testing.assert_allclose(result.images[..., :3], BACKGROUND, atol=1e-6)
    assert result.images[..., 3].std() > 0.01


def test_alpha_mask_centres_the_prototype(model):
    result = class_prototypes(model, [0, 2], alpha_mask=True, **BASE)
    alpha = result.images[..., 3]
    corners = alpha[:, :4, :4].mean()
    centre = alpha[:, 12:20, 12:20].mean()
    assert corners < 0.15 and centre > 3 * corners


def test_high_frequency_penalty_and_blur_smooth_the_prototype(model):
    sharp = class_prototypes(model, [0], blur_max=0.0, blur_min=0.0, **BASE)
    penalised = class_prototypes(model, [0], hf_weight=10.0, **BASE)
    blurred = class_prototypes(model, [0], blur_max=2.0, blur_min=2.0, **BASE)
    assert _hf(penalised.images) < 0.25 * _hf(sharp.images)
    assert _hf(blurred.images) < 0.25 * _hf(sharp.images)
    assert penalised.probabilities[0, 0] > 0.9 and blurred.probabilities[0, 0] > 0.9


@pytest.mark.parametrize(
    "baseline, check",
    [
        (0.3, lambda x: np.allclose(x, 0.3, atol=0.01)),
        ("r", lambda x: 0.2 < x.std() < 0.35),  # uniform noise
        (
            np.linspace(0.1, 0.9, 32)[None, :, None] * np.ones((32, 1, 3)),
            lambda x: np.allclose(x[0, :, 0], np.linspace(0.1, 0.9, 32), atol=0.01),
        ),
    ],
)
def test_baseline_init_starts_the_prototype(model, baseline, check):
    result = class_prototypes(
        model,
        [0],
        shape=(32, 32, 3),
        steps=1,
        lr=1e-6,
        log_freq=1,
        baseline=baseline,
        transform=None,
        blur_max=0.0,
        blur_min=0.0,
    )
    assert check(result.images[0])


def test_equalise_in_generate_spreads_the_histogram(model, tmp_path):
    config = {
        "max_steps": 16,
        "lr": 0.05,
        "log_freq": 16,
        "transform": None,
        "baseline_init": BACKGROUND,
        "use_alpha": True,
    }
    dfs = [
        generate(
            "eq",
            model,
            NAMES,
            {**config, "equalise": e},
            [2],
            output_dir=tmp_path / str(e),
        )[0]
        for e in (0.0, 1.0)
    ]
    from PIL import Image

    images = [
        np.asarray(Image.open(tmp_path / str(e) / df.image_path[0])) / 255
        for e, df in zip((0.0, 1.0), dfs)
    ]
    assert images[0].shape == (32, 32, 4)  # RGBA with use_alpha
    spread = [np.ptp(image[..., :3], axis=(0, 1)).min() for image in images]
    assert spread[1] > 0.95 and spread[1] > spread[0]
    np.testing.assert_array_equal(images[0][..., 3], images[1][..., 3])
    assert dfs[0].mask_area[0] == pytest.approx(images[0][..., 3].mean(), abs=0.01)


# -- numbers worked out by hand --------------------------------------------------
def test_equalise_numbers():
    image = np.array([0.2, 0.3, 0.3, 0.4], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(equalise(image, 1.0).ravel(), [0, 0.5, 0.5, 1])
    np.testing.assert_allclose(equalise(image, 0.5).ravel(), [0.1, 0.4, 0.4, 0.7])
    np.testing.assert_array_equal(equalise(image, 0.0), image)
    flat = np.full((1, 2, 2, 2), 0.3, np.float32)
    np.testing.assert_allclose(equalise(flat, 1.0), 0.5)


def test_entanglement_numbers():
    result = entanglement(np.array([5.0, 1.0, 3.0]), target=0)
    np.testing.assert_array_equal(result.classes, [2, 1])
    e = np.exp([3.0, 1.0])
    np.testing.assert_allclose(result.shares, e / e.sum(), rtol=1e-6)
    p = np.exp([5.0, 1.0, 3.0]) / np.exp([5.0, 1.0, 3.0]).sum()
    np.testing.assert_allclose(result.probabilities, p[[2, 1]], rtol=1e-6)
    np.testing.assert_array_equal(result.entangled, [True, False])
    # A saturated target (p = 1 in float64) still ranks the others exactly.
    saturated = entanglement(np.array([1000.0, 2.0, 3.0, 1.0]), target=0)
    np.testing.assert_array_equal(saturated.classes, [2, 1, 3])
    assert np.isfinite(saturated.shares).all()
    assert not entanglement(np.array([1.0, 0.0]), 0).entangled.any()  # 2 classes


def test_entanglement_errors():
    with pytest.raises(ValueError, match="at least two classes"):
        entanglement(np.array([1.0]), 0)
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 3\)"):
        entanglement(np.zeros(3), 3)
