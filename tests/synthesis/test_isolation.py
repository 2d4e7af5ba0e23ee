"""Feature isolation (`isolate_features`) on the toy task: the masks find the
squares that decide the class, and the options do what they say."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from leap_toy import BACKGROUND, make_data, trained_model

from keras_interp.synthesis.isolation import check_baseline, isolate_features, mask_iou
from keras_interp.synthesis.regularizers import variation

STEPS = {"steps": 150, "lr": 0.1, "log_freq": 50, "baseline": BACKGROUND}


@pytest.fixture(scope="module")
def model():
    return trained_model()


@pytest.fixture(scope="module")
def samples():
    images, labels, squares, _ = make_data(8, seed=11)
    return images, labels, squares


@pytest.fixture(scope="module")
def isolated(model, samples):
    images, labels, _ = samples
    return isolate_features(model, images, labels, **STEPS)


def test_masks_overlap_the_known_squares_far_more_than_chance(isolated, samples):
    _, labels, squares = samples
    ious = np.array([mask_iou(m, s) for m, s in zip(isolated.masks, squares)])
    # Chance: a random mask of the same area, placed anywhere.
    rng = np.random.default_rng(0)
    chance = []
    for mask, square in zip(isolated.masks, squares):
        flat = (mask > 0.5).ravel()
        shuffled = [rng.permutation(flat).reshape(mask.shape) for _ in range(50)]
        chance.append(np.mean([mask_iou(s, square) for s in shuffled]))
    chance = np.array(chance)
    assert ious.mean() > 0.6, ious
    assert (ious > 5 * chance + 0.2).all(), (ious, chance)
    assert 3 in labels  # two squares, both kept
    kept = isolated.probabilities[np.arange(len(labels)), labels]
    assert (kept > 0.5).all(), kept


def test_result_shapes_and_history(isolated, samples):
    images, labels, _ = samples
    assert isolated.masks.shape == (8, 32, 32)
    assert isolated.isolated.shape == images.shape
    np.testing.assert_array_equal(isolated.steps, [50, 100, 150])
    assert isolated.history.shape == (3, 8, 4)
    np.testing.assert_allclose(isolated.history[-1], isolated.probabilities, atol=1e-6)
    m = isolated.masks[..., None]
    np.testing.assert_allclose(
        isolated.isolated, m * images + (1 - m) * BACKGROUND, atol=1e-5
    )


def test_area_weight_shrinks_and_smoothness_smooths_the_masks(model, samples):
    images, labels, _ = samples
    images, labels = images[:4], labels[:4]
    short = {**STEPS, "steps": 60, "log_freq": 60}
    loose = isolate_features(model, images, labels, area_weight=0.1, **short)
    tight = isolate_features(model, images, labels, area_weight=3.0, **short)
    assert tight.masks.mean() < 0.7 * loose.masks.mean()
    rough = isolate_features(model, images, labels, smoothness_weight=0.0, **short)
    smooth = isolate_features(model, images, labels, smoothness_weight=20.0, **short)
    tv = [variation(r.masks[..., None], "mean").numpy().mean() for r in (rough, smooth)]
    assert tv[1] < tv[0]


def test_random_baseline_is_seeded(model, samples):
    images, labels, _ = samples
    kwargs = {**STEPS, "steps": 5, "log_freq": 5, "baseline": "r"}
    a = isolate_features(model, images[:2], labels[:2], seed=1, **kwargs)
    b = isolate_features(model, images[:2], labels[:2], seed=1, **kwargs)
    c = isolate_features(model, images[:2], labels[:2], seed=2, **kwargs)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert np.abs(a.masks - c.masks).max() > 0


def test_callback_sees_every_logged_step(model, samples):
    images, labels, _ = samples
    seen = []
    isolate_features(
        model,
        images[:2],
        labels[:2],
        steps=6,
        log_freq=4,
        callback=lambda step, x, p: seen.append((step, x.shape, p.shape)),
    )
    assert seen == [(4, (2, 32, 32, 3), (2, 4)), (6, (2, 32, 32, 3), (2, 4))]


def test_channels_first_model(model, samples):
    images, labels, _ = samples
    inputs = keras.Input((3, 32, 32))
    wrapped = keras.Model(inputs, model(keras.layers.Permute((2, 3, 1))(inputs)))
    kwargs = {**STEPS, "steps": 5, "log_freq": 5}
    first = isolate_features(wrapped, images[:2], labels[:2], channels_axis=1, **kwargs)
    last = isolate_features(model, images[:2], labels[:2], **kwargs)
    np.testing.assert_allclose(first.masks, last.masks, atol=1e-5)


def test_mask_iou_numbers():
    region = np.zeros((4, 4), bool)
    region[:2, :2] = True
    mask = np.zeros((4, 4))
    mask[:2, :3] = 0.9
    assert mask_iou(mask, region) == pytest.approx(4 / 6)
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4), bool)) == 1.0


def test_errors(model, samples):
    images, labels, _ = samples
    with pytest.raises(ValueError, match=r"`images` must have shape \(N, H, W, C\)"):
        isolate_features(model, images[0], labels[:1])
    with pytest.raises(ValueError, match="one integer class per image"):
        isolate_features(model, images[:2], labels[:1])
    with pytest.raises(ValueError, match=r"Class indices must lie in \[0, 4\)"):
        isolate_features(model, images[:1], [4], steps=1)
    with pytest.raises(ValueError, match="`area_weight` must be a finite non-negative"):
        isolate_features(model, images[:1], labels[:1], area_weight=-1.0)
    with pytest.raises(TypeError, match="`steps` must be an integer"):
        isolate_features(model, images[:1], labels[:1], steps=1.5)
    with pytest.raises(ValueError, match="`baseline` must be a number, an array"):
        check_baseline("noise", (2, 2, 3), "baseline")
    with pytest.raises(
        ValueError,
        match=r"must broadcast to the image shape \(2, 2, 3\)",
    ):
        check_baseline(np.zeros(4), (2, 2, 3), "baseline")
    with pytest.raises(TypeError, match="must be a number, an array or 'r'"):
        check_baseline(None, (2, 2, 3), "baseline")
