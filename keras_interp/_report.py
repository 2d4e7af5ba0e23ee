"""Labelled explanation grids with colour bars, and self-contained HTML reports.

Public through `keras_interp.visualization`: `colormap`, `colorbar`,
`explanation_tile`, `labelled_grid`, `Report` and `report`. Only numpy and
Pillow are needed.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_interp._validation import received

#: Sequential colours (low -> high) for maps whose sign does not matter.
SEQUENTIAL = np.array(
    [
        [0.19, 0.07, 0.23],
        [0.27, 0.51, 0.96],
        [0.13, 0.87, 0.72],
        [0.64, 0.99, 0.24],
        [0.98, 0.73, 0.22],
        [0.88, 0.27, 0.05],
        [0.48, 0.02, 0.01],
    ]
)
#: Diverging colours (negative -> zero -> positive) for signed maps.
DIVERGING = np.array(
    [[0.02, 0.19, 0.58], [0.42, 0.68, 0.84], [1.0, 1.0, 1.0], [0.94, 0.42, 0.31]]
    + [[0.6, 0.0, 0.05]]
)
#: The label of a tile whose map holds no positive value.
EMPTY_LABEL = "no positive evidence"


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _scale(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """The colour scale `(vmin, vmax)` of `values`: symmetric around 0 when
    `signed`, else from 0 (or the minimum, if negative) to the maximum."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    if signed:
        top = float(np.abs(finite).max()) or 1.0
        return -top, top
    low, high = min(0.0, float(finite.min())), float(finite.max())
    return low, (high if high > low else low + 1.0)


def colormap(
    values: np.ndarray,
    *,
    signed: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Colour a 2-D array on a fixed scale.

    Args:
        values: `(H, W)` map values.
        signed: use the diverging map (blue negative, white zero, red
            positive) with a scale symmetric around zero.
        vmin: the value drawn with the first colour; from the data if `None`.
        vmax: the value drawn with the last colour; from the data if `None`.

    Returns:
        `(H, W, 3)` float32 colours in [0, 1].

    Raises:
        ValueError: `values` is not 2-D, or `vmax <= vmin`.

    Example:
        >>> colormap(np.array([[0.0, 1.0]])).shape
        (1, 2, 3)
    """
    values = np.asarray(values, np.float32)
    if values.ndim != 2:
        raise ValueError(f"`values` must be 2-D (H, W). {received('values', values)}")
    low, high = _scale(values, signed)
    low = low if vmin is None else float(vmin)
    high = high if vmax is None else float(vmax)
    if not high > low:
        raise ValueError(f"`vmax` must exceed `vmin`. {received('vmax', high)}")
    anchors = DIVERGING if signed else SEQUENTIAL
    position = np.clip((np.nan_to_num(values) - low) / (high - low), 0, 1)
    position = position * (len(anchors) - 1)
    index = np.clip(np.floor(position).astype(int), 0, len(anchors) - 2)
    weight = (position - index)[..., None]
    colours = anchors[index] * (1 - weight) + anchors[index + 1] * weight
    return colours.astype(np.float32)


def colorbar(
    vmin: float,
    vmax: float,
    *,
    signed: bool = False,
    label: str = "",
    width: int = 160,
    height: int = 34,
) -> Image.Image:
    """A horizontal colour bar with its end (and zero) values and a label.

    Args:
        vmin: the value at the left end.
        vmax: the value at the right end.
        signed: the diverging map (see `colormap`).
        label: drawn under the bar, e.g. the method family.
        width: the bar's width in pixels.
        height: the whole picture's height.

    Returns:
        An RGB PIL image `width x height`.
    """
    ramp = np.linspace(vmin, vmax, width, dtype=np.float32)[None].repeat(10, 0)
    colours = colormap(ramp, signed=signed, vmin=vmin, vmax=vmax)
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(Image.fromarray((colours * 255).round().astype(np.uint8)), (0, 0))
    draw, font = ImageDraw.Draw(canvas), _font(10)
    draw.text((0, 11), f"{vmin:.3g}", fill="black", font=font)
    right = f"{vmax:.3g}"
    draw.text((width - draw.textlength(right, font=font), 11), right, fill="black")
    if signed and vmin < 0 < vmax:
        draw.text((width // 2 - 3, 11), "0", fill="black", font=font)
    draw.text((0, 22), label[:40], fill="black", font=font)
    return canvas


def explanation_tile(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    signed: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    alpha: float = 0.55,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """A map blended over its image, on a fixed colour scale.

    An unsigned map with no positive value is not drawn as a dimmed photo: the
    photo is shown in grey and the tile is reported empty, so callers label it
    `EMPTY_LABEL`.

    Args:
        image: `(H, W, 3)` float in [0, 1].
        heatmap: `(H', W')` or `(H', W', 1)`, resized to `(H, W)`.
        signed: diverging colours, symmetric scale.
        vmin: the colour scale's low end (see `colormap`).
        vmax: the colour scale's high end (see `colormap`).
        alpha: the map's opacity in [0, 1].
        mask: optional `(H, W)` bool region whose outline is drawn (e.g. the
            object that decides the class).

    Returns:
        `(tile, empty)`: `(H, W, 3)` uint8 and whether the map was empty.
    """
    image = np.clip(np.asarray(image, np.float32), 0, 1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must be (H, W, 3). {received('image', image)}")
    heat = np.asarray(heatmap, np.float32)
    heat = heat[..., 0] if heat.ndim == 3 else heat
    if heat.shape != image.shape[:2]:
        size = (image.shape[1], image.shape[0])
        heat = np.asarray(Image.fromarray(heat).resize(size, Image.BILINEAR))
    # Unsigned: nothing above zero. Signed: nothing but zeros.
    empty = not bool(np.nanmax(np.abs(heat) if signed else heat) > 0)
    if empty:
        grey = image.mean(axis=-1, keepdims=True).repeat(3, axis=-1)
        tile = 0.35 + 0.3 * grey
    else:
        colours = colormap(heat, signed=signed, vmin=vmin, vmax=vmax)
        tile = (1 - alpha) * image + alpha * colours
    tile = (np.clip(tile, 0, 1) * 255).round().astype(np.uint8)
    if mask is not None:
        tile = _outline(tile, np.asarray(mask, bool))
    return tile, empty


def _outline(tile: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Draw the boundary of `mask` in white over `tile`."""
    if mask.shape != tile.shape[:2]:
        raise ValueError(
            f"`mask` must have the image's size {tile.shape[:2]}. "
            f"{received('mask', mask)}"
        )
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = mask & ~inner
    tile = tile.copy()
    tile[edge] = (255, 255, 255)
    return tile


@dataclasses.dataclass
class _Column:
    name: str
    signed: bool
    family: str


def labelled_grid(
    images: Sequence[np.ndarray],
    maps: Mapping[str, np.ndarray],
    *,
    row_labels: Sequence[str] = (),
    tile_labels: Mapping[str, Sequence[str]] | None = None,
    signed: Mapping[str, bool] | None = None,
    families: Mapping[str, str] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    tile_size: int = 128,
) -> Image.Image:
    """A grid of explanations: a row per image, a column per method.

    Every tile is labelled (its `tile_labels` entry, e.g. `"beagle p=0.93"`,
    or `EMPTY_LABEL` for an empty map); methods of one family share one
    colour scale, drawn as a colour bar under the grid.

    Args:
        images: `N` images `(H, W, 3)` float in [0, 1].
        maps: method name -> `(N, H', W')` or `(N, H', W', 1)` maps.
        row_labels: one label per image.
        tile_labels: method name -> `N` labels.
        signed: method name -> whether its maps are signed (diverging colours).
        families: method name -> family; methods of a family share a scale.
            Defaults to one family per method.
        masks: `N` bool `(H, W)` regions outlined on every tile.
        tile_size: the side of each square tile in pixels.

    Returns:
        An RGB PIL image.

    Raises:
        ValueError: maps whose count differs from the images'.
    """
    count = len(images)
    columns = []
    for name, values in maps.items():
        if len(values) != count:
            raise ValueError(
                f"`maps[{name!r}]` must hold one map per image ({count}). "
                f"{received('maps', values)}"
            )
        is_signed = bool((signed or {}).get(name, False))
        columns.append(_Column(name, is_signed, (families or {}).get(name, name)))
    scales = {}
    for family in dict.fromkeys(c.family for c in columns):
        members = [c for c in columns if c.family == family]
        values = np.concatenate([np.ravel(maps[c.name]) for c in members])
        # Signed methods whose (post-processed) maps hold no negative value
        # are drawn on the sequential scale, so an empty map is labelled.
        is_signed = members[0].signed and bool(np.nanmin(values) < 0)
        scales[family] = _scale(values, is_signed), is_signed
    pad, label_h, left = 6, 16, (110 if row_labels else 0)
    cell_w, cell_h = tile_size + pad, tile_size + label_h + pad
    bar_h = 44 if scales else 0
    canvas = Image.new(
        "RGB",
        (left + (len(columns) + 1) * cell_w, 22 + count * cell_h + bar_h),
        "white",
    )
    draw, font = ImageDraw.Draw(canvas), _font(11)
    for j, title in enumerate(["input", *(c.name for c in columns)]):
        draw.text((left + j * cell_w + 2, 4), title[:22], fill="black", font=font)
    for i, image in enumerate(images):
        y = 22 + i * cell_h
        if i < len(row_labels):
            draw.text((4, y + tile_size // 2), row_labels[i][:16], fill="black")
        mask = None if masks is None else masks[i]
        photo = (np.clip(np.asarray(image, np.float32), 0, 1) * 255).astype(np.uint8)
        if mask is not None:
            photo = _outline(photo, np.asarray(mask, bool))
        _paste(canvas, photo, (left, y), tile_size)
        for j, column in enumerate(columns, start=1):
            (low, high), is_signed = scales[column.family]
            tile, empty = explanation_tile(
                image,
                maps[column.name][i],
                signed=is_signed,
                vmin=low,
                vmax=high,
                mask=mask,
            )
            x = left + j * cell_w
            _paste(canvas, tile, (x, y), tile_size)
            labels = (tile_labels or {}).get(column.name)
            text = EMPTY_LABEL if empty else (labels[i] if labels else "")
            limit = max(24, tile_size // 6)
            draw.text((x, y + tile_size + 2), text[:limit], fill="black", font=font)
    x = left
    for family, ((low, high), is_signed) in scales.items():
        bar = colorbar(low, high, signed=is_signed, label=f"{family} scale")
        if x + bar.width > canvas.width:
            break
        canvas.paste(bar, (x, 22 + count * cell_h + 4))
        x += bar.width + 12
    return canvas


def _paste(canvas: Image.Image, tile: np.ndarray, at: tuple[int, int], size: int):
    picture = Image.fromarray(np.asarray(tile, np.uint8))
    canvas.paste(picture.resize((size, size), Image.BILINEAR), at)


def _png_data_uri(image: Image.Image | np.ndarray) -> str:
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;"
    "color:#222}img{max-width:100%}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th{background:#f3f3f3}figure{margin:1em 0}figcaption{color:#555}"
)


class Report:
    """A self-contained HTML report (images embedded as PNG data URIs).

    Build it with `report(title)`, add sections in order, then `save(path)`.

    Example:
        >>> page = report("Demo")
        >>> page = page.add_text("Two images.", heading="Inputs")
        >>> page = page.add_table([{"method": "gradcam", "hit": 1.0}])
        >>> "<table>" in page.to_html()
        True
    """

    def __init__(self, title: str, notes: Sequence[str] = ()) -> None:
        self.title = str(title)
        self._parts: list[str] = [f"<p>{html.escape(str(n))}</p>" for n in notes]

    def add_text(self, text: str, *, heading: str | None = None) -> Report:
        """A paragraph, under an optional `<h2>` heading."""
        if heading:
            self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        self._parts.append(f"<p>{html.escape(str(text))}</p>")
        return self

    def add_image(self, image: Any, caption: str = "", *, alt: str = "") -> Report:
        """A figure: a PIL image or a uint8 `(H, W, 3)` array, with a caption."""
        alt = html.escape(alt or caption or "figure")
        self._parts.append(
            f"<figure><img alt='{alt}' src='{_png_data_uri(image)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return self

    def add_grid(self, heading: str, images: Sequence[np.ndarray], maps, **kw):
        """A `labelled_grid` under a heading; returns the grid image."""
        picture = labelled_grid(images, maps, **kw)
        self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        self.add_image(picture, alt=heading)
        return picture

    def add_table(self, rows: Any, *, heading: str | None = None) -> Report:
        """A table from a pandas DataFrame or a list of dicts (one per row)."""
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
            frame = rows.reset_index()
            rows = frame.to_dict(orient="records")
        rows = list(rows)
        if heading:
            self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        columns = list(dict.fromkeys(k for row in rows for k in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns)
            + "</tr>"
            for row in rows
        )
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")
        return self

    def to_html(self) -> str:
        """The whole page as text."""
        title = html.escape(self.title)
        return (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{title}</h1>\n" + "\n".join(self._parts) + "\n</body></html>\n"
        )

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write the page to `path` (folders created) and return the path."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}"
    return html.escape(str(value))


def report(title: str, *, notes: Sequence[str] = ()) -> Report:
    """A new, empty HTML `Report` titled `title`, with optional notes."""
    return Report(title, notes)
