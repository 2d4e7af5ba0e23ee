"""Deterministic resampling behind the transforms: boundary modes, padding
and affine warps.

Coordinates outside an image are folded back inside by a boundary mode, with
numpy's names: `"constant"` (read a fill value), `"reflect"` (mirror about the
edge pixel, `d c b | a b c d`), `"symmetric"` (mirror including it, `c b a |
a b c d`) and `"edge"` (repeat the edge pixel). `warp` resamples images by
affine maps about their centres with bilinear interpolation, keeping their
size; the random transforms of `transforms` draw the maps.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

MODES = ("constant", "reflect", "symmetric", "edge")


def fold_coordinates(coords: tf.Tensor, size: Any, mode: str) -> tf.Tensor:
    """Map coordinates (float or int) outside [0, size - 1] inside, per `mode`
    (`"constant"` maps like `"edge"`; the caller masks)."""
    size = tf.cast(size, coords.dtype)
    last = size - 1
    if mode == "reflect":
        period = tf.maximum(2 * last, 1)
        coords = tf.math.floormod(coords, period)
        coords = tf.where(coords > last, period - coords, coords)
    elif mode == "symmetric":
        half = tf.cast(0.5, coords.dtype) if coords.dtype.is_floating else 0
        shifted = tf.math.floormod(coords + half, 2 * size)
        coords = tf.where(shifted >= size, 2 * size - shifted, shifted) - half
        if not coords.dtype.is_floating:
            coords = tf.where(shifted >= size, coords - 1, coords)
    return tf.clip_by_value(coords, tf.zeros_like(last), last)


def pad_axis(x: tf.Tensor, axis: int, before: int, after: int, mode: str, value):
    """Pad one spatial axis of `x` by gathering folded indices."""
    size = tf.shape(x)[axis]
    coords = tf.range(-before, size + after)
    x_padded = tf.gather(x, fold_coordinates(coords, size, mode), axis=axis)
    if mode != "constant":
        return x_padded
    inside = tf.logical_and(coords >= 0, coords < size)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    inside = tf.reshape(inside, shape)
    return tf.where(inside, x_padded, tf.cast(value, x.dtype))


def warp(
    images: tf.Tensor, inverse: tf.Tensor, *, mode: str = "reflect", value=0.5
) -> tf.Tensor:
    """Resample images by affine maps about their centres (bilinear).

    Args:
        images: float `(B, H, W, C)`.
        inverse: `(B, 2, 3)`: output pixel `(y, x)` (relative to the centre)
            reads input `inverse[:, :, :2] @ (y, x) + inverse[:, :, 2]`.
        mode: how points outside the image are read (see the module doc).
        value (float): the fill value of `"constant"`.

    Returns:
        float `(B, H, W, C)`.
    """
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = tf.meshgrid(
        tf.range(height) - cy, tf.range(width) - cx, indexing="ij"
    )  # (H, W)
    grid = tf.stack([yy, xx, tf.ones_like(yy)], -1)  # (H, W, 3)
    source = tf.einsum("hwk,bjk->bhwj", grid, inverse) + tf.stack([cy, cx])
    top = tf.floor(source)
    frac = source - top
    top = tf.cast(top, tf.int32)
    result = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            corner = top + tf.constant([dy, dx])
            rows = fold_coordinates(corner[..., 0], shape[1], mode)
            cols = fold_coordinates(corner[..., 1], shape[2], mode)
            pixels = tf.gather_nd(images, tf.stack([rows, cols], -1), batch_dims=1)
            if mode == "constant":
                inside = (
                    (corner[..., 0] >= 0)
                    & (corner[..., 0] < shape[1])
                    & (corner[..., 1] >= 0)
                    & (corner[..., 1] < shape[2])
                )
                pixels = tf.where(inside[..., None], pixels, value)
            wy = frac[..., 0] if dy else 1 - frac[..., 0]
            wx = frac[..., 1] if dx else 1 - frac[..., 1]
            result += pixels * (wy * wx)[..., None]
    return result


def affine_inverse(angle: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Inverse affine maps `(B, 2, 3)` of a rotation by `angle` radians
    (counter-clockwise), a zoom by `scale` and a shift `(B, 2)` in pixels."""
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    rows = tf.stack([tf.stack([cos, sin], -1), tf.stack([-sin, cos], -1)], 1)
    offset = -tf.einsum("bij,bj->bi", rows, shift)
    return tf.concat([rows, offset[..., None]], -1)
