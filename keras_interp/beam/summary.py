"""Per-image summaries of explaining maps, and overlay pictures (numpy only).

A result row describes one map by where its peak is and how its mass spreads
over the four quadrants of the image, so a table of millions of rows can be
queried ("which images put most of the attribution in the top-left corner?")
without loading the maps.
"""

from __future__ import annotations

import io

import numpy as np
import PIL.Image

from keras_interp._validation import received
from keras_interp.visualization import overlay

#: The summary columns of `map_summary`, in order.
SUMMARY_COLUMNS = (
    "peak_row",
    "peak_col",
    "peak_value",
    "map_mean",
    "mass_top_left",
    "mass_top_right",
    "mass_bottom_left",
    "mass_bottom_right",
)


def _half_weights(size: int) -> np.ndarray:
    """Weight of each row (column) in the first half: 1, ..., 0.5 (odd), 0."""
    return np.clip(size / 2 - np.arange(size), 0.0, 1.0)


def map_summary(heatmap: np.ndarray) -> dict[str, float | int]:
    """Peak position, mean and quadrant shares of one map.

    The mass of the map is `|m|`. The quadrant shares are the fractions of
    that mass in the top-left, top-right, bottom-left and bottom-right
    quarters of the image; with an odd height (width) the middle row (column)
    counts half in each half, so the four shares always sum to 1. A map with
    no mass (all zeros) has shares of NaN rather than a made-up split.

    Args:
        heatmap: one map `(H, W)`.

    Returns:
        A dict with the keys of `SUMMARY_COLUMNS`: `peak_row`, `peak_col`
        (the first position of the largest value, in row-major order),
        `peak_value`, `map_mean` and the four `mass_*` shares.

    Raises:
        ValueError: `heatmap` is not a non-empty 2-D array.

    Example:
        >>> summary = map_summary(np.array([[0.0, 1.0], [0.0, 3.0]]))
        >>> summary["peak_row"], summary["peak_col"], summary["mass_bottom_right"]
        (1, 1, 0.75)
    """
    values = np.asarray(heatmap, np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(
            f"`heatmap` must be a non-empty 2-D map (H, W). "
            f"{received('heatmap', heatmap)}"
        )
    row, col = np.unravel_index(int(np.argmax(values)), values.shape)
    mass = np.abs(values)
    total = float(mass.sum())
    top = _half_weights(values.shape[0])
    left = _half_weights(values.shape[1])
    shares = {}
    for name, rows, cols in (
        ("mass_top_left", top, left),
        ("mass_top_right", top, 1 - left),
        ("mass_bottom_left", 1 - top, left),
        ("mass_bottom_right", 1 - top, 1 - left),
    ):
        part = float(rows @ mass @ cols)
        shares[name] = part / total if total > 0 else float("nan")
    return {
        "peak_row": int(row),
        "peak_col": int(col),
        "peak_value": float(values[row, col]),
        "map_mean": float(values.mean()),
        **shares,
    }


def overlay_png(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> bytes:
    """A PNG of `heatmap` blended over `image` (`keras_interp.visualization`).

    Args:
        image: `(H, W, 3)` float in [0, 1].
        heatmap: `(H', W')` map, resized to the image.
        alpha: the heatmap's opacity in [0, 1].

    Returns:
        The PNG file's bytes (the same bytes for the same inputs).

    Example:
        >>> overlay_png(np.zeros((4, 4, 3)), np.eye(4))[:4]
        b'\\x89PNG'
    """
    picture = PIL.Image.fromarray(overlay(image, heatmap, alpha))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
