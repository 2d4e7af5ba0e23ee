"""`max_seconds`: the budget bounds the whole logging call, the fixed part
(forward pass, grid, scalars) included. Costs are charged to a fake clock, so
nothing depends on the machine's speed."""

from __future__ import annotations

import numpy as np
import pytest
from callback_helpers import (
    CLOCK,
    COSTS,
    charged,
    data,
    fast,
    read_run,
    slow,
    small_cnn,
)

from keras_interp.callbacks import ExplainCallback, _render, grid_size
from keras_interp.callbacks._budget import MIN_TILE, Budget, tile_sizes


@pytest.fixture
def paid_grids(monkeypatch):
    """Drawing a grid costs `base + pixel * pixels` on the fake clock."""
    draw = _render.render_grid

    def render(*args, **kwargs):
        grid = draw(*args, **kwargs)
        CLOCK.charge(COSTS["base"] + COSTS["pixel"] * grid.shape[0] * grid.shape[1])
        return grid

    monkeypatch.setattr(_render, "render_grid", render)


@pytest.fixture(scope="module")
def model():
    return small_cnn()


def _calls(callback, model, epochs):
    callback.set_model(model)
    for epoch in range(epochs):
        callback.on_epoch_end(epoch)
    callback.on_train_end()
    return [seconds for _, seconds in callback.seconds]


def _pixels(tile: int) -> int:
    height, width = grid_size(2, 2, tile)
    return height * width


def test_tile_sizes():
    assert tile_sizes(96) == [96, 48, 24, MIN_TILE]
    assert tile_sizes(64) == [64, 32, 16]
    assert tile_sizes(40) == [40, 20, 16]
    assert tile_sizes(10) == [10]


def test_budget_arithmetic():
    budget = Budget(1.0)
    budget.record("forward", 0.1)
    budget.record("scalars", 0.05)
    budget.record("m", 0.3)
    budget.fit_grid((10_000, 0.5), (2_000, 0.1))  # base 0, 5e-5 s per pixel
    assert budget.grid(4_000) == pytest.approx(0.2)
    assert budget.fixed(2_000) == pytest.approx(0.25)
    assert budget.epoch_fits(2_000)
    assert budget.method_fits("m", 0.1, 2_000)  # 0.1 + 0.3 + 0.15 <= 1
    assert not budget.method_fits("m", 0.6, 2_000)
    assert budget.method_fits("never measured", 0.99, 2_000)
    sizes = {64: 10_000, 32: 4_000, 16: 2_000}
    assert budget.tile(0.1, list(sizes), sizes.get) == 64  # 0.1 + 0.55 <= 1
    assert budget.tile(0.6, list(sizes), sizes.get) == 32  # 0.6 + 0.25 <= 1
    assert budget.tile(0.95, list(sizes), sizes.get) == 16  # none fits
    budget.record_grid(4_000, 0.4)  # twice slower than the line: scale it
    assert budget.grid(10_000) == pytest.approx(1.0)
    assert budget.fixed(2_000) == pytest.approx(0.35)
    budget.max_seconds = 0.3
    assert not budget.epoch_fits(2_000)
    noisy = Budget(1.0)
    noisy.fit_grid((10_000, 0.1), (2_000, 0.2))  # smaller was slower: flat
    assert noisy.grid(2_000) == noisy.grid(10_000) == pytest.approx(0.2)


def test_grid_downscaled_to_fit(model, paid_grids, tmp_path):
    """The full grid (tile 64) no longer fits next to the forward pass and
    the method: it is drawn with 32 px tiles, and every call after the first
    stays within the budget."""
    x, _ = data()
    callback = charged(
        ExplainCallback(
            x[:2], methods=fast, log_dir=tmp_path, tile_size=64, max_seconds=0.7
        )  # fmt: skip
    )
    full = COSTS["base"] + COSTS["pixel"] * _pixels(64)
    half = COSTS["base"] + COSTS["pixel"] * _pixels(32)
    assert COSTS["forward"] + COSTS["fast"] + half <= 0.7
    assert COSTS["forward"] + COSTS["fast"] + full > 0.7
    seconds = _calls(callback, model, 4)
    # The first call runs the forward pass and the method twice and draws two
    # grids, to measure them.
    assert seconds[0] == pytest.approx(
        2 * COSTS["forward"] + 2 * COSTS["fast"] + full + COSTS["base"]
        + COSTS["pixel"] * _pixels(16)
    )  # fmt: skip
    expected = COSTS["forward"] + COSTS["fast"] + half
    assert seconds[1:] == pytest.approx([expected] * 3)
    assert max(seconds[1:]) <= 0.7
    written = read_run(tmp_path / "explanations")
    assert [v for _, v in written["tile_size"]] == [64, 32, 32, 32]
    shapes = [image.shape[:2] for _, image in written["grid"]]
    assert shapes == [grid_size(2, 2, 64)] + [grid_size(2, 2, 32)] * 3
    assert [v for _, v in written["skipped_epoch"]] == [0, 0, 0, 0]
    assert callback.skipped == [] and callback.skipped_epochs == []
    assert len(callback.history["fast"]) == 4


def test_epoch_skipped_when_the_fixed_part_does_not_fit(model, paid_grids, tmp_path):
    x, _ = data()
    callback = charged(
        ExplainCallback(
            x[:2], methods=fast, log_dir=tmp_path, tile_size=64, max_seconds=0.2
        )  # fmt: skip
    )
    smallest = COSTS["base"] + COSTS["pixel"] * _pixels(16)
    assert COSTS["forward"] + smallest > 0.2
    with pytest.warns(RuntimeWarning, match=r"max_seconds=0.2 is below the fixed"):
        seconds = _calls(callback, model, 4)
    assert seconds[1:] == [0.0, 0.0, 0.0]  # nothing paid for
    assert callback.skipped_epochs == [1, 2, 3]
    assert callback.skipped == [(1, ["fast"]), (2, ["fast"]), (3, ["fast"])]
    written = read_run(tmp_path / "explanations")
    assert [s for s, _ in written["grid"]] == [0]
    assert [(s, v) for s, v in written["skipped_epoch"]] == [
        (0, 0.0), (1, 1.0), (2, 1.0), (3, 1.0)
    ]  # fmt: skip
    assert [e for e, _ in callback.history["fast"]] == [0]


def test_methods_rotate_within_the_budget(model, paid_grids, tmp_path):
    """Both methods do not fit together: they take turns; no call after the
    first exceeds the budget."""
    x, _ = data()
    callback = charged(
        ExplainCallback(
            x[:2], methods=[fast, slow], log_dir=tmp_path, tile_size=16, max_seconds=1.0
        )  # fmt: skip
    )
    grid = (
        COSTS["base"] + COSTS["pixel"] * grid_size(2, 3, 16)[0] * grid_size(2, 3, 16)[1]
    )
    assert COSTS["forward"] + COSTS["fast"] + COSTS["slow"] + grid > 1.0
    with pytest.warns(RuntimeWarning, match="does not fit every method"):
        seconds = _calls(callback, model, 5)
    assert max(seconds[1:]) <= 1.0
    skipped = dict(callback.skipped)
    # Call 1 starts with `slow` (the order rotates), which then leaves no
    # room for `fast`; call 2 starts with `fast`, leaving none for `slow`.
    assert skipped == {1: ["fast"], 2: ["slow"], 3: ["fast"], 4: ["slow"]}
    assert [e for e, _ in callback.history["slow"]] == [0, 1, 3]
    assert [e for e, _ in callback.history["fast"]] == [0, 2, 4]
    np.testing.assert_array_equal(
        [v for _, v in read_run(tmp_path / "explanations")["skipped"]],
        [0, 1, 1, 1, 1],
    )
