"""Shared fixtures of the Beam tests: a tiny model file and image files."""

from __future__ import annotations

import pathlib

import numpy as np
import PIL.Image

from keras_interp.testing.models import gap_dense

#: The side images are explained at (the model's input size).
SIZE = 8
#: Good images per size; two sizes (12 x 12 and 10 x 16).
PER_SIZE = 32
#: Corrupt files: name -> bytes.
CORRUPT = {
    "bad_random.png": bytes(range(7, 200)),
    "bad_truncated.png": None,  # The first half of a real PNG, filled in below.
    "bad_empty.jpg": b"",
}


def tiny_model(seed: int = 0):
    """`Conv2D(4) -> GAP -> Dense(3)` on 8 x 8 images: Grad-CAM is analytic."""
    return gap_dense(size=SIZE, channels=4, classes=3, seed=seed)


def save_model(folder: pathlib.Path) -> str:
    """Save the tiny model as a `.keras` file and return its path."""
    path = folder / "tiny.keras"
    tiny_model().save(path)
    return str(path)


def write_images(folder: pathlib.Path, seed: int = 0) -> tuple[list[str], list[str]]:
    """64 PNG files of two sizes plus 3 corrupt ones; `(good, corrupt)` paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    good = []
    for index in range(2 * PER_SIZE):
        shape = (12, 12, 3) if index < PER_SIZE else (10, 16, 3)
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        path = folder / f"image_{index:03d}.png"
        PIL.Image.fromarray(pixels).save(path)
        good.append(str(path))
    corrupt = []
    for name, content in CORRUPT.items():
        if content is None:
            content = pathlib.Path(good[0]).read_bytes()
            content = content[: len(content) // 2]
        path = folder / name
        path.write_bytes(content)
        corrupt.append(str(path))
    return good, corrupt
