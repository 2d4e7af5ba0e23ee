"""Labelled grids, colour scales and HTML reports (keras_interp._report,
public through keras_interp.visualization)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_interp import _report as rp


def test_diverging_colormap_is_white_at_zero_and_symmetric():
    values = np.array([[-2.0, 0.0, 2.0]])
    colours = rp.colormap(values, signed=True)
    np.testing.assert_allclose(colours[0, 1], [1, 1, 1])
    np.testing.assert_allclose(colours[0, 0], rp.DIVERGING[0], atol=1e-6)
    np.testing.assert_allclose(colours[0, 2], rp.DIVERGING[-1], atol=1e-6)


def test_sequential_colormap_uses_the_fixed_scale():
    colours = rp.colormap(np.array([[0.5]]), vmin=0.0, vmax=1.0)
    middle = rp.SEQUENTIAL[3]  # 0.5 of 6 intervals lands on anchor 3
    np.testing.assert_allclose(colours[0, 0], middle, atol=1e-6)
    # Values outside the scale are clipped to its ends.
    np.testing.assert_allclose(
        rp.colormap(np.array([[9.0]]), vmin=0, vmax=1)[0, 0], rp.SEQUENTIAL[-1]
    )


def test_colormap_errors():
    with pytest.raises(ValueError, match="`values` must be 2-D"):
        rp.colormap(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="`vmax` must exceed"):
        rp.colormap(np.zeros((2, 2)), vmin=1.0, vmax=1.0)


def test_empty_map_is_flagged_not_dimmed():
    image = np.full((8, 8, 3), 0.5, np.float32)
    tile, empty = rp.explanation_tile(image, np.zeros((4, 4)))
    assert empty
    assert np.all(tile[..., 0] == tile[..., 1])  # grey, not coloured
    tile, empty = rp.explanation_tile(image, np.ones((4, 4)))
    assert not empty


def test_mask_outline_is_drawn_on_the_boundary_only():
    image = np.zeros((8, 8, 3), np.float32)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    tile, _ = rp.explanation_tile(image, np.ones((8, 8)), mask=mask)
    white = np.all(tile == 255, axis=-1)
    assert white[2, 2] and white[5, 3] and not white[3, 3] and not white[0, 0]
    assert white.sum() == 12  # the 4x4 square's perimeter


def test_labelled_grid_layout_and_scales():
    images = [np.random.default_rng(i).random((16, 16, 3)) for i in range(3)]
    maps = {"gradcam": np.random.rand(3, 4, 4), "saliency": -np.random.rand(3, 16, 16)}
    picture = rp.labelled_grid(
        images,
        maps,
        row_labels=["a", "b", "c"],
        tile_labels={"gradcam": ["x p=0.5"] * 3},
        signed={"saliency": True},
        tile_size=32,
    )
    cell_w, cell_h = 32 + 6, 32 + 16 + 6
    assert picture.size == (110 + 3 * cell_w, 22 + 3 * cell_h + 44)
    with pytest.raises(ValueError, match="one map per image"):
        rp.labelled_grid(images, {"m": np.zeros((2, 4, 4))})


def test_report_html_and_save(tmp_path):
    page = rp.report("Demo <1>", notes=["a & b"])
    page.add_table([{"method": "gradcam", "hit": 0.25}], heading="Scores")
    page.add_image(np.zeros((4, 4, 3), np.uint8), "black")
    text = page.to_html()
    assert "Demo &lt;1&gt;" in text and "a &amp; b" in text
    assert "<td>0.250</td>" in text and "data:image/png;base64," in text
    path = page.save(tmp_path / "sub" / "report.html")
    assert path.read_text() == text


def test_signed_method_with_clipped_maps_labels_empty_tiles():
    image = np.full((8, 8, 3), 0.5, np.float32)
    _, empty = rp.explanation_tile(image, np.zeros((4, 4)), signed=True)
    assert empty  # all zero: no evidence of either sign
    _, empty = rp.explanation_tile(image, -np.ones((4, 4)), signed=True)
    assert not empty
