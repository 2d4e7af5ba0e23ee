"""Deletion, insertion, MuFidelity, faithfulness correlation, ROAD."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp import metrics
from keras_interp.metrics.road import noisy_linear_impute
from tests.metrics.conftest import linear_model


def _logits(model, x):
    return np.asarray(model(x))


def _reference_causal(model, x, y, maps, steps, mode, baseline=0.0, softmax=False):
    """Petsiuk et al.'s curves written out pixel by pixel (as xplique's loop)."""
    b, h, w, c = x.shape
    n = h * w
    order = np.argsort(-maps.reshape(b, -1), axis=1, kind="stable")
    counts = np.linspace(0, n, steps + 1).astype(np.int32)
    curves = np.zeros((b, steps + 1))
    for s, k in enumerate(counts):
        batch = (
            x.reshape(b, n, c).copy()
            if mode == "deletion"
            else np.full((b, n, c), baseline, np.float32)
        )
        for i in range(b):
            ids = order[i, :k]
            batch[i, ids] = (
                baseline if mode == "deletion" else x.reshape(b, n, c)[i, ids]
            )
        out = _logits(model, batch.reshape(x.shape))
        if softmax:
            out = np.exp(out - out.max(1, keepdims=True))
            out /= out.sum(1, keepdims=True)
        curves[:, s] = out[np.arange(b), y]
    return curves, 0.5 * (curves[:, 1:] + curves[:, :-1]).mean(1)


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("score", ["logit", "probability"])
def test_causal_matches_reference(linear, rng, mode, score):
    x = rng.random((5, 4, 4, 1), dtype=np.float32)
    y = np.array([0, 1, 1, 0, 1])
    maps = rng.random((5, 4, 4)).astype(np.float32)
    result = metrics.METRICS[mode](
        linear, x, y, maps=maps, steps=4, baseline=0.0, score=score, batch_size=3
    )
    curves, auc = _reference_causal(
        linear, x, y, maps, 4, mode, softmax=score == "probability"
    )
    np.testing.assert_allclose(result.curves, curves, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.values, auc, rtol=1e-5, atol=1e-6)
    assert result.mean == pytest.approx(auc.mean())
    np.testing.assert_allclose(result.axis, [0, 0.25, 0.5, 0.75, 1.0])


def test_deletion_by_hand():
    """One 2x2 image, weights (1, 2, 3, 4), map ranks pixel 3 then 2, 1, 0."""
    model = linear_model(size=2, classes=1)
    model.layers[-1].set_weights([np.array([[1.0], [2.0], [3.0], [4.0]]), np.zeros(1)])
    x = np.ones((1, 2, 2, 1), np.float32)
    maps = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    result = metrics.deletion(model, x, [0], maps=maps, steps=4, score="logit")
    np.testing.assert_allclose(result.curves[0], [10, 6, 3, 1, 0])
    assert result.values[0] == pytest.approx((16 + 9 + 4 + 1) / 8)


def test_superpixel_order_removes_whole_segments():
    model = linear_model(size=2, classes=1)
    model.layers[-1].set_weights([np.array([[1.0], [2.0], [3.0], [4.0]]), np.zeros(1)])
    x = np.ones((1, 2, 2, 1), np.float32)
    maps = np.array([[[0.0, 0.0], [5.0, 1.0]]])  # segment {2,3} mean 3 > {0,1}
    segments = np.array([[[0, 0], [1, 1]]])
    result = metrics.deletion(
        model, x, [0], maps=maps, steps=2, score="logit", order="superpixel",
        segments=segments,
    )  # fmt: skip
    np.testing.assert_allclose(result.curves[0], [10, 3, 0])


def test_batch_size_and_blur_baseline(linear, rng):
    x = rng.random((4, 4, 4, 1), dtype=np.float32)
    maps = rng.random((4, 4, 4)).astype(np.float32)
    a = metrics.insertion(linear, x, None, maps=maps, steps=3, batch_size=2)
    b = metrics.insertion(linear, x, None, maps=maps, steps=3, batch_size=64)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)
    # The path ends at the image itself: the last point is the model's score.
    probs = tf.nn.softmax(linear(x)).numpy()
    np.testing.assert_allclose(a.curves[:, -1], probs.max(1), rtol=1e-5)


@pytest.mark.parametrize("name", ["mu_fidelity", "faithfulness_correlation"])
def test_subset_correlation_is_one_for_exact_attributions(rng, name):
    """For a linear model, w * x is exact: every subset's drop equals its sum."""
    model = linear_model(size=6, classes=2)
    x = rng.random((3, 6, 6, 1), dtype=np.float32)
    y = np.array([0, 1, 0])
    w = model.layers[-1].get_weights()[0]
    exact = (x.reshape(3, -1) * w[:, y].T).reshape(3, 6, 6)
    options = {"grid_size": 3} if name == "mu_fidelity" else {"subset_size": 6}
    result = metrics.METRICS[name](
        model, x, y, maps=exact, score="logit", nb_samples=40, **options
    )
    np.testing.assert_allclose(result.values, 1.0, atol=1e-5)
    flipped = metrics.METRICS[name](
        model, x, y, maps=-exact, score="logit", nb_samples=40, **options
    )
    np.testing.assert_allclose(flipped.values, -1.0, atol=1e-5)


def test_mu_fidelity_matches_reference(rng, linear):
    """The definition written out: seeded grid subsets, drops, sums, Pearson."""
    x = rng.random((2, 4, 4, 1), dtype=np.float32)
    maps = rng.random((2, 4, 4)).astype(np.float32)
    y = np.array([1, 0])
    got = metrics.mu_fidelity(
        linear, x, y, maps=maps, grid_size=2, nb_samples=30, seed=3, score="logit"
    )
    cells = np.random.default_rng(3).uniform(size=(30, 2, 2)) < 0.2
    removed = cells.repeat(2, 1).repeat(2, 2)
    for i in range(2):
        full = _logits(linear, x[i : i + 1])[0, y[i]]
        holes = np.where(removed[..., None], 0.0, x[i][None])
        drops = full - _logits(linear, holes.astype(np.float32))[:, y[i]]
        sums = (maps[i][None] * removed).sum((1, 2))
        expected = np.corrcoef(sums, drops)[0, 1] if drops.std() > 0 else 0.0
        assert got.values[i] == pytest.approx(expected, abs=1e-4)


def test_noisy_linear_imputation_reproduces_a_ramp():
    """The 8-neighbour weighted mean of a linear function is the function."""
    rows, cols = np.mgrid[0:10, 0:10].astype(np.float32)
    ramp = (0.05 * rows + 0.03 * cols)[None, ..., None]
    removed = np.zeros((1, 10, 10), bool)
    removed[0, 3:7, 2:8] = True
    impute = tf.function(noisy_linear_impute)  # as inside the metric: compiled
    out = impute(ramp, removed, iterations=400, noise=0.0).numpy()
    np.testing.assert_allclose(out, ramp, atol=2e-3)
    noisy = impute(ramp, removed, iterations=400, noise=0.1).numpy()
    np.testing.assert_array_equal(noisy[~removed], ramp[~removed])
    assert 0.05 < (noisy - out)[removed].std() < 0.15


def test_road_lerf_keeps_the_score_and_morf_moves_it(rng):
    """Only 4 pixels carry weight and the map names them: removing the least
    relevant 50% leaves the logit exactly; removing the most relevant moves it."""
    model = linear_model(size=6, classes=1)
    w = np.zeros((36, 1))
    w[[7, 8, 13, 14], 0] = [2.0, -1.0, 3.0, 1.5]
    model.layers[-1].set_weights([w, np.zeros(1)])
    x = rng.random((2, 6, 6, 1), dtype=np.float32)
    maps = np.abs(w[:, 0]).reshape(1, 6, 6).repeat(2, 0) + 1e-3 * rng.random((2, 6, 6))
    kwargs = dict(maps=maps, score="logit", percentages=(0.2, 0.5), noise=0.0)
    full = np.asarray(model(x))[:, 0]
    lerf = metrics.road(model, x, [0, 0], order="lerf", **kwargs)
    morf = metrics.road(model, x, [0, 0], order="morf", **kwargs)
    assert morf.curves.shape == (2, 2) and morf.name == "road_morf"
    np.testing.assert_allclose(lerf.curves, full[:, None].repeat(2, 1), rtol=1e-5)
    assert (np.abs(morf.curves - full[:, None]) > 1e-3).all()
    again = metrics.road(model, x, [0, 0], order="morf", batch_size=1, **kwargs)
    np.testing.assert_allclose(again.values, morf.values, rtol=1e-5)
