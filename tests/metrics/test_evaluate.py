"""evaluate(), plot_curves(), the registry and input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keras_interp import metrics
from keras_interp.testing.evidence import evidence_cnn, evidence_images
from tests.metrics.conftest import edges, linear_model


@pytest.fixture(scope="module")
def task():
    x, y, masks = evidence_images(6, size=16, object_size=5, distractors=1, seed=0)
    return evidence_cnn(16, 3, seed=0), x, y, masks


def test_evaluate_table_matches_direct_calls(task):
    model, x, y, masks = task
    table = metrics.evaluate(
        ["gradients", edges],
        model,
        x,
        y,
        metrics=["pointing_game", {"deletion": {"steps": 4}}, "sparseness"],
        masks=masks,
        verbose=0,
    )
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == ["gradients", "edges"]
    assert list(table.columns) == ["pointing_game", "deletion", "sparseness"]
    direct = metrics.deletion(model, x, y, method="gradients", steps=4)
    assert table.loc["gradients", "deletion"] == pytest.approx(direct.mean, rel=1e-5)
    point = metrics.pointing_game(model, x, y, method=edges, masks=masks)
    assert table.loc["edges", "pointing_game"] == pytest.approx(point.mean)
    result = table.attrs["results"]["gradients"]["deletion"]
    assert result.curves.shape == (6, 5)


def test_evaluate_errors(task):
    model, x, y, masks = task
    with pytest.raises(ValueError, match="Unknown metric"):
        metrics.evaluate("gradients", model, x, y, metrics=["pointing"], verbose=0)
    with pytest.raises(ValueError, match="need `masks`"):
        metrics.evaluate("gradients", model, x, y, metrics="relevance_mass")
    with pytest.raises(ValueError, match="Unknown method"):
        metrics.evaluate("gradcma", model, x, y, metrics="deletion", verbose=0)


def test_plot_curves(task):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    model, x, y, _ = task
    result = metrics.insertion(model, x, y, method="gradients", steps=4)
    ax = metrics.plot_curves({"gradients": result})
    assert len(ax.lines) == 1
    np.testing.assert_allclose(ax.lines[0].get_ydata(), result.curves.mean(0))
    with pytest.raises(ValueError, match="no curves"):
        metrics.plot_curves({"g": metrics.sparseness(model, x, y, method="gradients")})


def test_registry_and_signature():
    import inspect

    assert len(metrics.METRICS) == 15
    for name, function in metrics.METRICS.items():
        params = inspect.signature(function).parameters
        assert list(params)[:3] == ["model", "x", "y"], name
        for keyword in ("method", "maps", "batch_size", "seed"):
            assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert function.__doc__ and "References:" in function.__doc__, name


def test_validation_messages():
    model = linear_model()
    x = np.zeros((2, 4, 4, 1), np.float32)
    maps = np.ones((2, 4, 4))
    with pytest.raises(ValueError, match=r"`y` must hold indices in \[0, 2\)"):
        metrics.deletion(model, x, [0, 5], maps=maps)
    with pytest.raises(ValueError, match="one index per image"):
        metrics.deletion(model, x, [0], maps=maps)
    with pytest.raises(ValueError, match=r"`maps` must be .* shape \(2, 4, 4\)"):
        metrics.insertion(model, x, [0, 1], maps=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="`maps` must be finite"):
        metrics.insertion(model, x, [0, 1], maps=np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="Give an attribution `method`"):
        metrics.deletion(model, x, [0, 1])
    with pytest.raises(ValueError, match="needs a `method`"):
        metrics.model_randomization(model, x, [0, 1], maps=maps)
    with pytest.raises(TypeError, match="Received: steps=1.5"):
        metrics.deletion(model, x, [0, 1], maps=maps, steps=1.5)
    with pytest.raises(ValueError, match="Received: baseline='black'"):
        metrics.deletion(model, x, [0, 1], maps=maps, baseline="black")
    with pytest.raises(ValueError, match="Received: score='prob'"):
        metrics.deletion(model, x, [0, 1], maps=maps, score="prob")
    with pytest.raises(ValueError, match="Received: order='pixels'"):
        metrics.deletion(model, x, [0, 1], maps=maps, order="pixels")
    with pytest.raises(ValueError, match="Received: percentages="):
        metrics.road(model, x, [0, 1], maps=maps, percentages=(0.5, 1.0))
    with pytest.raises(ValueError, match="Received: subset_percent=1.5"):
        metrics.mu_fidelity(model, x, [0, 1], maps=maps, subset_percent=1.5)
    with pytest.raises(ValueError, match="Received: x="):
        metrics.deletion(model, x[0], [0, 1], maps=maps)
    with pytest.raises(ValueError, match="Received: tolerance=-1"):
        metrics.pointing_game(None, x, maps=maps, masks=maps > 0, tolerance=-1)
    with pytest.raises(ValueError, match="Received: similarity='cosine'"):
        metrics.random_logit(model, x, [0, 1], method="gradients", similarity="cosine")


def test_compiled_step_is_traced_once_across_calls(task):
    from keras_interp.engine.cache import _CACHE

    _, x, y, _ = task
    model = evidence_cnn(16, 3, seed=3)  # a model no other test has scored
    maps = np.random.default_rng(0).random(x.shape[:3])
    metrics.deletion(model, x, y, maps=maps, steps=3, batch_size=4)
    # The step lives in the engine's one per-model cache, with the model.
    step = _CACHE[id(model)].variants[("metric step", "probability", "deletion")]
    assert step.experimental_get_tracing_count() == 1
    # Another batch size relaxes the trace once (reduce_retracing), then no more.
    metrics.deletion(model, x[:5], y[:5], maps=maps[:5], steps=3, batch_size=4)
    metrics.deletion(model, x[:3], y[:3], maps=maps[:3], steps=5, batch_size=4)
    metrics.deletion(model, x, y, maps=maps, steps=7, batch_size=4)
    assert step.experimental_get_tracing_count() <= 2
