"""Map summaries and the output files' formats (no pipeline run)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from keras_interp.beam import output as out  # noqa: E402
from keras_interp.beam.summary import map_summary, overlay_png  # noqa: E402


def test_quadrant_shares_of_a_hand_made_map():
    heatmap = np.array(
        [
            [1.0, 0.0, 0.0, 2.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [3.0, 0.0, 0.0, -4.0],
        ]
    )
    got = map_summary(heatmap)
    assert (got["peak_row"], got["peak_col"], got["peak_value"]) == (3, 0, 3.0)
    assert got["map_mean"] == pytest.approx(2.0 / 16)
    # Mass is |m|: 1, 2, 3, 4 of 10.
    assert got["mass_top_left"] == pytest.approx(0.1)
    assert got["mass_top_right"] == pytest.approx(0.2)
    assert got["mass_bottom_left"] == pytest.approx(0.3)
    assert got["mass_bottom_right"] == pytest.approx(0.4)


def test_odd_sizes_split_the_middle_row_and_column_in_halves():
    heatmap = np.zeros((3, 5))
    heatmap[1, 2] = 8.0  # The centre pixel: a quarter in each quadrant.
    heatmap[0, 2] = 4.0  # Middle column, top row: half top-left, half top-right.
    got = map_summary(heatmap)
    assert got["mass_top_left"] == pytest.approx((2 + 2) / 12)
    assert got["mass_top_right"] == pytest.approx((2 + 2) / 12)
    assert got["mass_bottom_left"] == pytest.approx(2 / 12)
    assert got["mass_bottom_right"] == pytest.approx(2 / 12)
    assert (got["peak_row"], got["peak_col"]) == (1, 2)


def test_an_empty_map_has_no_quadrant_shares_and_ties_pick_the_first_peak():
    got = map_summary(np.zeros((4, 4)))
    assert all(math.isnan(got[k]) for k in got if k.startswith("mass_"))
    assert (got["peak_row"], got["peak_col"]) == (0, 0)


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 1)), np.zeros((0, 3))])
def test_map_summary_refuses_non_maps(bad):
    with pytest.raises(ValueError, match=r"`heatmap` must be .* Received: heatmap="):
        map_summary(bad)


def _row(path: str, **extra) -> dict:
    row = {name: 0 for name, _ in out.ROW_SCHEMA}
    row.update(path=path, overlay=None, mass_top_left=float("nan"), **extra)
    return row


def test_parquet_and_json_lines_rows_round_trip_and_are_reproducible():
    import pandas as pd

    rows = [_row("a.png", peak_row=3, probability=0.25), _row("b.png", rank=1)]
    parquet = out.rows_bytes(rows, "parquet")
    assert parquet == out.rows_bytes(rows, "parquet")
    table = pd.read_parquet(io.BytesIO(parquet))
    assert list(table.columns) == [name for name, _ in out.ROW_SCHEMA]
    assert table["peak_row"].tolist() == [3, 0]
    assert table["probability"].tolist() == [0.25, 0.0]
    assert table["mass_top_left"].isna().all()
    lines = out.rows_bytes(rows, "jsonl").decode().splitlines()
    assert json.loads(lines[0])["mass_top_left"] is None  # JSON has no NaN
    with pytest.raises(ValueError, match="output_format"):
        out.rows_bytes(rows, "csv")


def test_map_archives_load_with_numpy_and_are_byte_identical():
    arrays = {"paths": np.array(["a", "b"]), "maps": np.arange(8.0).reshape(2, 2, 2)}
    first = out.arrays_bytes(arrays)
    assert first == out.arrays_bytes(arrays)
    with np.load(io.BytesIO(first)) as archive:
        np.testing.assert_array_equal(archive["maps"], arrays["maps"])
        assert archive["paths"].tolist() == ["a", "b"]


def test_shards_and_names_are_stable():
    assert out.shard_of("gs://b/x.png", 4) == out.shard_of("gs://b/x.png", 4)
    shards = {out.shard_of(f"img{i}.png", 4) for i in range(64)}
    assert shards == {0, 1, 2, 3}
    assert (
        out.shard_name("o/run", "maps", 2, 10, "npz") == "o/run-maps-00002-of-00010.npz"
    )
    a = out.overlay_name("o/run", "x/cat.png", 0)
    b = out.overlay_name("o/run", "y/cat.png", 0)
    assert a.startswith("o/run-overlays/cat-") and a.endswith("-0.png") and a != b


def test_overlay_png_is_a_png_of_the_image_size():
    import PIL.Image

    content = overlay_png(np.zeros((6, 4, 3)), np.eye(3))
    assert content == overlay_png(np.zeros((6, 4, 3)), np.eye(3))
    assert PIL.Image.open(io.BytesIO(content)).size == (4, 6)
