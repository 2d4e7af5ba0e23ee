"""The explanation grid of `ExplainCallback`, and the numbers it logs.

The grid has a row per image and a column per method after the input: every
tile is `tile_size` pixels square with `PAD` pixels between tiles, the rows are
labelled on the left (image index, explained class and its probability, true
class when known), the columns on top, and a colour bar at the bottom states
the one colour scale every tile uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from keras_interp.visualization import colorize

#: Pixels between tiles and around the grid.
PAD = 4
#: Width of the row labels, height of the column titles and of the colour bar.
LABEL_WIDTH, TITLE_HEIGHT, FOOTER_HEIGHT = 96, 16, 30
#: Opacity of the maps over the images.
ALPHA = 0.6


def grid_size(rows: int, columns: int, tile_size: int) -> tuple[int, int]:
    """The `(height, width)` of a grid of `rows` x `columns` tiles.

    `columns` counts the input column. Every logged grid of a callback has
    this size, so TensorBoard's step slider shows aligned pictures.
    """
    width = LABEL_WIDTH + columns * (tile_size + PAD) + PAD
    height = TITLE_HEIGHT + rows * (tile_size + PAD) + PAD + FOOTER_HEIGHT
    return height, width


def colour_scale(maps: Sequence[np.ndarray | None]) -> tuple[float, float]:
    """The one `(low, high)` every tile is coloured with: `(0, 1)` when all maps
    lie in [0, 1] (normalised maps), else the range over all of them."""
    values = [m for m in maps if m is not None and m.size]
    if not values:
        return 0.0, 1.0
    low = float(min(np.nanmin(m) for m in values))
    high = float(max(np.nanmax(m) for m in values))
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return (low, high) if high > low else (low, low + 1.0)


def _colours(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """`visualization.colorize` on a fixed scale instead of min-max per map."""
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0, 1)
    anchored = np.concatenate([scaled.ravel(), [0.0, 1.0]])[None, :]
    return colorize(anchored)[0, :-2].reshape(*scaled.shape, 3)


def _display(image: np.ndarray) -> np.ndarray:
    """An image as float RGB in [0, 1]: kept if already there, else min-max."""
    image = np.asarray(image, np.float32)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] != 3:
        image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        image = (image - low) / (high - low) if high > low else image * 0
    return image


def _tile(picture: np.ndarray, size: int) -> Image.Image:
    tile = Image.fromarray((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
    return tile.resize((size, size), Image.BILINEAR)


def _resize_map(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if heat.shape == shape:
        return heat
    resized = Image.fromarray(heat.astype(np.float32)).resize(
        (shape[1], shape[0]), Image.BILINEAR
    )
    return np.asarray(resized, np.float32)


def render_grid(
    images: np.ndarray,
    maps: dict[str, np.ndarray | None],
    row_labels: Sequence[str],
    *,
    tile_size: int,
    notes: dict[str, str] | None = None,
) -> np.ndarray:
    """The grid as uint8 RGB `(H, W, 3)`, `(H, W) = grid_size(...)`.

    Args:
        images: the watched images `(N, H, W, C)`.
        maps: method title -> maps `(N, H', W')`, or `None` for a method not
            run this time (its tiles are grey, with `notes[title]`).
        row_labels: one label per image (lines separated by newlines).
        tile_size: the side of each tile in pixels.
        notes: title -> why a method has no maps (e.g. "skipped: time").
    """
    notes = notes or {}
    rows, columns = len(images), 1 + len(maps)
    height, width = grid_size(rows, columns, tile_size)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    low, high = colour_scale(list(maps.values()))
    chars = max(4, tile_size // 6)
    for j, title in enumerate(["input", *maps]):
        draw.text(
            (LABEL_WIDTH + j * (tile_size + PAD) + PAD, 2), title[:chars], "black"
        )
    for i, image in enumerate(images):
        top = TITLE_HEIGHT + i * (tile_size + PAD) + PAD
        shown = _display(image)
        draw.multiline_text((2, top + 2), row_labels[i], "black", spacing=2)
        canvas.paste(_tile(shown, tile_size), (LABEL_WIDTH + PAD, top))
        for j, (title, values) in enumerate(maps.items(), start=1):
            left = LABEL_WIDTH + j * (tile_size + PAD) + PAD
            if values is None:
                draw.rectangle(
                    (left, top, left + tile_size - 1, top + tile_size - 1), "#bbbbbb"
                )
                note = notes.get(title, "not run")
                draw.multiline_text(
                    (left + 3, top + 3), note.replace(": ", ":\n"), "black"
                )
                continue
            heat = _resize_map(values[i], shown.shape[:2])
            blended = (1 - ALPHA) * shown + ALPHA * _colours(heat, low, high)
            canvas.paste(_tile(blended, tile_size), (left, top))
    _colour_bar(draw, canvas, height, width, low, high)
    return np.asarray(canvas, np.uint8)


def _colour_bar(draw, canvas, height: int, width: int, low: float, high: float):
    top = height - FOOTER_HEIGHT + 4
    length = max(16, min(160, width - 2 * PAD - 150))
    bar = _colours(np.linspace(low, high, length)[None, :].repeat(8, 0), low, high)
    canvas.paste(_tile_strip(bar), (PAD, top))
    draw.text((PAD, top + 10), f"{low:.3g}", "black")
    draw.text((PAD + length - 24, top + 10), f"{high:.3g}", "black")
    draw.text((PAD + length + 6, top), "one colour scale,", "black")
    draw.text((PAD + length + 6, top + 12), "all tiles", "black")


def _tile_strip(colours: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(colours, 0, 1) * 255).round().astype(np.uint8))


# -- numbers ---------------------------------------------------------------------
def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values, axis=1)


def rank_correlation(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each map with its previous one.

    Args:
        previous: maps `(N, H, W)`.
        current: maps `(N, H, W)`.

    Returns:
        float64 `(N,)`, NaN where a map is constant (no ranking).
    """
    a = _ranks(np.reshape(previous, (len(previous), -1)).astype(np.float64))
    b = _ranks(np.reshape(current, (len(current), -1)).astype(np.float64))
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """1 where a map's maximum falls inside the image's mask, else 0: `(N,)`."""
    flat = np.reshape(maps, (len(maps), -1))
    peak = np.nanargmax(np.where(np.isnan(flat), -np.inf, flat), axis=1)
    return np.reshape(masks, (len(masks), -1))[np.arange(len(maps)), peak].astype(float)


def relevance_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The fraction of each map's positive mass inside its mask: `(N,)` in
    [0, 1], NaN for a map with no positive value.

    References:
        Arras et al., CLEVR-XAI: A benchmark dataset for the ground truth
        evaluation of neural network explanations, Information Fusion 2022.
        arXiv:2003.07258.
    """
    positive = np.clip(np.nan_to_num(np.reshape(maps, (len(maps), -1))), 0, None)
    inside = (positive * np.reshape(masks, (len(masks), -1))).sum(axis=1)
    total = positive.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)
