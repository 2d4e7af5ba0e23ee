"""Pointing game, relevance mass and rank, energy pointing game; complexity."""

from __future__ import annotations

import numpy as np
import pytest

from keras_interp import metrics
from keras_interp.testing.evidence import evidence_images

X = np.zeros((1, 4, 4, 3), np.float32)


def _evidence():
    x, _, masks = evidence_images(12, size=32, object_size=8, seed=2)
    rng = np.random.default_rng(0)
    correct = masks.astype(np.float32) + 0.01 * rng.random(masks.shape)
    shifted = np.roll(correct, (11, 13), axis=(1, 2))
    random = rng.random(masks.shape).astype(np.float32)
    return x, masks, correct, shifted, random


@pytest.mark.parametrize(
    "name",
    ["pointing_game", "relevance_mass", "relevance_rank", "energy_pointing_game"],
)
def test_correct_beats_shifted_and_random(name):
    x, masks, correct, shifted, random = _evidence()
    score = {
        kind: metrics.METRICS[name](None, x, maps=maps, masks=masks).mean
        for kind, maps in (
            ("correct", correct),
            ("shifted", shifted),
            ("random", random),
        )
    }
    assert score["correct"] > 0.8
    assert score["shifted"] < 0.35 and score["random"] < 0.35


def test_pointing_game_tolerance_ties_and_boxes():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 0, 0] = True
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, 2, 2] = 1.0  # distance sqrt(8) ~ 2.83 from the mask
    assert metrics.pointing_game(None, X, maps=maps, masks=masks).mean == 0.0
    hit = metrics.pointing_game(None, X, maps=maps, masks=masks, tolerance=2.9)
    assert hit.mean == 1.0
    flat = metrics.pointing_game(None, X, maps=np.ones((1, 4, 4)), masks=masks)
    assert flat.mean == pytest.approx(1 / 16)  # a constant map is not a hit
    boxes = np.array([[2, 2, 4, 4]])
    assert metrics.pointing_game(None, X, maps=maps, masks=boxes).mean == 1.0


def test_empty_mask_is_an_error_not_a_hit():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 1, 1] = True
    with pytest.raises(ValueError, match=r"image\(s\) \[1\] have empty masks"):
        metrics.pointing_game(None, np.zeros((2, 4, 4, 3)), maps=np.ones((2, 4, 4)),
                              masks=masks)  # fmt: skip
    with pytest.raises(ValueError, match="Received: masks="):
        metrics.relevance_mass(None, X, maps=np.ones((1, 4, 4)), masks=np.ones((1, 3)))
    with pytest.raises(ValueError, match="need `masks`"):
        metrics.relevance_rank(None, X, maps=np.ones((1, 4, 4)))


def test_worked_examples():
    maps = np.array([[[4.0, -2.0], [1.0, 3.0]]])
    masks = np.array([[[True, False], [True, False]]])
    x = np.zeros((1, 2, 2, 3), np.float32)
    # Positive relevance 4 + 1 + 3 = 8, of which 4 + 1 on the mask.
    assert metrics.relevance_mass(None, x, maps=maps, masks=masks).mean == 5 / 8
    # K = 2 most relevant pixels: 4 (in) and 3 (out).
    assert metrics.relevance_rank(None, x, maps=maps, masks=masks).mean == 0.5
    # Min-max: (1, 0, 0.5, 5/6); the box of the mask is the left column.
    energy = metrics.energy_pointing_game(None, x, maps=maps, masks=masks).mean
    assert energy == pytest.approx(1.5 / (1 + 0.5 + 5 / 6))
    # The box of a diagonal mask is the whole image.
    diagonal = np.array([[[True, False], [False, True]]])
    assert metrics.energy_pointing_game(None, x, maps=maps, masks=diagonal).mean == 1


def test_sparseness_and_complexity_worked_examples():
    maps = np.array(
        [[[1.0, 2.0], [3.0, -4.0]], [[0.0, 0.0], [0.0, 5.0]], [[1.0, 1.0], [1, 1]]]
    )
    x = np.zeros((3, 2, 2, 3), np.float32)
    gini = metrics.sparseness(None, x, maps=maps).values
    # (-3*1 - 1*2 + 1*3 + 3*4) / (4 * 10) = 0.25; one-hot: 3/4; uniform: 0.
    np.testing.assert_allclose(gini, [0.25, 0.75, 0.0])
    entropy = metrics.complexity(None, x, maps=maps).values
    p = np.array([1, 2, 3, 4]) / 10
    np.testing.assert_allclose(entropy, [-(p * np.log(p)).sum(), 0.0, np.log(4)])
