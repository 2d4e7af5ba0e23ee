"""Turn explaining maps into pictures: heatmap overlays, a PNG grid, an HTML page.

Only numpy and Pillow are needed (matplotlib is optional).
"""

from __future__ import annotations

import base64
import html
import io
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from keras_interp._report import SEQUENTIAL
from keras_interp._validation import (
    check_non_negative_float,
    check_positive_int,
    received,
)

# Anchor colours of the "turbo"-like map used for heatmaps (low -> high).
_ANCHORS = SEQUENTIAL


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Map a 2-D array to RGB float32 in [0, 1] (min-max normalised first).

    Args:
        heatmap: `(H, W)` values.

    Returns:
        `(H, W, 3)` colours, blue for low values through red for high ones.

    Raises:
        ValueError: `heatmap` not 2-D, empty, or with NaN or infinite values.
    """
    values = np.asarray(heatmap, np.float32)
    if values.ndim != 2:
        raise ValueError(f"`heatmap` must be 2-D (H, W). {received('heatmap', values)}")
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(
            "`heatmap` must be non-empty and finite (no NaN or inf). "
            f"{received('heatmap', values)}"
        )
    span = float(values.max() - values.min())
    values = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    position = values * (len(_ANCHORS) - 1)
    low = np.clip(np.floor(position).astype(int), 0, len(_ANCHORS) - 2)
    weight = (position - low)[..., None]
    return (_ANCHORS[low] * (1 - weight) + _ANCHORS[low + 1] * weight).astype(
        np.float32
    )


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap over an image.

    Args:
        image: `(H, W, 3)` float in [0, 1].
        heatmap: `(H', W')` or `(H', W', 1)` values, resized to `(H, W)`.
        alpha: the heatmap's opacity in [0, 1].

    Returns:
        `(H, W, 3)` uint8.

    Raises:
        ValueError: `alpha` outside [0, 1], `image` not `(H, W, 3)` or not
            finite, a `heatmap` of another shape or not finite.
    """
    alpha = check_non_negative_float(alpha, "alpha")
    if alpha > 1:
        raise ValueError(f"`alpha` must be in [0, 1]. {received('alpha', alpha)}")
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3 or not np.isfinite(image).all():
        raise ValueError(
            "`image` must be a finite (H, W, 3) RGB image in [0, 1]. "
            f"{received('image', image)}"
        )
    image = np.clip(image, 0, 1)
    heat = np.asarray(heatmap, np.float32)
    if not (heat.ndim == 2 or (heat.ndim == 3 and heat.shape[-1] == 1)):
        raise ValueError(
            f"`heatmap` must be (H', W') or (H', W', 1). {received('heatmap', heat)}"
        )
    heat = heat[..., 0] if heat.ndim == 3 else heat
    if heat.shape != image.shape[:2]:
        resized = Image.fromarray(heat).resize(
            (image.shape[1], image.shape[0]), Image.BILINEAR
        )
        heat = np.asarray(resized, np.float32)
    blended = (1 - alpha) * image + alpha * colorize(heat)
    return (np.clip(blended, 0, 1) * 255).round().astype(np.uint8)


def grid(
    tiles: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str] = (),
    column_titles: Sequence[str] = (),
    tile_size: int = 160,
) -> Image.Image:
    """Lay out uint8 RGB tiles in a grid with titles.

    Args:
        tiles: rows of `(H, W, 3)` uint8 images.
        row_titles: one title per row, drawn at its left.
        column_titles: one title per column, drawn above it.
        tile_size: each tile is resized to this square size.

    Returns:
        A PIL image.

    Raises:
        ValueError: no tiles, or a tile that is not `(H, W)` or `(H, W, 3)`.
        TypeError: `tile_size` not an integer.
    """
    tile_size = check_positive_int(tile_size, "tile_size")
    if not len(tiles) or not all(len(row) for row in tiles):
        raise ValueError(
            f"`tiles` must be non-empty rows of images. {received('tiles', tiles)}"
        )
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            shape = np.shape(tile)
            if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] == 3)):
                raise ValueError(
                    f"`tiles[{i}][{j}]` must be an (H, W, 3) or (H, W) image. "
                    f"{received(f'tiles[{i}][{j}]', np.asarray(tile))}"
                )
    rows, columns = len(tiles), max(len(row) for row in tiles)
    left, top, pad = (120 if row_titles else 0), (20 if column_titles else 0), 4
    canvas = Image.new(
        "RGB",
        (left + columns * (tile_size + pad), top + rows * (tile_size + pad)),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(column_titles):
        draw.text((left + j * (tile_size + pad) + 2, 4), title[:24], fill="black")
    for i, row in enumerate(tiles):
        y = top + i * (tile_size + pad)
        if i < len(row_titles):
            draw.text((4, y + tile_size // 2), row_titles[i][:18], fill="black")
        for j, tile in enumerate(row):
            picture = Image.fromarray(np.asarray(tile, np.uint8))
            picture = picture.resize((tile_size, tile_size), Image.BILINEAR)
            canvas.paste(picture, (left + j * (tile_size + pad), y))
    return canvas


def html_page(
    title: str,
    sections: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    notes: Sequence[str] = (),
) -> str:
    """A self-contained HTML page (images embedded as PNG data URIs).

    Args:
        title: the page title.
        sections: `(heading, [(caption, uint8 image), ...])` pairs.
        notes: paragraphs shown under the title.

    Returns:
        The HTML text.
    """
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;"
        "margin:4px;text-align:center}img{width:160px;height:160px}"
        "figcaption{font-size:12px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(note)}</p>" for note in notes),
    ]
    for heading, figures in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2><div>")
        for caption, image in figures:
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
            data = base64.b64encode(buffer.getvalue()).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(caption)}' "
                f"src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def save_report(
    folder: str | pathlib.Path,
    title: str,
    images: dict[str, np.ndarray],
    maps: dict[str, np.ndarray],
    notes: Sequence[str] = (),
) -> tuple[pathlib.Path, pathlib.Path]:
    """Write `grid.png` and `index.html` showing every method on every image.

    Args:
        folder: the output folder (created).
        title: the report title.
        images: `{name: (H, W, 3) float image in [0, 1]}`.
        maps: `{method name: (N, H', W') maps}`, one map per image, in the
            order of `images`.
        notes: paragraphs for the HTML page.

    Returns:
        The paths of the PNG grid and of the HTML page.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(images)
    originals = [(np.clip(images[n], 0, 1) * 255).astype(np.uint8) for n in names]
    tiles, sections = [], []
    for index, name in enumerate(names):
        row = [originals[index]] + [
            overlay(images[name], method_maps[index]) for method_maps in maps.values()
        ]
        tiles.append(row)
        captions = ["input", *maps]
        sections.append((name, list(zip(captions, row))))
    png = folder / "grid.png"
    grid(tiles, names, ["input", *maps]).save(png)
    page = folder / "index.html"
    page.write_text(html_page(title, sections, notes), encoding="utf-8")
    return png, page


# Labelled grids with colour bars and HTML reports (defined in _report.py).
from keras_interp._report import (  # noqa: E402
    EMPTY_LABEL,
    Report,
    colorbar,
    colormap,
    explanation_tile,
    labelled_grid,
    report,
)

__all__ = [
    "EMPTY_LABEL",
    "Report",
    "colorbar",
    "colorize",
    "colormap",
    "explanation_tile",
    "grid",
    "html_page",
    "labelled_grid",
    "overlay",
    "report",
    "save_report",
]
