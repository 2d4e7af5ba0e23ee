"""Turn any image into float32 RGB in [0, 1], and the resizing rules we reproduce.

`load_image` accepts a path, an open binary file, a PIL image, a numpy array or
a `tf.Tensor`, and returns a float32 `(H, W, 3)` array in [0, 1], optionally
centre-cropped and bilinearly resized. `crop_to_square_and_resize` reproduces
CAVlib's warp bit for bit (concept vectors must match CAVlib's activations), and
`prepare_image` reproduces glimpse's `PrepareImage` on PIL images.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import skimage.transform
import tensorflow as tf

from keras_interp._validation import (
    check_one_of,
    check_positive_float,
    check_positive_int,
    received,
)

#: How far a float image may stray outside [0, 1] before it is refused; values
#: within the tolerance are clipped.
FLOAT_TOLERANCE = 1e-3

#: The `mode` values of `load_image`.
RESIZE_MODES = ("crop", "stretch")


def load_image(
    image: Any, size: int | Sequence[int] | None = None, *, mode: str = "crop"
) -> np.ndarray:
    """Load one image as float32 RGB in [0, 1], optionally cropped and resized.

    Inputs: a path (`str` or `os.PathLike`), an open binary file, a PIL image, a
    numpy array or an eager `tf.Tensor`. `uint8` arrays are read as 0..255,
    `uint16` (and PIL 16-bit modes `I;16*`, `I`) as 0..65535, other integer
    arrays must lie in 0..255, float arrays in [0, 1] (within `FLOAT_TOLERANCE`,
    then clipped). Grayscale (`(H, W)`, `(H, W, 1)`, PIL `L`, `1`, `I;16`)
    becomes RGB by repetition; an alpha channel (RGBA, LA, PIL palettes with
    transparency) is dropped, not composited. EXIF orientation is not applied.

    Resizing (`size` given, no antialiasing, as CAVlib and `tf.image.resize`):
    `mode="crop"` scales by `s = max(h / H, w / W)` and keeps the centre, so
    the short side fills the target; `mode="stretch"` scales each axis on its
    own. Sampling is bilinear with half-pixel centres: output pixel `o` reads
    input coordinate `(o + 0.5 - out / 2) / s + in / 2 - 0.5`, clamped to the
    edge pixels. This is `tf.image.resize(method="bilinear")` on the crop, and
    differs from CAVlib's integer-centre warp by `0.5 / s - 0.5` pixels; use
    `crop_to_square_and_resize` for CAVlib's convention. An image already of
    the target size is returned unchanged.

    Args:
        image: the image, in any of the forms above.
        size: `None` (keep the size), an int (a square) or `(height, width)`.
        mode: `"crop"` (keep the aspect ratio) or `"stretch"`.

    Returns:
        float32 array `(H, W, 3)` in [0, 1].

    Raises:
        TypeError: an unsupported input type.
        ValueError: an unreadable file: missing, truncated, not an image, or a
            decompression bomb (a header claiming more than twice
            `PIL.Image.MAX_IMAGE_PIXELS` pixels); every PIL failure on a path or
            file becomes this ValueError, whose message names the file and the
            PIL error, chained as `__cause__`. Also a bad shape, non-finite
            values, or values out of range.

    Example:
        >>> load_image(np.zeros((4, 8), np.uint8), size=2).shape
        (2, 2, 3)
    """
    target = _check_size(size)
    check_one_of(mode, RESIZE_MODES, "mode")
    array = _to_rgb(_to_array(image), image)
    if target is None or array.shape[:2] == target:
        return array
    height, width = array.shape[:2]
    if mode == "crop":
        scale = max(target[0] / height, target[1] / width)
        return _resample(array, target, (scale, scale))
    return _resample(array, target, (target[0] / height, target[1] / width))


def load_images(
    images: Any, size: int | Sequence[int] | None = None, *, mode: str = "crop"
) -> np.ndarray:
    """Load a batch of images with `load_image` and stack them.

    Args:
        images: a list or tuple of images in any form `load_image` accepts, or
            a batch array/tensor `(N, H, W)` or `(N, H, W, C)`.
        size: as in `load_image`; required when the images differ in size.
        mode: as in `load_image`.

    Returns:
        float32 array `(N, H, W, 3)` in [0, 1].

    Raises:
        TypeError: `images` is a single path or not a sequence.
        ValueError: no images, or images of different sizes with `size=None`.

    Example:
        >>> load_images([np.zeros((4, 4, 3)), np.ones((8, 8, 3))], size=4).shape
        (2, 4, 4, 3)
    """
    if isinstance(images, (str, bytes, os.PathLike)) or not (
        isinstance(images, (list, tuple, np.ndarray)) or tf.is_tensor(images)
    ):
        raise TypeError(
            "`images` must be a list or tuple of images or a batch array; use "
            f"`load_image` for a single image. {received('images', images)}"
        )
    if len(images) == 0:
        raise ValueError(f"`images` must not be empty. {received('images', images)}")
    arrays = [load_image(image, size, mode=mode) for image in images]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(
            f"The images have different sizes {shapes}; pass `size` to resize "
            f"them to one size. {received('size', size)}"
        )
    return np.stack(arrays)


def crop_to_square_and_resize(array: Any, size: int = 224) -> np.ndarray:
    """CAVlib's centre crop and bilinear resize, reproduced exactly.

    With `(H, W)` the input size and `s = max(size / H, size / W)`, output
    pixel `(r, c)` samples input coordinate `((r - size/2) / s + H/2,
    (c - size/2) / s + W/2)`: pixel centres on integer coordinates, bilinear
    (`order=1`), no antialiasing, coordinates past the last pixel clamped
    (`mode="edge"`). It is computed by the same call as CAVlib,
    `skimage.transform.warp` with a `SimilarityTransform`, so the dtypes follow
    skimage: an integer image comes back as float64 in [0, 1], a float image
    keeps its values. An image already `size x size` is returned unchanged
    (same object, same dtype).

    Args:
        array: an image `(H, W)` or `(H, W, C)` (numpy or an eager tensor).
        size: the side of the square output.

    Returns:
        `(size, size[, C])` array (see above for its dtype).

    Raises:
        ValueError: `array` is not 2-D or 3-D, or is empty.

    Example:
        >>> image = np.arange(32.0).reshape(4, 8) / 100
        >>> crop_to_square_and_resize(image, 2).tolist()  # samples x = 2c + 2
        [[0.02, 0.04], [0.18, 0.2]]

    References:
        Google Research, CAVlib (mood-board-search), `activations.py`, 2022.
    """
    size = check_positive_int(size, "size")
    array = np.asarray(array) if tf.is_tensor(array) else array
    if not isinstance(array, np.ndarray):
        raise TypeError(f"`array` must be a numpy array. {received('array', array)}")
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ValueError(
            f"`array` must be a non-empty image (H, W) or (H, W, C). "
            f"{received('array', array)}"
        )
    height, width = array.shape[:2]
    if height == size and width == size:
        return array
    scale = max(size / height, size / width)
    translate_x = width / 2 * scale - size / 2
    translate_y = height / 2 * scale - size / 2
    transform = skimage.transform.SimilarityTransform(
        scale=1 / scale, translation=(translate_x / scale, translate_y / scale)
    )
    return skimage.transform.warp(
        array, transform, output_shape=(size, size), order=1, mode="edge"
    )


class ResizeMethod(str, enum.Enum):
    """glimpse's image resize methods (`prepare_image`)."""

    NONE = "none"
    SCALE_SHORT_EDGE = "scale short edge"
    SCALE_LONG_EDGE = "scale long edge"
    SCALE_WIDTH = "scale width"
    SCALE_HEIGHT = "scale height"
    SCALE_AND_CROP = "scale and crop"


def prepare_image(
    img: PIL.Image.Image,
    method: str | ResizeMethod = ResizeMethod.SCALE_SHORT_EDGE,
    length: int = 220,
    aspect_ratio: float = 1.0,
) -> PIL.Image.Image:
    """glimpse's `PrepareImage`: scale (and crop) a PIL image.

    With `(w, h)` the image size and `L = length`: `"none"` returns the image
    itself; `"scale short edge"` resizes to `(w, h) / min(w, h) * L`, `"scale
    long edge"` to `(w, h) / max(w, h) * L`, `"scale width"` to `(w, h) / w *
    L`, `"scale height"` to `(w, h) / h * L` (sizes truncated to int);
    `"scale and crop"` scales the short edge to fit `(L, int(L /
    aspect_ratio))` and crops the long edge equally on both sides (the left or
    top border is `int((scaled - target) / 2)`). Resampling is BICUBIC when the
    width grows and LANCZOS (PIL's former ANTIALIAS) otherwise, as glimpse.

    Args:
        img: a PIL image (any mode).
        method: a `ResizeMethod` or its string value.
        length: the target edge length, a positive int.
        aspect_ratio: width / height of the `"scale and crop"` result, > 0.

    Returns:
        The resized PIL image (the same object for `"none"`).

    Raises:
        TypeError: `img` is not a PIL image, or `length` not an int.
        ValueError: an unknown `method` (the message lists the valid ones), or
            a non-positive `length` or `aspect_ratio`.

    Example:
        >>> prepare_image(PIL.Image.new("L", (100, 200)), length=256).size
        (256, 512)

    References:
        Thomure, The Glimpse Project (`glimpse.models.base.misc.PrepareImage`).
    """
    if not isinstance(img, PIL.Image.Image):
        raise TypeError(f"`img` must be a PIL image. {received('img', img)}")
    valid = [m.value for m in ResizeMethod]
    check_one_of(getattr(method, "value", method), valid, "method")
    method = ResizeMethod(method)
    length = check_positive_int(length, "length")
    aspect_ratio = check_positive_float(aspect_ratio, "aspect_ratio")
    if method is ResizeMethod.NONE:
        return img
    width, height = float(img.size[0]), float(img.size[1])
    if method is ResizeMethod.SCALE_AND_CROP:
        return _scale_and_crop(img, (length, int(length / aspect_ratio)))
    divisor = {
        ResizeMethod.SCALE_SHORT_EDGE: min(width, height),
        ResizeMethod.SCALE_LONG_EDGE: max(width, height),
        ResizeMethod.SCALE_WIDTH: width,
        ResizeMethod.SCALE_HEIGHT: height,
    }[method]
    return _scale(img, (width / divisor * length, height / divisor * length))


def _scale(img: PIL.Image.Image, size: tuple[float, float]) -> PIL.Image.Image:
    """glimpse's `ScaleImage`: truncate the size, BICUBIC up, LANCZOS down."""
    size = (int(size[0]), int(size[1]))
    grows = size[0] > img.size[0]
    return img.resize(size, PIL.Image.BICUBIC if grows else PIL.Image.LANCZOS)


def _scale_and_crop(img: PIL.Image.Image, size: tuple[int, int]) -> PIL.Image.Image:
    """glimpse's `ScaleAndCropImage` to `size = (width, height)`."""
    target_width, target_height = size
    image_rho = img.size[0] / float(img.size[1])
    if image_rho > target_width / float(target_height):  # crop left and right
        scaled_width = int(float(target_height) * image_rho)
        img = _scale(img, (scaled_width, target_height))
        border = int((scaled_width - target_width) / 2.0)
        return img.crop((border, 0, border + target_width, target_height))
    scaled_height = int(float(target_width) / image_rho)  # crop top and bottom
    img = _scale(img, (target_width, scaled_height))
    border = int((scaled_height - target_height) / 2.0)
    return img.crop((0, border, target_width, border + target_height))


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if not isinstance(size, (list, tuple)):
        side = check_positive_int(size, "size")
        return (side, side)
    if len(size) != 2:
        raise ValueError(
            f"`size` must be an int or a pair (height, width). {received('size', size)}"
        )
    return check_positive_int(size[0], "size"), check_positive_int(size[1], "size")


def _to_array(image: Any) -> np.ndarray:
    """The pixels of any supported input, as read (no range conversion)."""
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
        where = getattr(image, "name", "<file object>")
        where = os.fspath(image) if isinstance(image, (str, os.PathLike)) else where
        try:
            with PIL.Image.open(image) as pil:
                pil.load()
                return _pil_to_array(pil)
        except PIL.Image.DecompressionBombError as error:
            raise ValueError(
                f"Refused to read {where!r}: its header claims more pixels than "
                f"PIL's safety limit ({error}); raise `PIL.Image.MAX_IMAGE_PIXELS` "
                f"if the file is trusted. {received('image', image)}"
            ) from error
        except Exception as error:  # noqa: BLE001 (PIL's plugins raise anything)
            raise ValueError(
                f"Could not read an image from {where!r} "
                f"({type(error).__name__}: {error}). {received('image', image)}"
            ) from error
    if isinstance(image, PIL.Image.Image):
        return _pil_to_array(image)
    if isinstance(image, np.ndarray) or tf.is_tensor(image):
        return np.asarray(image)
    raise TypeError(
        "`image` must be a path, an open binary file, a PIL image, a numpy array "
        f"or a tf.Tensor (use `load_images` for several). {received('image', image)}"
    )


def _pil_to_array(pil: PIL.Image.Image) -> np.ndarray:
    if pil.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grayscale
        return np.asarray(pil).astype(np.uint16)
    if pil.mode == "I":  # 32-bit integers, as 16-bit PNGs open in some Pillows
        array = np.asarray(pil)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ValueError(
                "A PIL image of mode 'I' must hold values in [0, 65535], got "
                f"[{array.min()}, {array.max()}]. {received('image', pil)}"
            )
        return array.astype(np.uint16)
    if pil.mode == "F":
        return np.asarray(pil)
    if pil.mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode not in ("RGB", "RGBA", "L"):
        pil = pil.convert("RGB")
    return np.asarray(pil)


def _to_rgb(array: np.ndarray, image: Any) -> np.ndarray:
    """float32 `(H, W, 3)` in [0, 1] from the raw pixels of `image`."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise ValueError(
            "`image` must be a non-empty image of shape (H, W), (H, W, 1), "
            f"(H, W, 3) or (H, W, 4). {received('image', image)}"
        )
    array = _to_unit_float(array, image)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _to_unit_float(array: np.ndarray, image: Any) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise ValueError(
                f"Integer images of dtype {array.dtype} must hold values in "
                f"[0, 255] (use uint16 for 16-bit images), got [{array.min()}, "
                f"{array.max()}]. {received('image', image)}"
            )
        return array.astype(np.float32) / np.float32(255)
    if array.dtype.kind != "f":
        raise ValueError(
            "`image` must hold real numbers (uint8, uint16 or float), got dtype "
            f"{array.dtype}. {received('image', image)}"
        )
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ValueError(
            f"`image` must be finite, but {bad} value(s) are NaN or infinite. "
            f"{received('image', image)}"
        )
    low, high = float(array.min()), float(array.max())
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        raise ValueError(
            f"Float images must hold values in [0, 1], got [{low:g}, {high:g}] "
            "(divide 0..255 images by 255, or pass them as uint8). "
            f"{received('image', image)}"
        )
    return np.clip(array, 0.0, 1.0)


def _resample(
    array: np.ndarray, target: tuple[int, int], scale: tuple[float, float]
) -> np.ndarray:
    """Bilinear, half-pixel centres, centred; see `load_image`."""
    out = array.astype(np.float64)
    for axis in (0, 1):
        size_in, size_out = array.shape[axis], target[axis]
        grid = np.arange(size_out, dtype=np.float64)
        coords = (grid + 0.5 - size_out / 2) / scale[axis] + size_in / 2 - 0.5
        coords = np.clip(coords, 0, size_in - 1)
        low = np.floor(coords).astype(np.int64)
        high = np.minimum(low + 1, size_in - 1)
        frac = (coords - low).reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        out = np.take(out, low, axis) * (1 - frac) + np.take(out, high, axis) * frac
    return out.astype(np.float32)
