"""The library's image preparation as TensorFlow graph ops.

Usable inside any SavedModel signature or `tf.data` pipeline, with no Python
step: decoding (`decode_image`), the resizing rules of `keras_interp.images`
(`resize_image` for `load_image`'s `"crop"`/`"stretch"`, `cavlib_crop` for
`crop_to_square_and_resize`, `glimpse_resize` for `prepare_image`) and the
common Keras value ranges (`scale_values`). Every function is written without
Python control flow over tensors, so it traces with `autograph=False` too.

How close the graph ops are to the Python path (measured in
`tests/serving/test_preprocessing.py`, on [0, 1] images):

- decoding: PNG, BMP and GIF decode to the same pixels as PIL; JPEG uses
  `dct_method="INTEGER_ACCURATE"`, which matched PIL exactly on the images
  tried (TensorFlow's default JPEG decoding differs from PIL by up to 18
  levels on photos). 16-bit PNGs are read at 16 bits, as `load_image` does.
- `resize_image` and `cavlib_crop` compute the same bilinear samples as the
  Python code (float32 here, float64 there): within 1e-6.
- `glimpse_resize` uses `tf.image.resize(antialias=True)` with `bicubic`
  (growing) or `lanczos3` (shrinking), the kernels of PIL's BICUBIC and
  LANCZOS, and rounds to 8 bits as PIL does. On smooth images it is within
  1/255 of PIL (mean 0.25/255). On per-pixel noise it differs by up to
  21/255 (mean 0.3/255): PIL clips its 8-bit intermediate between the
  horizontal and the vertical pass, cutting the kernels' overshoot that
  TensorFlow keeps until the end.
- `scale_values` equals `keras.applications.imagenet_utils.preprocess_input`
  on `255 * x` within float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import check_one_of, check_positive_int, received

#: Named value ranges: how an image in [0, 1] is mapped to a model's input.
VALUE_RANGES = ("tf", "torch", "caffe")

#: Resize modes of `prepare_images` / `serving.export`.
RESIZE_MODES = ("crop", "stretch", "cavlib")

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

_GLIMPSE_METHODS = (
    "none",
    "scale short edge",
    "scale long edge",
    "scale width",
    "scale height",
    "scale and crop",
)


def check_value_range(preprocessing: Any) -> str | tuple[float, float] | None:
    """Validate a value range: `None`, `"tf"`, `"torch"`, `"caffe"` or `(low, high)`.

    Raises:
        ValueError: an unknown name, or a pair with `low >= high`.
    """
    if preprocessing is None or isinstance(preprocessing, str):
        if preprocessing is not None:
            check_one_of(preprocessing, VALUE_RANGES, "preprocessing")
        return preprocessing
    try:
        low, high = (float(v) for v in preprocessing)
    except (TypeError, ValueError):
        raise ValueError(
            "`preprocessing` must be None, 'tf', 'torch', 'caffe' or a pair "
            f"(low, high). {received('preprocessing', preprocessing)}"
        ) from None
    if not low < high:
        raise ValueError(
            "`preprocessing` as (low, high) must have low < high. "
            f"{received('preprocessing', preprocessing)}"
        )
    return low, high


def scale_values(images: tf.Tensor, preprocessing: Any = None) -> tf.Tensor:
    """Map RGB images in [0, 1] to a model's input range.

    `None` keeps [0, 1]; `"tf"` gives [-1, 1] (`2x - 1`); `"torch"` gives
    `(x - mean) / std` with ImageNet's mean and std; `"caffe"` flips RGB to BGR
    and subtracts ImageNet's BGR mean from `255 x`; `(low, high)` gives
    `x (high - low) + low` (CAVlib's `input_value_range`). These are Keras'
    `preprocess_input` modes applied to `255 x`.

    Args:
        images: float `(..., 3)` in [0, 1].
        preprocessing: `None`, `"tf"`, `"torch"`, `"caffe"` or `(low, high)`.

    Returns:
        float32 tensor of the same shape.

    Raises:
        ValueError: a bad `preprocessing`.

    Example:
        >>> scale_values(tf.constant([[0.0, 0.5, 1.0]]), "tf").numpy().tolist()
        [[-1.0, 0.0, 1.0]]
    """
    mode = check_value_range(preprocessing)
    x = tf.cast(images, tf.float32)
    if mode is None:
        return x
    if mode == "tf":
        return x * 2.0 - 1.0
    if mode == "torch":
        return (x - tf.constant(_TORCH_MEAN)) / tf.constant(_TORCH_STD)
    if mode == "caffe":
        return tf.reverse(x, axis=[-1]) * 255.0 - tf.constant(_CAFFE_MEAN_BGR)
    low, high = mode
    return x * (high - low) + low


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """Decode one JPEG, PNG, BMP or GIF to float32 RGB in [0, 1].

    As `keras_interp.images.load_image`: greyscale becomes RGB, an alpha
    channel is dropped (not composited), a GIF gives its first frame, a
    16-bit PNG keeps its 16 bits. JPEG is decoded with
    `dct_method="INTEGER_ACCURATE"` to match PIL.

    Args:
        contents: a scalar string tensor, the encoded file.

    Returns:
        float32 `(H, W, 3)` in [0, 1].

    Raises:
        tf.errors.InvalidArgumentError: at run time, for bytes of another format.

    Example:
        >>> png = tf.io.encode_png(tf.zeros((2, 3, 1), tf.uint8))
        >>> decode_image(png).shape
        TensorShape([2, 3, 3])
    """
    contents = tf.convert_to_tensor(contents, tf.string)

    def jpeg() -> tf.Tensor:
        pixels = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
        return tf.cast(pixels, tf.float32) / 255.0

    def png() -> tf.Tensor:
        pixels = tf.io.decode_png(contents, channels=3, dtype=tf.uint16)
        return tf.cast(pixels, tf.float32) / 65535.0

    def other() -> tf.Tensor:  # BMP and GIF (first frame)
        pixels = tf.io.decode_image(contents, channels=3, expand_animations=False)
        return tf.cast(pixels, tf.float32) / 255.0

    is_png = tf.equal(tf.strings.substr(contents, 0, 4), b"\x89PNG")
    image = tf.cond(tf.io.is_jpeg(contents), jpeg, lambda: tf.cond(is_png, png, other))
    return tf.ensure_shape(image, (None, None, 3))


def _sample(image: tf.Tensor, size: Any, scale: Any, offset: float) -> tf.Tensor:
    """Bilinear samples of `image` `(..., H, W, C)` at, per axis, input
    coordinate `(o + offset - out / 2) / s + in / 2 - offset`, clamped to the
    edge pixels (`offset` 0.5: half-pixel centres; 0: integer centres)."""
    out = tf.cast(image, tf.float32)
    for axis, length, factor in zip((-3, -2), size, scale):
        size_in = tf.shape(out)[axis]
        size_in_f = tf.cast(size_in, tf.float32)
        grid = tf.range(length, dtype=tf.float32)
        coords = (grid + offset - length / 2) / factor + size_in_f / 2 - offset
        coords = tf.clip_by_value(coords, 0.0, size_in_f - 1.0)
        low = tf.floor(coords)
        frac = coords - low
        low = tf.cast(low, tf.int32)
        high = tf.minimum(low + 1, size_in - 1)
        frac = tf.reshape(frac, [-1, 1, 1] if axis == -3 else [-1, 1])
        axis_index = out.shape.rank + axis
        out = (
            tf.gather(out, low, axis=axis_index) * (1 - frac)
            + tf.gather(out, high, axis=axis_index) * frac
        )
    return out


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return check_positive_int(size[0], "size"), check_positive_int(size[1], "size")
    side = check_positive_int(size, "size")
    return side, side


def resize_image(image: tf.Tensor, size: Any, mode: str = "crop") -> tf.Tensor:
    """`keras_interp.images.load_image`'s resizing as graph ops.

    `mode="crop"` scales by `s = max(h / H, w / W)` and keeps the centre,
    `"stretch"` scales each axis on its own; bilinear, half-pixel centres, no
    antialiasing, coordinates clamped to the edge pixels.

    Args:
        image: float `(H, W, C)` or a batch `(B, H, W, C)` of one size.
        size: an int (a square) or `(height, width)`.
        mode: `"crop"` or `"stretch"`.

    Returns:
        float32 `(height, width, C)` (or `(B, height, width, C)`).

    Raises:
        ValueError: a bad `size` or `mode`.

    Example:
        >>> resize_image(tf.zeros((4, 8, 3)), 2).shape
        TensorShape([2, 2, 3])
    """
    height, width = _check_size(size)
    check_one_of(mode, ("crop", "stretch"), "mode")
    shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
    scale_h, scale_w = height / shape[0], width / shape[1]
    if mode == "crop":
        scale_h = scale_w = tf.maximum(scale_h, scale_w)
    return _sample(image, (height, width), (scale_h, scale_w), 0.5)


def cavlib_crop(image: tf.Tensor, size: int = 224) -> tf.Tensor:
    """CAVlib's centre crop and bilinear resize
    (`keras_interp.images.crop_to_square_and_resize`) as graph ops.

    Output pixel `(r, c)` samples input coordinate `((r - size/2) / s + H/2,
    (c - size/2) / s + W/2)` with `s = max(size / H, size / W)`: integer
    pixel centres, bilinear, edge pixels repeated.

    Args:
        image: float `(H, W, C)` or `(B, H, W, C)`.
        size: the side of the square output.

    Returns:
        float32 `(size, size, C)` (or batched).

    Raises:
        ValueError: a bad `size`.

    Example:
        >>> image = tf.reshape(tf.range(32.0), (4, 8, 1)) / 100
        >>> cavlib_crop(image, 2)[..., 0].numpy().astype('float64').round(2).tolist()
        [[0.02, 0.04], [0.18, 0.2]]

    References:
        Google Research, CAVlib (mood-board-search), `activations.py`, 2022.
    """
    size = check_positive_int(size, "size")
    shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
    scale = tf.maximum(size / shape[0], size / shape[1])
    return _sample(image, (size, size), (scale, scale), 0.0)


def glimpse_resize(
    image: tf.Tensor,
    method: str = "scale short edge",
    length: int = 220,
    aspect_ratio: float = 1.0,
) -> tf.Tensor:
    """glimpse's `PrepareImage` (`keras_interp.images.prepare_image`) as graph ops.

    Output sizes are computed as glimpse does (truncated to int); resampling
    is `tf.image.resize(antialias=True)` with `bicubic` when the width grows
    and `lanczos3` otherwise (PIL's BICUBIC and LANCZOS kernels). See the
    module docstring for how far this is from PIL.

    Args:
        image: float `(H, W, C)` in [0, 1].
        method: one of `keras_interp.images.ResizeMethod`'s values.
        length: the target edge length.
        aspect_ratio: width / height of the `"scale and crop"` result.

    Returns:
        float32 `(H', W', C)` in [0, 1].

    Raises:
        ValueError: a bad `method`, `length` or `aspect_ratio`.

    Example:
        >>> glimpse_resize(tf.zeros((200, 100, 3)), length=256).shape
        TensorShape([512, 256, 3])

    References:
        Thomure, The Glimpse Project (`glimpse.models.base.misc.PrepareImage`).
    """
    method = check_one_of(getattr(method, "value", method), _GLIMPSE_METHODS, "method")
    length = check_positive_int(length, "length")
    if not isinstance(aspect_ratio, (int, float)) or not aspect_ratio > 0:
        raise ValueError(
            f"`aspect_ratio` must be a positive number. "
            f"{received('aspect_ratio', aspect_ratio)}"
        )
    image = tf.cast(image, tf.float32)
    if method == "none":
        return image
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    height, width = shape[0], shape[1]
    if method == "scale and crop":
        return _glimpse_scale_and_crop(image, width, height, length, aspect_ratio)
    divisor = {
        "scale short edge": tf.minimum(width, height),
        "scale long edge": tf.maximum(width, height),
        "scale width": width,
        "scale height": height,
    }[method]
    return _glimpse_scale(image, width / divisor * length, height / divisor * length)


def _glimpse_scale(image: tf.Tensor, width: tf.Tensor, height: tf.Tensor):
    """glimpse's `ScaleImage`: truncate, bicubic up, lanczos down, 8 bits."""
    size = tf.cast(tf.stack([height, width]), tf.int32)  # truncation, as int()
    grows = size[1] > tf.shape(image)[1]

    def resize(kernel: str):
        return lambda: tf.image.resize(image, size, method=kernel, antialias=True)

    out = tf.cond(grows, resize("bicubic"), resize("lanczos3"))
    return tf.round(tf.clip_by_value(out, 0.0, 1.0) * 255.0) / 255.0  # 8-bit PIL


def _glimpse_scale_and_crop(image, width, height, length, aspect_ratio):
    target_w, target_h = length, int(length / aspect_ratio)
    rho = width / height
    wide = rho > target_w / float(target_h)

    def crop_sides() -> tf.Tensor:
        scaled_w = tf.floor(float(target_h) * rho)
        scaled = _glimpse_scale(image, scaled_w, tf.constant(target_h, tf.float64))
        border = tf.cast((scaled_w - target_w) / 2.0, tf.int32)
        return scaled[:target_h, border : border + target_w]

    def crop_top_bottom() -> tf.Tensor:
        scaled_h = tf.floor(float(target_w) / rho)
        scaled = _glimpse_scale(image, tf.constant(target_w, tf.float64), scaled_h)
        border = tf.cast((scaled_h - target_h) / 2.0, tf.int32)
        return scaled[border : border + target_h, :target_w]

    return tf.cond(wide, crop_sides, crop_top_bottom)


def prepare_images(
    contents: tf.Tensor,
    size: int | Sequence[int],
    *,
    mode: str = "crop",
    preprocessing: Any = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Encoded images -> a batch ready for the model, all in the graph.

    Decodes each string (`decode_image`), brings it to `size` (`mode`:
    `"crop"`/`"stretch"` as `load_image`, `"cavlib"` as
    `crop_to_square_and_resize`, which needs a square `size`) and maps the
    values (`scale_values`).

    Args:
        contents: string `(B,)`, encoded JPEG/PNG/BMP/GIF files.
        size: an int or `(height, width)`.
        mode: `"crop"`, `"stretch"` or `"cavlib"`.
        preprocessing: the value range, as in `scale_values`.

    Returns:
        `(images, pixels)`: the model inputs float32 `(B, height, width, 3)`,
        and the same images in [0, 1] before the value mapping.

    Raises:
        ValueError: a bad `size`, `mode` or `preprocessing`.

    Example:
        >>> png = tf.io.encode_png(tf.zeros((5, 7, 3), tf.uint8))
        >>> prepare_images(tf.stack([png, png]), 4, preprocessing="tf")[0].shape
        TensorShape([2, 4, 4, 3])
    """
    height, width = _check_size(size)
    check_one_of(mode, RESIZE_MODES, "mode")
    check_value_range(preprocessing)
    if mode == "cavlib" and height != width:
        raise ValueError(
            f"`mode='cavlib'` needs a square `size`. {received('size', size)}"
        )

    def one(data: tf.Tensor) -> tf.Tensor:
        image = decode_image(data)
        if mode == "cavlib":
            return cavlib_crop(image, height)
        return resize_image(image, (height, width), mode)

    pixels = tf.map_fn(
        one,
        tf.reshape(tf.convert_to_tensor(contents, tf.string), [-1]),
        fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32),
    )
    return scale_values(pixels, preprocessing), pixels


__all__ = [
    "RESIZE_MODES",
    "VALUE_RANGES",
    "cavlib_crop",
    "check_value_range",
    "decode_image",
    "glimpse_resize",
    "prepare_images",
    "resize_image",
    "scale_values",
]
