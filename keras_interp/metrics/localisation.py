"""Localisation: does the map fall on the object that decides the class?"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_interp._validation import check_images, check_non_negative_float, received
from keras_interp.metrics._common import (
    MetricResult,
    check_inputs,
    check_maps,
    min_max,
    rank_pixels,
    ratio,
    resolve_maps,
)


def check_masks(masks: Any, x: np.ndarray, *, boxes: bool = False) -> np.ndarray:
    """Validate masks `(B, H, W)` (bool or 0/1) or boxes `(B, 4)` as
    `(top, left, bottom, right)` pixels, end exclusive; return bool masks (the
    boxes' rectangles when `boxes` is true, else the masks as given)."""
    if masks is None:
        raise ValueError(
            "Localisation metrics need `masks` (B, H, W) or boxes (B, 4). "
            f"{received('masks', masks)}"
        )
    array = np.asarray(masks)
    b, h, w = x.shape[:3]
    if array.shape == (b, 4) and array.dtype.kind in "iu":
        top, left, bottom, right = array.T
        if (
            (top < 0).any()
            or (left < 0).any()
            or (bottom > h).any()
            or (right > w).any()
        ):
            raise ValueError(
                f"Boxes must lie inside the {h}x{w} images. {received('masks', masks)}"
            )
        rows = np.arange(h)[None, :, None]
        cols = np.arange(w)[None, None, :]
        array = (
            (rows >= top[:, None, None]) & (rows < bottom[:, None, None])
            & (cols >= left[:, None, None]) & (cols < right[:, None, None])
        )  # fmt: skip
    elif array.shape != (b, h, w) or array.dtype.kind not in "biuf":
        raise ValueError(
            f"`masks` must be bool masks of shape {(b, h, w)} or int boxes of shape "
            f"{(b, 4)}. {received('masks', masks)}"
        )
    array = array != 0
    empty = np.flatnonzero(~array.reshape(b, -1).any(axis=1))
    if empty.size:
        raise ValueError(
            f"`masks` must mark at least one pixel per image; image(s) "
            f"{empty.tolist()[:10]} have empty masks (an empty mask cannot be hit). "
            f"{received('masks', masks)}"
        )
    if boxes:
        rows, cols = array.any(axis=2), array.any(axis=1)
        r = np.arange(h)
        c = np.arange(w)
        first_r = np.where(rows, r, h).min(1)
        last_r = np.where(rows, r, -1).max(1)
        first_c = np.where(cols, c, w).min(1)
        last_c = np.where(cols, c, -1).max(1)
        array = (
            (r[None, :, None] >= first_r[:, None, None])
            & (r[None, :, None] <= last_r[:, None, None])
            & (c[None, None, :] >= first_c[:, None, None])
            & (c[None, None, :] <= last_c[:, None, None])
        )
    return array


def _inputs(model, x, y, method, maps, masks, batch_size, boxes=False):
    if model is None and maps is not None:
        x = check_images(x, "x")
        maps = check_maps(maps, x)
    else:
        x, y = check_inputs(model, x, y)
        maps = resolve_maps(model, x, y, method, maps, batch_size)
    return maps.astype(np.float64), check_masks(masks, x, boxes=boxes)


def pointing_game(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    masks: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    tolerance: float = 0.0,
) -> MetricResult:
    """Pointing game: is the map's maximum on the object (within `tolerance`)?

    A hit is a maximum within `tolerance` pixels (Euclidean) of a mask pixel.
    When several pixels share the maximum, the value is the share of them that
    hit (the expected hit under random tie-breaking), so a constant map scores
    the dilated mask's area share, not a hit.

    Args:
        model: the classifier (may be `None` when `maps` is given).
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        method: the attribution method, used when `maps` is `None`.
        maps: precomputed maps `(B, H, W)`.
        masks: the evidence, bool `(B, H, W)` or boxes `(B, 4)` (top, left,
            bottom, right; end exclusive). An empty mask is an error.
        batch_size: images per step when computing maps.
        seed: unused (deterministic); kept for the common signature.
        tolerance: pixels of slack around the mask (15 in the paper at 224 px).

    Returns:
        `MetricResult` with 1.0 (hit), 0.0 (miss) or the tied share per image.

    Example:
        >>> x = np.zeros((3, 4, 4, 3))
        >>> masks = np.zeros((3, 4, 4), bool)
        >>> masks[:, :2, :2] = True  # the object: the top-left quarter
        >>> maps = np.zeros((3, 4, 4))
        >>> maps[0, 0, 1] = 1.0  # peak on the object
        >>> maps[1, 3, 3] = 1.0  # peak off the object
        >>> pointing_game(None, x, maps=maps, masks=masks).values  # 2: all tied
        array([1.  , 0.  , 0.25])
        >>> pointing_game(None, x, maps=maps, masks=masks, tolerance=3.0).values
        array([1., 1., 1.])

    Raises:
        ValueError: bad or empty masks, bad maps, labels or tolerance.

    References:
        Zhang et al., Top-down Neural Attention by Excitation Backprop,
        IJCV 2018. arXiv:1608.00507.
    """
    tolerance = check_non_negative_float(tolerance, "tolerance")
    maps, masks = _inputs(model, x, y, method, maps, masks, batch_size)
    if tolerance > 0:
        from scipy.ndimage import distance_transform_edt

        masks = np.stack([distance_transform_edt(~m) <= tolerance for m in masks])
    b = len(maps)
    flat = maps.reshape(b, -1)
    peaks = flat == flat.max(axis=1, keepdims=True)
    hits = (peaks & masks.reshape(b, -1)).sum(1) / peaks.sum(1)
    return MetricResult("pointing_game", hits.astype(np.float64))


def relevance_mass(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    masks: Any = None,
    batch_size: int = 32,
    seed: int = 0,
) -> MetricResult:
    """Relevance mass accuracy: the share of positive relevance on the mask.

    `sum_{p in mask} max(R_p, 0) / sum_p max(R_p, 0)`; a map without positive
    relevance scores 0. Arguments as in `pointing_game`.

    Returns:
        `MetricResult` with one share per image, in [0, 1].

    References:
        Arras, Osman and Samek, CLEVR-XAI: A benchmark dataset for the ground
        truth evaluation of neural network explanations, Information Fusion
        2022. arXiv:2003.07258.
    """
    maps, masks = _inputs(model, x, y, method, maps, masks, batch_size)
    positive = np.maximum(maps, 0.0).reshape(len(maps), -1)
    inside = (positive * masks.reshape(len(maps), -1)).sum(1)
    return MetricResult("relevance_mass", ratio(inside, positive.sum(1), 0.0))


def relevance_rank(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    masks: Any = None,
    batch_size: int = 32,
    seed: int = 0,
) -> MetricResult:
    """Relevance rank accuracy: the share of the top-K pixels inside the mask,
    K being the mask's size. Ties are broken in a seeded random order.
    Arguments as in `pointing_game`.

    Returns:
        `MetricResult` with one share per image, in [0, 1].

    References:
        Arras, Osman and Samek, CLEVR-XAI, Information Fusion 2022.
        arXiv:2003.07258.
    """
    maps, masks = _inputs(model, x, y, method, maps, masks, batch_size)
    b = len(maps)
    ranks = rank_pixels(maps.astype(np.float32), seed).reshape(b, -1)
    flat = masks.reshape(b, -1)
    k = flat.sum(1, keepdims=True)
    values = ((ranks < k) & flat).sum(1) / k[:, 0]
    return MetricResult("relevance_rank", values.astype(np.float64))


def energy_pointing_game(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    masks: Any = None,
    batch_size: int = 32,
    seed: int = 0,
) -> MetricResult:
    """Energy-based pointing game: the share of the min-max normalised map's
    energy inside the object's bounding box (the masks' boxes, or boxes given
    as `(B, 4)`). A constant map is taken as uniform (it scores the box's area
    share). Arguments as in `pointing_game`.

    Returns:
        `MetricResult` with one share per image, in [0, 1].

    References:
        Wang et al., Score-CAM: Score-Weighted Visual Explanations for
        Convolutional Neural Networks, CVPR Workshops 2020. arXiv:1910.01279.
    """
    maps, boxes = _inputs(model, x, y, method, maps, masks, batch_size, boxes=True)
    b = len(maps)
    energy = min_max(maps.reshape(b, -1), constant=1.0)
    values = (energy * boxes.reshape(b, -1)).sum(1) / energy.sum(1)
    return MetricResult("energy_pointing_game", values)
